"""The three baselines of benchmarks/baselines and benchmarks/compare.py."""
from __future__ import annotations

import hashlib
import json
import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from baselines import (  # noqa: E402
    AccountEmbeddings,
    embed_samples,
    min_distance_stream,
    mmd_risk,
    prada_risk,
    rbf_median_bandwidth,
    read_volume,
    sample_prompts,
    volume_risk,
)
from baselines.mmd import mmd2_unbiased  # noqa: E402
from baselines.prada import shapiro_w  # noqa: E402
from baselines.volume import volume_risk_from_counts  # noqa: E402


def fake_embed(texts):
    """Stand-in with the signature of distillguard.text.embed: float32 unit rows."""
    out = np.zeros((len(texts), 16), dtype=np.float32)
    for i, t in enumerate(texts):
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=16)
        out[i] = v / np.linalg.norm(v)
    return out


def _emb(groups: dict[str, np.ndarray]) -> AccountEmbeddings:
    ids = list(groups)
    offsets = np.cumsum([0] + [len(groups[a]) for a in ids])
    vecs = np.vstack([groups[a] for a in ids]).astype(np.float32)
    return AccountEmbeddings(np.array(ids, dtype=object), offsets.astype(np.int64), vecs)


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- PRADA
def test_min_distance_stream_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    d = min_distance_stream(x)
    # q1 -> q0: sqrt2; q2 -> q0: 0; q3 -> nearest of (1,0): sqrt(.16+.64), (0,1): sqrt(.36+.04)
    assert d == pytest.approx([math.sqrt(2), 0.0, math.sqrt(0.4)])
    assert min_distance_stream(x[:1]).size == 0
    # growing set G={q0}: q1 at sqrt2 > T=0 joins G, T = sqrt2 - 0; q2 at 0 stays out;
    # q3's nearest member of G={q0, q1} is q1 at sqrt(.4)
    g = min_distance_stream(x, growing_set=True)
    assert g == pytest.approx([math.sqrt(2), 0.0, math.sqrt(0.4)])
    # a case where G matters: q2 is not in G, so q3 (equal to q2) measures to G
    y = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.6, 0.8]])
    assert min_distance_stream(y)[-1] == pytest.approx(0.0)
    assert min_distance_stream(y, growing_set=True)[-1] == pytest.approx(math.sqrt(0.4))


def test_shapiro_w_degenerate_and_normal():
    assert shapiro_w(np.zeros(20)) == 1.0
    assert shapiro_w(np.array([1.0, 2.0])) == 1.0
    rng = np.random.default_rng(0)
    assert shapiro_w(rng.normal(size=60)) > 0.95
    bimodal = np.r_[np.zeros(30), np.ones(30)] + rng.normal(scale=0.01, size=60)
    assert shapiro_w(bimodal) < 0.8


def test_prada_sweep_scores_above_natural_queries():
    rng = np.random.default_rng(1)
    natural = _unit(rng.normal(size=(60, 16)))
    # a sweep: 6 far-apart seeds, each varied 10 times by a tiny step
    seeds = _unit(rng.normal(size=(6, 16)))
    sweep = _unit(np.repeat(seeds, 10, axis=0) + rng.normal(scale=0.01, size=(60, 16)))
    short = natural[:5]
    r = prada_risk(_emb({"nat": natural, "sweep": sweep, "short": short}), min_queries=10)
    risk = dict(zip(r.account_id, r.risk))
    assert risk["sweep"] > risk["nat"]
    assert risk["short"] == 0.0 and r.n_used.tolist() == [60, 60, 5]
    assert np.all((r.risk >= 0) & (r.risk <= 1))


# ---------------------------------------------------------------- MMD
def test_median_bandwidth_and_mmd_by_hand():
    assert rbf_median_bandwidth(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [2.0]])
    s = 1.0
    k = lambda a, b: math.exp(-((a - b) ** 2) / 2)  # noqa: E731
    expect = k(0, 1) + k(0, 2) - 2 * (k(0, 0) + k(0, 2) + k(1, 0) + k(1, 2)) / 4
    assert mmd2_unbiased(x, y, s) == pytest.approx(expect)


