"""Simulator: archetypes, determinism, languages, families, labels, formats, errors."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.errors import UsageError
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA
from distillguard.sim import LABEL_SCHEMA, load_scenario, simulate
from distillguard.sim.bank import all_templates
from distillguard.sim.grammar_data import GRAMMAR, KINDS, LANGS, SYSTEM
from distillguard.sim.scenario import ARCHETYPES

HARD_NEGATIVES = {"nat_users", "cloud_range_users", "app_backend", "eval_runner", "tutoring", "coding_agent",
                  "enterprise_batch", "reseller", "classroom"}
CJK = re.compile(r"[\u4e00-\u9fff]")
CYR = re.compile(r"[\u0400-\u04ff]")
ES = re.compile(r"[¿¡ñáéíóú]")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    simulate("smoke", scale=1.0, seed=3, out=out)
    return out


@pytest.fixture(scope="module")
def smoke_holdout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke_holdout")
    simulate("smoke", scale=1.0, seed=3, out=out, family="holdout")
    return out


def _events(d: Path) -> pa.Table:
    return pq.read_table(d / "events.parquet")


def _labels(d: Path) -> dict[str, dict]:
    return {r["account_id"]: r for r in pq.read_table(d / "labels.parquet").to_pylist()}


def test_every_archetype_present_in_labels_and_events(smoke):
    labels = _labels(smoke)
    in_labels = {r["archetype"] for r in labels.values()}
    in_events = {labels[a]["archetype"] for a in set(_events(smoke).column("account_id").to_pylist())}
    assert in_labels == set(ARCHETYPES)
    assert in_events == set(ARCHETYPES)


def test_schemas_exact(smoke):
    for name, schema in (("events", EVENT_SCHEMA), ("accounts", ACCOUNT_SCHEMA), ("labels", LABEL_SCHEMA)):
        got = pq.read_schema(smoke / f"{name}.parquet")
        assert got.names == schema.names
        assert [f.type for f in got] == [f.type for f in schema]
        assert [f.nullable for f in got] == [f.nullable for f in schema]


def test_provenance_metadata(smoke, smoke_holdout):
    for d, fam in ((smoke, "train"), (smoke_holdout, "holdout")):
        for name in ("events", "accounts", "labels"):
            meta = json.loads(pq.read_schema(d / f"{name}.parquet").metadata[b"distillguard.sim"])
            assert meta == {"scenario": "smoke", "scale": 1.0, "seed": 3, "family": fam}


def test_label_integrity(smoke):
    ev = _events(smoke)
    labels = _labels(smoke)
    accounts = pq.read_table(smoke / "accounts.parquet").to_pylist()
    acc_ids = [a["account_id"] for a in accounts]
    assert len(acc_ids) == len(set(acc_ids)) == len(labels)
    assert set(acc_ids) == set(labels)
    assert set(ev.column("account_id").to_pylist()) <= set(labels)
    camp_arch: dict[str, set] = {}
    for r in labels.values():
        assert isinstance(r["is_attack"], bool)
        assert (r["campaign_id"] is not None) == r["is_attack"]
        if r["campaign_id"]:
            camp_arch.setdefault(r["campaign_id"], set()).add(r["archetype"])
    assert all(len(v) == 1 for v in camp_arch.values())
    assert len(camp_arch) >= 9
    ids = ev.column("event_id").to_pylist()
    assert len(ids) == len(set(ids))
    conv_owner: dict[str, str] = {}
    for a, c in zip(ev.column("account_id").to_pylist(), ev.column("conversation_id").to_pylist()):
        if c is not None:
            assert conv_owner.setdefault(c, a) == a, "a conversation id spans two accounts"
    assert len(conv_owner) > 100
    # every request comes after its account was created, inside the window
    created = {a["account_id"]: a["created_at"] for a in accounts}
    sc = load_scenario("smoke")
    end = sc.start + dt.timedelta(days=sc.days)
    for a, t in zip(ev.column("account_id").to_pylist(), ev.column("ts").to_pylist()):
        assert created[a] <= t
        assert sc.start <= t < end
    statuses = set(ev.column("status").to_pylist())
    assert statuses <= {"ok", "error", "refused", "rate_limited"}


def test_deterministic_for_a_seed(tmp_path, smoke):
    a, b = tmp_path / "a", tmp_path / "b"
    simulate("smoke", seed=3, out=a)
    simulate("smoke", seed=3, out=b)
    for name in ("events.parquet", "accounts.parquet", "labels.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert pq.read_table(a / name).equals(pq.read_table(smoke / name)), name
    c = tmp_path / "c"
    simulate("smoke", seed=4, out=c)
    assert not pq.read_table(c / "events.parquet").equals(pq.read_table(a / "events.parquet"))


def test_multilingual_content(smoke):
    ev = _events(smoke)
    labels = _labels(smoke)
    for attack, floor in ((True, 0.02), (False, 0.01)):
        prompts = [p for a, p in zip(ev.column("account_id").to_pylist(), ev.column("prompt").to_pylist())
                   if labels[a]["is_attack"] == attack]
        assert sum(bool(CJK.search(p)) for p in prompts) > floor * len(prompts)
        assert sum(bool(CYR.search(p)) for p in prompts) > floor * len(prompts)
        assert sum(bool(ES.search(p)) for p in prompts) > floor * len(prompts)
    english = [p for p in ev.column("prompt").to_pylist() if not (CJK.search(p) or CYR.search(p) or ES.search(p))]
    assert len(english) > 0.3 * len(ev)


def test_families_disjoint_and_complete():
    train, hold = all_templates("train"), all_templates("holdout")
    for kind in KINDS:
        for lang in LANGS:
            t, h = set(train[(kind, lang)]), set(hold[(kind, lang)])
            assert t and h, (kind, lang)
            assert not t & h, (kind, lang, t & h)
    all_t = {x for v in train.values() for x in v}
    all_h = {x for v in hold.values() for x in v}
    assert not all_t & all_h
    for kind, fam in SYSTEM.items():
        assert not set(fam["train"]) & set(fam["holdout"]), kind
    # every alternative of every part differs between families, except pure slots and empties
    for kind in GRAMMAR:
        for lang in LANGS:
            alts = lambda f: {a for p in GRAMMAR[kind][f][lang] for a in p.split("|") if a.strip() and not re.fullmatch(r"\s*\{[a-z]+\}\s*", a)}
            assert not alts("train") & alts("holdout"), (kind, lang, alts("train") & alts("holdout"))


def test_train_and_holdout_outputs_share_no_prompt(smoke, smoke_holdout):
    tp = set(_events(smoke).column("prompt").to_pylist())
    hp = set(_events(smoke_holdout).column("prompt").to_pylist())
    assert tp and hp and not tp & hp


def test_no_fixed_marker_on_attack_prompts(smoke):
    ev = _events(smoke)
    labels = _labels(smoke)
    rows = list(zip(ev.column("account_id").to_pylist(), ev.column("prompt").to_pylist()))
    attack = [p.lower() for a, p in rows if labels[a]["is_attack"]]
    benign = [p.lower() for a, p in rows if not labels[a]["is_attack"]]
    words = set(re.findall(r"\w{4,}", attack[0]))
    common = {w for w in words if all(w in p for p in attack)}
    assert not common
    # hard negatives share the attack vocabulary of step-by-step reasoning
    assert sum("step by step" in p or "step-by-step" in p for p in benign) > 10
    assert sum("step by step" in p or "step-by-step" in p for p in attack) > 10


def test_model_pivot_within_a_day(smoke):
    ev = _events(smoke)
    labels = _labels(smoke)
    sc = load_scenario("smoke")
    rel = sc.start + dt.timedelta(days=float(sc.release["at_day"]))
    after = rel + dt.timedelta(hours=20)  # the pivot happens within a day of the release
    share = {}
    for arch in ("model_pivot", "chat"):
        ms = [m for a, m, t in zip(ev.column("account_id").to_pylist(), ev.column("model").to_pylist(), ev.column("ts").to_pylist())
              if labels[a]["archetype"] == arch and t >= after]
        share[arch] = sum(m == sc.release["name"] for m in ms) / max(1, len(ms))
    assert share["model_pivot"] > 0.4
    assert share["chat"] < 0.2


def test_campaigns_share_infrastructure_imperfectly(smoke):
    accounts = {a["account_id"]: a for a in pq.read_table(smoke / "accounts.parquet").to_pylist()}
    labels = _labels(smoke)
    hydra = [a for a, r in labels.items() if r["archetype"] == "hydra"]
    cards = [accounts[a]["payment_fingerprint"] for a in hydra]
    shared = [c for c in cards if c and cards.count(c) > 1]
    assert len(shared) > 0.4 * len(hydra)          # a few shared cards
    assert len(set(cards)) > 3                      # but not every account shares one
    low = [a for a, r in labels.items() if r["archetype"] == "low_and_slow"]
    lcards = [accounts[a]["payment_fingerprint"] for a in low if accounts[a]["payment_fingerprint"]]
    assert len(lcards) == len(set(lcards))          # unique card per account


def test_jsonl_format(tmp_path, smoke):
    simulate("smoke", seed=3, out=tmp_path, fmt="jsonl")
    assert not (tmp_path / "events.parquet").exists()
    lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(_events(smoke))
    first = json.loads(lines[0])
    assert list(first) == sorted(first)
    assert set(first) <= set(EVENT_SCHEMA.names)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["ts"])
    assert {json.loads(x)["event_id"] for x in lines[:50]} <= set(_events(smoke).column("event_id").to_pylist())


def test_scale_of_default_scenario():
    sc = load_scenario("default", 1.0)
    benign = sum(p.accounts for p in sc.populations if not p.attack)
    attack = sum(p.accounts for p in sc.populations if p.attack)
    assert 8000 <= benign <= 12000
    assert 2000 <= attack <= 3000
    for p in sc.populations:
        if p.archetype in HARD_NEGATIVES:
            assert p.accounts >= 300, p.archetype
    sc2 = load_scenario("default", 2.0)
    assert sum(p.accounts for p in sc2.populations) == pytest.approx(2 * (benign + attack), rel=0.01)
    rs = load_scenario("reported-scale", 1.0)
    assert sum(p.accounts for p in rs.populations if p.attack) == 24000


def test_bad_scenarios_raise_usage_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text in ("populations: [", "populations:\n  - {archetype: nope, accounts: 3}\n",
                 "populations:\n  - {archetype: chat, accounts: 3, volum: {median: 3}}\n",
                 "populations:\n  - {archetype: chat, accounts: 3, timing: {start: sometimes}}\n",
                 "nonsense: 1\n", "- 1\n- 2\n", "models: [1]\npopulations:\n  - {archetype: chat, accounts: 3}\n",
                 "populations:\n  - {archetype: chat, accounts: 3, infra: {ip: {per_account: [0, 0]}}}\n",
                 "populations:\n  - {archetype: chat, accounts: 3, params: {n: {values: [two], p: [1]}}}\n",
                 "populations:\n  - {archetype: chat, accounts: 3, volume: 5}\n",
                 "populations:\n  - {archetype: chat, accounts: 3, languages: {fr: 1}}\n",
                 "populations:\n  - {archetype: chat, accounts: 3, prompts: {poetry: 1}}\n"):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(UsageError):
            load_scenario(bad)
    with pytest.raises(UsageError):
        load_scenario("no-such-preset")
    with pytest.raises(UsageError):
        simulate("smoke", out=tmp_path / "o", fmt="csv")
    with pytest.raises(UsageError):
        simulate("smoke", out=tmp_path / "o", family="test")


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", "from distillguard.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_same_bytes_in_another_process(tmp_path, smoke):
    r = _cli("simulate", "--scenario", "smoke", "--seed", "3", "--out", str(tmp_path), "-q", env={"PYTHONHASHSEED": "4321"})
    assert r.returncode == 0, r.stderr
    for name in ("events.parquet", "accounts.parquet", "labels.parquet"):
        assert (tmp_path / name).read_bytes() == (smoke / name).read_bytes(), name


def test_cli_bad_scenario_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("populations:\n  - {archetype: unicorn, accounts: 3}\n", encoding="utf-8")
    for args in (["--scenario", str(bad)], ["--scenario", "nope"], ["--format", "xml"], ["--scale", "-1"], ["--scale", "abc"],
                 ["--seed", "-3"], ["--seed", "x"], ["--family", "test"],
                 ["--scenario", str(tmp_path / "missing.yaml")]):
        r = _cli("simulate", "--out", str(tmp_path / "o"), *args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_runs_smoke(tmp_path):
    r = _cli("simulate", "--scenario", "smoke", "--seed", "5", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["events"] == len(_events(tmp_path)) > 1000
    assert set(summary["accounts_per_archetype"]) == set(ARCHETYPES)


def test_custom_scenario_file_with_overrides_and_empty_population(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(
        "name: mine\nwindow: {start: '2026-05-04T00:00:00Z', days: 1}\n"
        "populations:\n"
        "  - {archetype: chat, accounts: 0}\n"
        "  - {archetype: tutoring, accounts: 5, languages: {ru: 1.0}, language_from_country: false, second_language: 0.0}\n"
        "  - {archetype: hydra, accounts: 6, campaigns: 2, volume: {median: 5}}\n",
        encoding="utf-8")
    out = tmp_path / "o"
    summary = simulate(f, seed=1, out=out)
    labels = _labels(out)
    assert summary["accounts"] == len(labels) == 11
    assert len({r["campaign_id"] for r in labels.values() if r["campaign_id"]}) == 2
    ev = _events(out)
    tut = [p for a, p in zip(ev.column("account_id").to_pylist(), ev.column("prompt").to_pylist())
           if labels[a]["archetype"] == "tutoring"]
    assert tut and all(CYR.search(p) for p in tut if len(p) > 40)


def test_adaptive_campaign_changes_proxies_after_at_day(smoke):
    ev = _events(smoke)
    labels = _labels(smoke)
    sc = load_scenario("smoke")
    pop = next(p for p in sc.populations if p.archetype == "hydra_adaptive")
    at = sc.start + dt.timedelta(days=float(pop.spec["adapt"]["at_day"]))
    before, after = set(), set()
    for a, ip, t in zip(ev.column("account_id").to_pylist(), ev.column("client_ip").to_pylist(), ev.column("ts").to_pylist()):
        if labels[a]["archetype"] == "hydra_adaptive":
            (after if t >= at else before).add(ip)
    assert before and after
    assert len(before & after) < 0.2 * min(len(before), len(after))  # a few own home IPs may stay


def test_routers_send_end_user_ids(smoke):
    ev = _events(smoke)
    labels = _labels(smoke)
    seen = {}
    for a, x in zip(ev.column("account_id").to_pylist(), ev.column("extra").to_pylist()):
        arch = labels[a]["archetype"]
        if arch in ("reseller", "reseller_mixed"):
            assert json.loads(x)["end_user"].startswith("eu_")
            seen.setdefault(a, set()).add(x)
        else:
            assert x is None
    assert seen and max(len(v) for v in seen.values()) > 10
