"""distillguard.evaluate on hand-built cases whose figures are computed by hand."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.errors import UsageError
from distillguard.evaluate import (
    campaigns_found,
    confusion,
    evaluate,
    flag_rate_by_archetype,
    flags_at_fpr,
    linkage_ari,
    load_labels,
    recall_at_fpr,
    roc_auc,
    threshold_at_fpr,
    volume_rank_score,
)
from distillguard.evaluate.render import metric_rows, render_table

# ---------------------------------------------------------------- fixtures
# 4 benign + 3 attack accounts; a3 is missing from the scan.
LABELS = {
    "account_id": ["b1", "b2", "b3", "b4", "a1", "a2", "a3"],
    "campaign_id": [None, None, None, None, "c1", "c1", "c2"],
    "archetype": ["chat", "chat", "eval", "eval", "hydra", "hydra", "whale"],
    "is_attack": [False, False, False, False, True, True, True],
}
SCAN = {
    "account_id": ["b1", "b2", "b3", "b4", "a1", "a2"],
    "risk": [0.1, 0.2, 0.9, 0.3, 0.9, 0.8],
    "action": ["allow", "allow", "block", "monitor", "block", "throttle"],
    "campaign_id": [None, None, None, None, "k1", "k1"],
    "reasons": [[], [], ["X"], [], ["X"], ["X"]],
    "n_events": [10, 20, 300, 5, 50, 40],
}


def _write(tmp_path, labels=LABELS, scan=SCAN):
    lp = tmp_path / "labels.parquet"
    pq.write_table(pa.table(labels), lp)
    sd = tmp_path / "scan"
    sd.mkdir(exist_ok=True)
    pq.write_table(pa.table(scan), sd / "accounts.parquet")
    return lp, sd


# ---------------------------------------------------------------- metrics
def test_roc_auc_by_hand_with_ties():
    y = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    s = np.array([0.1, 0.2, 0.9, 0.3, 0.9, 0.8, 0.0])
    # a1=0.9: beats 0.1,0.2,0.3, ties 0.9 -> 3.5; a2=0.8: beats 3 -> 3; a3=0: 0
    assert roc_auc(y, s) == pytest.approx(6.5 / 12)
    assert roc_auc(y, np.full(7, 0.3)) == pytest.approx(0.5)
    assert roc_auc(np.ones(3, bool), [1, 2, 3]) is None
    assert roc_auc(np.zeros(3, bool), [1, 2, 3]) is None


def test_threshold_keeps_fpr_at_or_below_target():
    y = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    s = np.array([0.1, 0.2, 0.9, 0.3, 0.9, 0.8, 0.0])
    # 4 benign, target 25% -> at most 1 benign flagged: t=0.8 flags b3, a1, a2
    assert threshold_at_fpr(y, s, 0.25) == pytest.approx(0.8)
    r = recall_at_fpr(y, s, 0.25)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["fpr"] == pytest.approx(0.25)
    assert r["n_flagged"] == 3
    # target 1%: no benign may be flagged, but the top score 0.9 is shared by
    # a benign account -> nothing can be flagged
    r = recall_at_fpr(y, s, 0.01)
    assert r["threshold"] is None and r["recall"] == 0.0 and r["fpr"] == 0.0
    assert math.isinf(threshold_at_fpr(y, s, 0.0))
    # target 100%: everything
    assert threshold_at_fpr(y, s, 1.0) == pytest.approx(0.0)


def test_ties_are_never_split_to_reach_the_target():
    # two benign tied at 0.5 with an attack: flagging 0.5 gives 2/4 benign
    y = np.array([0, 0, 0, 0, 1, 1], bool)
    s = np.array([0.5, 0.5, 0.1, 0.2, 0.5, 0.4])
    assert math.isinf(threshold_at_fpr(y, s, 0.25))  # 1 allowed, 2 tied -> none
    r = recall_at_fpr(y, s, 0.25)
    assert r["recall"] == 0.0 and r["fpr"] == 0.0
    assert threshold_at_fpr(y, s, 0.5) == pytest.approx(0.4)  # 2 allowed
    assert recall_at_fpr(y, s, 0.5)["recall"] == 1.0
    # attack strictly above the tie is recalled at 0 FPR
    s2 = np.array([0.5, 0.5, 0.1, 0.2, 0.7, 0.4])
    assert threshold_at_fpr(y, s2, 0.25) == pytest.approx(0.7)
    assert flags_at_fpr(y, s2, 0.25).tolist() == [False, False, False, False, True, False]


def test_fpr_uses_floor_of_allowed_benign():
    # 1000 benign, 0.1% -> exactly 1 benign may be flagged
    y = np.zeros(1002, bool)
    y[-2:] = True
    s = np.arange(1002, dtype=float)
    s[-2:] = [2000.0, 998.5]  # attack 1 on top, attack 2 between benign 998 and 999
    r = recall_at_fpr(y, s, 0.001)
    assert r["fpr"] == pytest.approx(0.001) and r["recall"] == 1.0
    r = recall_at_fpr(y, s, 0.0009)  # 0.9 benign -> none
    assert r["fpr"] == 0.0 and r["recall"] == 0.5


def test_confusion_and_archetypes():
    y = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    f = np.array([0, 0, 1, 0, 1, 1, 0], bool)
    c = confusion(y, f)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 1, 1, 3)
    assert c["precision"] == pytest.approx(2 / 3)
    assert c["recall"] == pytest.approx(2 / 3)
    assert c["fpr"] == pytest.approx(1 / 4)
    assert confusion(y, np.zeros(7, bool))["precision"] is None
    r = flag_rate_by_archetype(LABELS["archetype"], f)
    assert r["eval"] == {"n": 2, "flagged": 1, "rate": 0.5}
    assert r["chat"]["rate"] == 0.0 and r["hydra"]["rate"] == 1.0 and r["whale"]["rate"] == 0.0


def test_campaigns_found_half_counts():
    camp = np.array(["c1", "c1", "c2", "c2", "c2", None], dtype=object)
    f = np.array([1, 0, 1, 0, 0, 1], bool)
    r = campaigns_found(camp, f)
    assert r["total"] == 2 and r["found"] == 1  # c1: 1/2 (half) found; c2: 1/3 not
    assert r["campaigns"]["c1"]["found"] and not r["campaigns"]["c2"]["found"]
    assert campaigns_found(np.array([None, None], dtype=object), [1, 1])["total"] == 0


def test_linkage_ari_by_hand():
    t = np.array(["c1", "c1", "c2", "c2"], dtype=object)
    # identical partition under renaming -> 1
    assert linkage_ari(t, np.array(["x", "x", "y", "y"], dtype=object)) == pytest.approx(1.0)
    # pred {k: c1,c1,c2} + singleton c2: index 1, expected 2*3/6 = 1, max 2.5 -> 0
    assert linkage_ari(t, np.array(["k", "k", "k", None], dtype=object)) == pytest.approx(0.0)
    # pred {k: c1,c1}, {m: c2}, singleton c2: index 1, expected 2*1/6, max 1.5 -> 4/7
    assert linkage_ari(t, np.array(["k", "k", "m", None], dtype=object)) == pytest.approx(4 / 7)
    # null predictions are singletons, not one cluster: all-null != one big cluster
    assert linkage_ari(t, np.array([None] * 4, dtype=object)) == pytest.approx(0.0)
    # scope=all: benign accounts are singletons; linking two benign costs
    t2 = np.array(["c1", "c1", None, None], dtype=object)
    assert linkage_ari(t2, np.array(["k", "k", None, None], dtype=object), scope="all") == pytest.approx(1.0)
    # pred {k: c1,c1,b,b}: index 1, a = 1, b = 6, n2 = 6 -> expected 1, ARI 0
    assert linkage_ari(t2, np.array(["k"] * 4, dtype=object), scope="all") == pytest.approx(0.0)
    assert linkage_ari(t2, np.array(["k"] * 4, dtype=object), scope="campaign") == pytest.approx(1.0)
    assert linkage_ari(np.array(["c1", None], dtype=object), np.array([None, None], dtype=object)) is None
    with pytest.raises(ValueError):
        linkage_ari(t, t, scope="nope")


def test_volume_rank_score_ties():
    s = volume_rank_score([5, 10, 10, 0])
    assert s.tolist() == pytest.approx([1 / 3, 5 / 6, 5 / 6, 0.0])
    assert volume_rank_score([]).size == 0


# ---------------------------------------------------------------- evaluate()
def test_evaluate_hand_case(tmp_path):
    lp, sd = _write(tmp_path)
    r = evaluate(lp, sd)
    c = r["counts"]
    assert c == {
        "accounts": 7, "benign": 4, "attack": 3, "true_campaigns": 2,
        "predicted_campaigns": 1, "missing_from_scan": 1, "unlabelled_in_scan": 0,
    }
    s = r["systems"]["scan"]
    assert s["roc_auc"] == pytest.approx(6.5 / 12)  # a3 missing -> risk 0
    assert s["recall_at_fpr"]["0.001"]["recall"] == 0.0
    assert s["recall_at_fpr"]["0.01"]["recall"] == 0.0
    p = s["policy"]  # flagged: b3 (block), a1 (block), a2 (throttle); monitor is not
    assert (p["tp"], p["fp"], p["fn"], p["tn"]) == (2, 1, 1, 3)
    assert r["policy_fpr"] == pytest.approx(0.25)
    assert s["flag_rate_by_archetype"]["eval"]["rate"] == 0.5
    assert s["flag_rate_by_archetype"]["whale"]["rate"] == 0.0
    assert (s["campaigns_found"]["found"], s["campaigns_found"]["total"]) == (1, 2)
    # campaign accounts a1,a2 (c1) a3 (c2) vs k1,k1,singleton -> perfect
    assert s["linkage_ari"] == pytest.approx(1.0)
    assert s["linkage_ari_all"] == pytest.approx(1.0)

    v = r["systems"]["volume"]
    # n_events: benign 10,20,300,5; attack 50,40,0 (missing) -> 6/12
    assert v["roc_auc"] == pytest.approx(0.5)
    # at the policy FPR (25%: 1 benign): 300 (b3), 50, 40 flagged
    assert (v["policy"]["tp"], v["policy"]["fp"]) == (2, 1)
    assert v["policy"]["fpr"] <= r["policy_fpr"]
    assert v["linkage_ari"] == pytest.approx(0.0)  # no linkage: all singletons
    assert any("missing from the scan" in n for n in r["notes"])
    json.dumps(r)  # JSON-ready: no NaN, no numpy types
    assert "NaN" not in json.dumps(r)

    rows = dict(metric_rows(r))
    assert rows["ROC AUC"] == ["0.542", "0.500"]
    assert rows["campaigns found (≥½ flagged)"] == ["1/2", "1/2"]
    render_table(r)


def test_evaluate_without_n_events_or_is_attack(tmp_path):
    labels = {k: v for k, v in LABELS.items() if k != "is_attack"}
    scan = {k: v for k, v in SCAN.items() if k not in ("n_events", "campaign_id")}
    lp, sd = _write(tmp_path, labels, scan)
    r = evaluate(lp, sd)
    assert r["counts"]["attack"] == 3  # derived from campaign_id
    assert r["systems"]["volume"] is None
    assert r["systems"]["scan"]["linkage_ari"] == pytest.approx(0.0)
    rows = dict(metric_rows(r))
    assert rows["ROC AUC"][1] == "n/a"


def test_unlabelled_scan_accounts_ignored(tmp_path):
    scan = {k: list(v) + [v[0]] for k, v in SCAN.items()}
    scan["account_id"][-1] = "zz"
    lp, sd = _write(tmp_path, scan=scan)
    r = evaluate(lp, sd)
    assert r["counts"]["unlabelled_in_scan"] == 1 and r["counts"]["accounts"] == 7


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda l, s: s.pop("risk"), "lacks column"),
        (lambda l, s: s.__setitem__("action", ["allow", "allow", "nuke", "allow", "allow", "allow"]), "unknown action"),
        (lambda l, s: s.__setitem__("account_id", ["b1", "b1", "b3", "b4", "a1", "a2"]), "repeats account_id"),
        (lambda l, s: l.pop("archetype"), "lacks column"),
    ],
)
def test_bad_inputs_raise_usage_error(tmp_path, mutate, match):
    labels = {k: list(v) for k, v in LABELS.items()}
    scan = {k: list(v) for k, v in SCAN.items()}
    mutate(labels, scan)
    lp, sd = _write(tmp_path, labels, scan)
    with pytest.raises(UsageError, match=match):
        evaluate(lp, sd)


def test_missing_and_corrupt_files(tmp_path):
    lp, sd = _write(tmp_path)
    with pytest.raises(UsageError, match="not found"):
        evaluate(tmp_path / "nope.parquet", sd)
    with pytest.raises(UsageError, match="not found"):
        evaluate(lp, tmp_path / "nodir")
    with pytest.raises(UsageError, match="not a file|folder"):
        evaluate(lp, lp)
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(UsageError, match="cannot read"):
        load_labels(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="not found"):
        evaluate(lp, empty)


# ---------------------------------------------------------------- CLI
def _cli(*args):
    return subprocess.run(
        [sys.executable, "-c", "from distillguard.cli import main; main()", "evaluate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_table_json_out_and_exit_codes(tmp_path):
    lp, sd = _write(tmp_path)
    out = tmp_path / "res" / "eval.json"
    r = _cli("--labels", str(lp), "--scan", str(sd), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "ROC AUC" in r.stdout and "volume" in r.stdout
    assert json.loads(out.read_text())["counts"]["accounts"] == 7

    r = _cli("--labels", str(lp), "--scan", str(sd), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["systems"]["scan"]["roc_auc"] == pytest.approx(6.5 / 12)

    r = _cli("--labels", str(tmp_path / "missing.parquet"), "--scan", str(sd))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not found" in r.stderr
    assert "Traceback" not in r.stderr

    (tmp_path / "junk.parquet").write_bytes(b"PAR1 garbage")
    r = _cli("--labels", str(tmp_path / "junk.parquet"), "--scan", str(sd))
    assert r.returncode == 2 and "Traceback" not in r.stderr

    r = _cli("--labels", str(lp))  # missing required option
    assert r.returncode == 2


# ---------------------------------------------------------------- properties
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=1, max_size=40),
    st.sampled_from([0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 1.0]),
)
def test_threshold_matches_brute_force(pairs, target):
    y = np.array([p[0] for p in pairs], bool)
    s = np.array([p[1] for p in pairs], float)  # few distinct values: many ties
    n_neg = int((~y).sum())

    def fpr_at(t):
        return ((s >= t) & ~y).sum() / n_neg if n_neg else 0.0

    ok = [t for t in sorted(set(s.tolist())) if fpr_at(t) <= target + 1e-12]
    expect = ok[0] if ok else math.inf
    t = threshold_at_fpr(y, s, target)
    assert t == expect
    r = recall_at_fpr(y, s, target)
    if r["fpr"] is not None:
        assert r["fpr"] <= target + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_roc_auc_matches_sklearn(pairs):
    from sklearn.metrics import roc_auc_score

    y = np.array([p[0] for p in pairs], bool)
    s = np.array([p[1] for p in pairs], float)
    if y.all() or not y.any():
        assert roc_auc(y, s) is None
    else:
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