def test_mmd_shifted_account_scores_higher_and_own_prompts_excluded():
    rng = np.random.default_rng(2)
    centre_a = _unit(rng.normal(size=(1, 16)))
    centre_b = _unit(rng.normal(size=(1, 16)))

    def around(c, n):
        return _unit(c + rng.normal(scale=0.5, size=(n, 16)))

    groups = {f"ben{i}": around(centre_a, 30) for i in range(20)}
    groups["shift"] = around(centre_b, 30)
    groups["same"] = around(centre_a, 30)
    groups["tiny"] = around(centre_b, 3)
    emb = _emb(groups)
    ref = [f"ben{i}" for i in range(20)]
    r = mmd_risk(emb, reference_accounts=ref, min_queries=5)
    risk = dict(zip(r.account_id, r.risk))
    assert risk["shift"] == pytest.approx(1.0)  # the max after min-max scaling
    assert risk["shift"] > risk["same"]
    assert risk["tiny"] == 0.0
    # a reference account is tested without its own prompts: no free pass
    stat = dict(zip(r.account_id, r.statistic))
    assert abs(stat["ben0"] - stat["same"]) < 0.1
    # population reference and permutation p-values also run
    r2 = mmd_risk(emb, reference_accounts=None, permutations=20, perm_ref_size=64)
    risk2 = dict(zip(r2.account_id, r2.risk))
    assert risk2["shift"] >= 0.9 and 0.0 <= risk2["same"] <= 1.0
    with pytest.raises(ValueError):
        mmd_risk(emb, reference_accounts=["nobody"])


# ---------------------------------------------------------------- events + volume
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _events(path: Path) -> None:
    rows = []
    for a, n, out in [("a", 100, 500), ("b", 3, 10), ("c", 20, 4000)]:
        for i in range(n):
            rows.append(
                {
                    "event_id": f"{a}{i}",
                    "ts": T0 + timedelta(minutes=i),
                    "account_id": a,
                    "prompt": "" if (a == "b" and i == 0) else f"prompt {a} {i % 7}",
                    "output_tokens": out if i == 0 else None,
                }
            )
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_read_volume_sample_and_volume_risk(tmp_path):
    ev = tmp_path / "events.parquet"
    _events(ev)
    ids, n, out = read_volume(ev)
    assert ids.tolist() == ["a", "b", "c"] and n.tolist() == [100, 3, 20] and out.tolist() == [500, 10, 4000]
    v = volume_risk(ev)
    # ranks: n -> a 1, b 0, c .5 ; out -> a .5, b 0, c 1
    assert v.risk.tolist() == pytest.approx([0.75, 0.0, 0.75])
    assert volume_risk_from_counts(["x"], [1], [1]).risk.tolist() == [1.0]

    s = sample_prompts(ev, max_per_account=8, seed=0)
    assert s.account_id.tolist() == ["a", "b", "c"]
    sizes = np.diff(s.offsets).tolist()
    assert sizes == [8, 2, 8]  # b's empty prompt is skipped
    s2 = sample_prompts(ev, max_per_account=8, seed=0)
    assert s2.texts == s.texts  # deterministic for a seed
    emb = embed_samples(s, embed_fn=fake_embed)
    assert emb.vectors.shape == (18, 16) and emb.of(1).shape == (2, 16)

    # a distillguard-style DuckDB store with an `events` table reads the same
    import duckdb

    db = tmp_path / "store.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE events AS SELECT * FROM read_parquet(?)", [str(ev)])
    con.close()
    assert read_volume(db)[1].tolist() == [100, 3, 20]
    with pytest.raises(FileNotFoundError):
        read_volume(tmp_path / "none.parquet")


def test_real_embed_when_available():
    text = pytest.importorskip("distillguard.text")
    from baselines import AccountSamples

    s = AccountSamples(np.array(["a"], dtype=object), np.array([0, 3]), ["hello", "hello", "bonjour"])
    emb = embed_samples(s)  # distillguard.text.embed
    assert emb.vectors.dtype == np.float32 and emb.vectors.shape[0] == 3
    assert np.allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(emb.vectors[0], emb.vectors[1])
    assert text is not None


# ---------------------------------------------------------------- compare.py
def _world(tmp_path: Path):
    """6 benign accounts with varied chat prompts, 4 attack accounts in one
    campaign sending a templated reasoning-harvest sweep."""
    rng = np.random.default_rng(3)
    topics = ["cooking", "travel", "python", "history", "music", "gardening", "taxes", "football", "chemistry", "movies"]
    rows, labels = [], []
    for b in range(6):
        acc = f"ben{b}"
        labels.append({"account_id": acc, "campaign_id": None, "archetype": "chat", "is_attack": False})
        for i in range(15 + 5 * b):
            t = topics[int(rng.integers(len(topics)))]
            rows.append((acc, i, f"can you tell me something about {t}? {rng.integers(1000)}", 200))
    for a in range(4):
        acc = f"att{a}"
        labels.append({"account_id": acc, "campaign_id": "camp1", "archetype": "hydra", "is_attack": True})
        for i in range(30):
            rows.append((acc, i, f"Solve step by step and show full reasoning: problem {i} variant {a}", 900))
    ev = [
        {"event_id": f"{a}-{i}", "ts": T0 + timedelta(minutes=i), "account_id": a, "prompt": p, "output_tokens": o}
        for a, i, p, o in rows
    ]
    evp, lp = tmp_path / "events.parquet", tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pylist(ev), evp)
    pq.write_table(
        pa.Table.from_pylist(
            labels,
            schema=pa.schema(
                [("account_id", pa.string()), ("campaign_id", pa.string()), ("archetype", pa.string()), ("is_attack", pa.bool_())]
            ),
        ),
        lp,
    )
    scan = tmp_path / "scan"
    scan.mkdir()
    ids = [l["account_id"] for l in labels]
    pq.write_table(
        pa.table(
            {
                "account_id": ids,
                "risk": [0.05 * i for i in range(6)] + [0.9, 0.95, 0.97, 0.99],
                "action": ["allow"] * 5 + ["challenge"] + ["block"] * 4,
                "campaign_id": [None] * 6 + ["k"] * 4,
                "reasons": [[]] * 10,
                "n_events": [15 + 5 * b for b in range(6)] + [30] * 4,
            }
        ),
        scan / "accounts.parquet",
    )
    return evp, lp, scan


def _compare_module():
    import importlib

    return importlib.import_module("compare")


def test_compare_end_to_end(tmp_path, capsys):
    compare = _compare_module()
    evp, lp, scan = _world(tmp_path)
    out = tmp_path / "cmp.json"
    rc = compare.main(["--events", str(evp), "--labels", str(lp), "--scan", str(scan), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    for col in ("distillguard", "volume", "PRADA", "MMD"):
        assert col in printed
    res = json.loads(out.read_text())
    assert set(res["systems"]) == {"scan", "volume", "prada", "mmd"}
    assert res["policy_fpr"] == pytest.approx(1 / 6)
    assert res["systems"]["scan"]["roc_auc"] == pytest.approx(1.0)
    for name in ("volume", "prada", "mmd"):
        m = res["systems"][name]
        assert m["policy"]["fpr"] <= res["policy_fpr"] + 1e-12
        assert 0.0 <= m["roc_auc"] <= 1.0
        assert m["campaigns_found"]["total"] == 1
    # the templated sweep is far from benign chat: MMD separates it fully
    assert res["systems"]["mmd"]["roc_auc"] == pytest.approx(1.0)


def test_compare_without_scan_and_bad_input(tmp_path, capsys):
    compare = _compare_module()
    evp, lp, _ = _world(tmp_path)
    rc = compare.main(["--events", str(evp), "--labels", str(lp), "--json", "--fpr", "0.2", "--only", "volume,mmd"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["systems"]) == {"volume", "mmd"} and res["policy_fpr"] == 0.2
    rc = compare.main(["--events", str(tmp_path / "nope.parquet"), "--labels", str(lp)])
    assert rc == 2
    rc = compare.main(["--events", str(evp), "--labels", str(tmp_path / "nope.parquet")])
    assert rc == 2
