"""Verdicts calibrated on the scanned traffic: corroboration, the alert budget, operators,
the small-scan fallback and analyst feedback, on real scans of simulated traffic (issue 12)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from importlib import resources

from distillguard.errors import UsageError
from distillguard.score.policy import Policy
from distillguard.score.relative import lookalikes, make_relative, population_baselines

FLAGS = ("challenge", "throttle", "block")


def _policy(**changes) -> Policy:
    data = yaml.safe_load(resources.files("distillguard.score").joinpath("policy.yaml").read_text())
    for path, value in changes.items():
        section, key = path.split("__")
        data[section][key] = value
    return Policy.from_dict(data)


def _scan(traffic, policy=None, db=None, cleared=frozenset(), dismissed=()):
    from distillguard.audit import matches_dismissed
    from distillguard.ingest import ingest_files
    from distillguard.scan import run_scan, store_inputs
    from distillguard.store import EventStore

    store = EventStore(db)
    with store:
        ingest_files([str(traffic / "events.parquet")], store, quarantine_path=traffic / "q.jsonl",
                     accounts=str(traffic / "accounts.parquet"), progress=False)
        return run_scan(*store_inputs(store), policy,
                        is_dismissed=(lambda m: matches_dismissed(m, dismissed)) if dismissed else None, cleared=cleared)


@pytest.fixture(scope="module")
def default_scan(smoke_traffic, tmp_path_factory):
    return _scan(smoke_traffic, db=tmp_path_factory.mktemp("cal") / "a.duckdb")


def _rows(result):
    return result.accounts.to_pylist()


def test_no_single_behaviour_family_moves_an_account_past_monitor():
    p = Policy.load()
    for codes in (["HIGH_OUTPUT_RATIO"], ["LOGPROBS_HARVEST", "SAMPLING_FANOUT"], ["MACHINE_TIMING"], ["COT_ELICITATION"],
                  ["HIGH_OUTPUT_RATIO", "MACHINE_TIMING"]):
        d = p.decide(0.99, codes)
        assert (d.action, d.rule_id, d.capped_from) == ("monitor", "corroboration-required", "throttle"), codes
    assert p.decide(0.99, ["COT_ELICITATION", "HIGH_OUTPUT_RATIO"]).action == "throttle"
    assert p.decide(0.99, ["HIGH_OUTPUT_RATIO"], in_campaign=True, strong={"HIGH_OUTPUT_RATIO"}).action == "block"
    assert p.decide(0.1, ["KNOWN_INDICATOR"]).action == "challenge"
    assert p.decide(0.3, ["HIGH_OUTPUT_RATIO"]).action == "monitor"


def test_end_user_harvest_is_corroborated_by_construction_and_inside_the_budget():
    """Intent judged per end user plus a few end users carrying the key's traffic: its own combination, own evidence."""
    p = Policy.load()
    assert p.decide(0.6, ["END_USER_HARVEST"]).action == "challenge"
    assert p.corroboration.own_evidence_only({"END_USER_HARVEST"}, False)
    d = p.decide(0.6, ["END_USER_HARVEST"], held_back=True)
    assert (d.action, d.rule_id) == ("monitor", "alert-budget")
    # corroborated twice in one signal, as a strong campaign member is: challenged from the monitor level, still budgeted
    assert (p.decide(0.3, ["END_USER_HARVEST"]).action, p.decide(0.3, ["END_USER_HARVEST"]).rule_id) == \
        ("challenge", "challenge-end-user-harvest")
    assert p.decide(0.3, ["END_USER_HARVEST"], held_back=True).rule_id == "alert-budget"
    assert p.decide(0.1, ["END_USER_HARVEST"]).action == "allow"


def test_a_strong_member_of_a_campaign_is_challenged_at_the_monitor_level():
    """Campaign evidence plus the account's own strong intent signal: challenged from risk 0.2, not 0.5."""
    p = Policy.load()
    d = p.decide(0.3, ["RUBRIC_GRADING"], in_campaign=True, strong={"RUBRIC_GRADING"})
    assert (d.action, d.rule_id) == ("challenge", "challenge-strong-campaign-member")
    assert p.decide(0.3, ["REFUSAL_PROBING"], in_campaign=True, strong={"REFUSAL_PROBING"}).action == "challenge"
    assert p.decide(0.3, ["RUBRIC_GRADING"], in_campaign=True).action == "monitor"  # its campaign's pooled evidence only
    assert p.decide(0.3, ["RUBRIC_GRADING"], strong={"RUBRIC_GRADING"}).action == "monitor"  # no campaign
    # a behaviour family is what templated apps on a cloud range share: it waits for risk 0.5
    assert p.decide(0.3, ["LOGPROBS_HARVEST"], in_campaign=True, strong={"LOGPROBS_HARVEST"}).action == "monitor"
    assert p.decide(0.1, ["RUBRIC_GRADING"], in_campaign=True, strong={"RUBRIC_GRADING"}).action == "allow"


def test_strong_signal_conditions_name_known_families():
    text = resources.files("distillguard.score").joinpath("policy.yaml").read_text()
    with pytest.raises(UsageError, match="strong_signal"):
        Policy.from_yaml(text.replace("strong_signal: [content, outcomes]", "strong_signal: [contnet]"))


def test_baseline_passes_is_one_or_two(tmp_path):
    with pytest.raises(UsageError, match="baseline_passes"):
        _policy(population__baseline_passes=3)
    import subprocess
    import sys

    bad = tmp_path / "p.yaml"
    bad.write_text(resources.files("distillguard.score").joinpath("policy.yaml").read_text()
                   .replace("  strong: 0.5", "  baseline_passes: 0\n  strong: 0.5"))
    p = subprocess.run([sys.executable, "-m", "distillguard.cli", "calibrate", "--world", str(tmp_path), "--policy", str(bad),
                        "--out", str(tmp_path / "m.yaml")], capture_output=True, text=True)
    assert p.returncode == 2 and "baseline_passes is 1 or 2" in p.stderr and "Traceback" not in p.stderr


def test_the_scan_stores_the_strong_signals_it_decided_on(default_scan):
    """The decision service reads back the strong codes the scan decided on (reasons_json)."""
    from distillguard.score.campaigns import campaign_strong_codes
    from distillguard.score.fusion import strong_codes

    rows = _rows(default_scan)
    own = [strong_codes(json.loads(r["reasons_json"])) for r in rows]
    shared = [campaign_strong_codes(json.loads(r["reasons_json"])) for r in rows]
    assert any(own) and not all(own) and any(shared)
    for r, o, s in zip(rows, own, shared):
        assert s <= o <= set(r["reasons"])
        assert not s or r["campaign_id"] is not None  # shared with a campaign: only its members
        if r["rule_id"] == "challenge-strong-campaign-member":
            assert s and 0.2 <= r["risk"] < 0.5


def test_every_flag_of_a_real_scan_is_corroborated(default_scan):
    rule = Policy.load().corroboration
    flagged = [r for r in _rows(default_scan) if r["action"] in FLAGS]
    assert flagged
    for r in flagged:
        assert rule.satisfied(set(r["reasons"]), r["campaign_id"] is not None), r
    capped = [r for r in _rows(default_scan) if r["rule_id"] == "corroboration-required"]
    assert all(r["action"] == "monitor" for r in capped)


def test_strong_signals_are_reasons_even_at_zero_fusion_weight(default_scan):
    """A detector the fusion does not weigh still speaks: its strong signal is listed."""
    rows = _rows(default_scan)
    strong = 0.5
    for r in rows:
        for code, col in (("JAILBREAK", "jailbreak"), ("RUBRIC_GRADING", "rubric_grading"), ("MACHINE_TIMING", "machine_timing")):
            if r[col] >= strong:
                assert code in r["reasons"], (r["account_id"], code)


def test_the_alert_budget_holds_back_own_evidence_flags_but_not_campaigns(smoke_traffic, tmp_path):
    # the smoke world is a small scan: measured as a population here (a budget is a share of one)
    loose = _scan(smoke_traffic, _policy(population__min_accounts=50), db=tmp_path / "a.duckdb")
    tight = _scan(smoke_traffic, _policy(population__min_accounts=50, corroboration__max_flag_share=0.0), db=tmp_path / "b.duckdb")
    budget = tight.calibration["alert_budget"]
    rows = _rows(tight)
    held = [r for r in rows if r["rule_id"] == "alert-budget"]
    assert held and budget["budget"] == 0 and budget["held_back"] == len(held)
    assert all(r["action"] == "monitor" and r["campaign_id"] is None for r in held)
    assert not [r for r in rows if r["action"] in FLAGS and r["campaign_id"] is None
                and not {"KNOWN_INDICATOR", "CONFIRMED_CAMPAIGN"} & set(r["reasons"])]
    # campaign members are outside the budget: the same campaigns flag the same accounts
    before = {r["account_id"] for r in _rows(loose) if r["action"] in FLAGS and r["campaign_id"]}
    after = {r["account_id"] for r in rows if r["action"] in FLAGS and r["campaign_id"]}
    assert before and before == after
    assert budget["own_evidence_flags"] == len(held) and budget["binds"]


def test_a_small_scan_has_no_alert_budget_and_says_so(default_scan):
    budget = default_scan.calibration["alert_budget"]
    assert default_scan.calibration["population"]["source"] == "reference"
    assert budget["budget"] is None and not budget["binds"] and "small scan" in budget["note"]


def test_operator_ids_are_consistent_across_outputs(default_scan):
    rows = _rows(default_scan)
    by_campaign = {c["campaign_id"]: c for c in default_scan.campaigns}
    assert by_campaign
    for r in rows:
        if r["campaign_id"]:
            assert r["operator_id"] == by_campaign[r["campaign_id"]]["operator_id"]
        else:
            assert r["operator_id"] is None
    listed = {cid for o in default_scan.operators for cid in o["campaigns"]}
    assert listed == set(by_campaign)


def test_a_small_scan_falls_back_to_reference_baselines_and_says_so(smoke_traffic, tmp_path):
    result = _scan(smoke_traffic, _policy(population__min_accounts=10**6), db=tmp_path / "s.duckdb")
    pop = result.calibration["population"]
    assert pop["source"] == "reference" and "reference baselines" in pop["note"]
    doc_scan = _scan(smoke_traffic, _policy(population__min_accounts=1), db=tmp_path / "p.duckdb")
    assert doc_scan.calibration["population"]["source"] == "population"


def test_population_baselines_survive_a_campaign_of_a_fifth_of_accounts():
    rng = np.random.default_rng(0)
    benign = rng.uniform(0.0, 0.3, 800)
    ring = rng.uniform(0.9, 1.0, 200)
    scores = np.concatenate([benign, ring])[:, None]
    b = population_baselines(scores, ["output_harvest"], np.ones(1000, dtype=bool), min_accounts=100)
    assert b.source == "population" and b.values["output_harvest"] < 0.6
    rel = make_relative(scores, ["output_harvest"], b)[:, 0]
    assert (rel[800:] >= 0.5).all() and (rel[:800] < 0.5).all()
    # ordinary traffic that scores high everywhere (short questions, long answers) is the baseline
    chatty = rng.uniform(0.5, 0.9, 1000)[:, None]
    bc = population_baselines(chatty, ["output_harvest"], np.ones(1000, dtype=bool), min_accounts=100)
    assert (make_relative(chatty, ["output_harvest"], bc) < 0.5).mean() > 0.99


def test_a_large_campaign_does_not_lift_the_baseline_over_a_smaller_ring():
    """Most ordinary accounts barely trip the signal; a quarter of the accounts harvest at full strength
    and a small ring harvests moderately (low-and-slow). Median and MAD over everyone put the baseline above
    the small ring; leaving out the top 30% keeps it where ordinary accounts are."""
    rng = np.random.default_rng(0)
    ordinary = np.where(rng.random(700) < 0.6, 0.0, rng.uniform(0.0, 0.3, 700))
    harvest, ring = rng.uniform(0.9, 1.0, 250), rng.uniform(0.6, 0.75, 50)
    scores = np.concatenate([ordinary, harvest, ring])[:, None]
    active = np.ones(len(scores), dtype=bool)

    def strong(max_contamination):
        b = population_baselines(scores, ["output_harvest"], active, min_accounts=100, max_contamination=max_contamination)
        return make_relative(scores, ["output_harvest"], b)[:, 0] >= 0.5

    everyone, trimmed = strong(0.0), strong(0.3)
    assert everyone[700:950].all() and not everyone[950:].any()  # the ring hides under the harvesters
    assert trimmed[700:].all() and not trimmed[:700].any()
    # without any campaign, trimming lowers the baseline but ordinary accounts stay below the strong bar
    clean = rng.gamma(2.0, 0.05, 1000)[:, None]
    b = population_baselines(clean, ["output_harvest"], np.ones(1000, dtype=bool), min_accounts=100, max_contamination=0.3)
    assert (make_relative(clean, ["output_harvest"], b) < 0.5).all()


@pytest.mark.slow
def test_a_second_baseline_pass_outside_the_campaigns_uncovers_a_ring_the_lifted_baseline_hid(tmp_path):
    """``population.baseline_passes: 2`` (off in the packaged policy, docs/scoring.md section 9 "Two-pass"):
    a world where campaigns are nearly half the active accounts lifts the output-harvest baseline over a
    smaller ring's scores; taken again outside the first judging's campaigns, the baseline drops, a campaign
    of that world that was missed is found, no benign account is flagged for it, and the scan stores the
    second pass's baselines, which the decision service loads. Of the smoke worlds at scale 3, seeds 3-10, the first
    pass misses a campaign the second finds on seeds 4 and 9 (on the rest both find the same): seed 4 is the premise."""
    from distillguard.serve.campaigns import CampaignMap
    from distillguard.sim import simulate
    from distillguard.store import EventStore
    from distillguard.report.writers import store_results

    world = tmp_path / "w"
    simulate("smoke", scale=3.0, seed=4, out=world, fmt="parquet", family="holdout")
    labels = pq.read_table(world / "labels.parquet").to_pylist()
    one = _scan(world, _policy(population__baseline_passes=1), db=tmp_path / "one.duckdb")
    two = _scan(world, _policy(population__baseline_passes=2), db=tmp_path / "two.duckdb")
    first, second = one.calibration["population"], two.calibration["population"]
    assert first["source"] == second["source"] == "population"
    assert second["n_active"] < first["n_active"] and second["note"].startswith("second pass")
    assert second["baselines"]["output_harvest"] < first["baselines"]["output_harvest"]

    def flagged(result):
        return {r["account_id"] for r in _rows(result) if r["action"] in FLAGS}

    def found(result):
        f, sizes, hits = flagged(result), {}, {}
        for r in labels:
            if r["is_attack"]:
                sizes[r["campaign_id"]] = sizes.get(r["campaign_id"], 0) + 1
                hits[r["campaign_id"]] = hits.get(r["campaign_id"], 0) + (r["account_id"] in f)
        return {c for c in sizes if hits[c] >= sizes[c] / 2}

    assert found(one) < found(two)  # a campaign missed before is found, none is lost
    benign = {r["account_id"] for r in labels if not r["is_attack"]}
    assert not (flagged(two) - flagged(one)) & benign
    with EventStore(tmp_path / "two.duckdb") as store:
        store_results(two, store)
        served = CampaignMap.from_store(store.con).baselines
    assert served.values == two.baselines.values and served.details["note"] == second["note"]


def test_lookalikes_of_cleared_accounts_are_found_within_the_distance():
    scores = np.array([[0.9, 0.0], [0.95, 0.05], [0.9, 0.5], [0.0, 0.0]])
    cleared = np.array([True, False, False, False])
    assert lookalikes(scores, cleared).tolist() == [True, True, False, False]


def test_a_dismissed_cluster_keeps_its_lookalikes_unflagged_on_the_next_scan(smoke_traffic, default_scan, tmp_path):
    """Analyst feedback recalibrates: once a cluster is labelled legitimate, accounts that look
    like it carry no strong signal, so they neither form a campaign nor get flagged."""
    target = max(default_scan.campaigns, key=lambda c: c["n_accounts"])
    members = set(target["accounts"])
    rows = {r["account_id"]: r for r in _rows(default_scan)}
    cleared = frozenset(sorted(members)[: len(members) // 2])  # the analyst labelled half of them
    again = _scan(smoke_traffic, db=tmp_path / "f.duckdb", cleared=cleared, dismissed=(frozenset(cleared),))
    after = {r["account_id"]: r for r in _rows(again)}
    rest = members - cleared
    flagged_before = [a for a in rest if rows[a]["action"] in FLAGS]
    assert flagged_before, "the cluster was flagged before the feedback"
    still = [a for a in flagged_before if after[a]["action"] in FLAGS]
    assert len(still) < len(flagged_before)
    # look-alikes beyond the cleared accounts themselves lost their strong signals
    assert again.calibration["analyst_cleared"]["lookalikes_without_strong_signals"] > len(cleared)


def test_calibrate_fits_one_model_across_worlds_and_no_detector_is_silenced(tmp_path):
    import subprocess
    import sys

    from distillguard.score.calibration import SIGNAL_FLOOR
    from distillguard.score.fusion import FusionModel
    from distillguard.sim import simulate

    worlds = []
    for seed in (11, 12):
        d = tmp_path / f"w{seed}"
        simulate("smoke", scale=1.0, seed=seed, out=d, fmt="parquet", family="train")
        worlds += ["--world", str(d)]
    out = tmp_path / "model.yaml"
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "calibrate", *worlds, "--out", str(out), "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    m = FusionModel.load(out)
    own = ["output_harvest", "jailbreak", "rubric_grading", "machine_timing", "capability_sweep"]
    assert all(m.coefficients[n] >= SIGNAL_FLOOR - 1e-9 for n in own)
    assert set(m.reference_baselines) >= set(own)
    assert [w["world"] for w in m.provenance["worlds"]] == ["w11", "w12"]
    bad = subprocess.run([sys.executable, "-m", "distillguard.cli", "calibrate", "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "--world" in bad.stderr and "Traceback" not in bad.stderr


def test_case_files_and_intel_export_per_operator(smoke_traffic, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)

    db = tmp_path / "o.duckdb"
    r = cli("scan", smoke_traffic / "events.parquet", "--accounts", smoke_traffic / "accounts.parquet", "--db", db,
            "--out", tmp_path / "res", "--quiet")
    assert r.returncode == 0, r.stderr
    ops = json.loads((tmp_path / "res" / "campaigns.json").read_text())["operators"]
    op = max(ops, key=lambda o: len(o["campaigns"]))
    r = cli("case", "export", op["operator_id"], "--db", db, "--out", tmp_path / "case", "--no-pdf")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "case").iterdir()) == sorted(op["campaigns"])
    assert all((tmp_path / "case" / c / "manifest.json").is_file() for c in op["campaigns"])
    assert cli("intel", "keygen", "--out", tmp_path / "k").returncode == 0
    r = cli("intel", "export", "--db", db, "--key-file", tmp_path / "k", "--operator", op["operator_id"],
            "--out", tmp_path / "b.json", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["campaigns"] == len(op["campaigns"])
    bad = cli("case", "export", "O-nosuchthing", "--db", db, "--out", tmp_path / "x", "--no-pdf")
    assert bad.returncode == 2 and "no operator" in bad.stderr
    # the console's queue shows each campaign's operator and filters on it
    import duckdb

    from distillguard.console.data import queue

    con = duckdb.connect(str(db), read_only=True)
    rows = queue(con, operator=op["operator_id"])["rows"]
    assert sorted(r["campaign_id"] for r in rows) == sorted(op["campaigns"])
    assert all(r["operator_id"] == op["operator_id"] and r["operator_campaigns"] == len(op["campaigns"]) for r in rows)


def test_a_campaign_corroborates_only_a_member_that_carries_its_evidence():
    """Membership by the community's links alone (a templated app's user merged with a ring) is not corroboration:
    the member needs the campaign's strong or elevated signal, or a reason of ``campaign_member_evidence``."""
    p = Policy.load()
    d = p.decide(0.99, ["SIGNUP_BURST", "SHARED_INFRA"], in_campaign=True)
    assert (d.action, d.rule_id, d.capped_from) == ("monitor", "corroboration-required", "block")
    assert p.decide(0.6, ["COT_ELICITATION"], in_campaign=True).action == "monitor"
    for evidence in ({"strong": {"COT_ELICITATION"}}, {"elevated": {"COT_ELICITATION"}}):
        assert p.decide(0.6, ["COT_ELICITATION"], in_campaign=True, **evidence).action == "challenge", evidence
    for code in ("RING_EVIDENCE", "HUB_TIED", "SHARED_ELEVATION", "CAMPAIGN_SIGNAL"):
        assert p.decide(0.6, ["COT_ELICITATION", code], in_campaign=True).action == "challenge", code
    # a member with own content plus behaviour is corroborated by its own evidence: inside the alert budget
    assert p.decide(0.6, ["COT_ELICITATION", "HIGH_OUTPUT_RATIO"], in_campaign=True).action == "challenge"
    d = p.decide(0.6, ["COT_ELICITATION", "HIGH_OUTPUT_RATIO"], in_campaign=True, held_back=True)
    assert (d.action, d.rule_id) == ("monitor", "alert-budget")
    # a policy without the setting lets every member's campaign corroborate it (the behaviour before it)
    text = resources.files("distillguard.score").joinpath("policy.yaml").read_text()
    old = Policy.from_yaml("\n".join(line for line in text.splitlines() if "campaign_member_evidence:" not in line))
    assert old.decide(0.6, ["COT_ELICITATION"], in_campaign=True).action == "challenge"


def test_campaign_member_evidence_must_be_a_list_of_codes():
    text = resources.files("distillguard.score").joinpath("policy.yaml").read_text()
    bad = "\n".join("  campaign_member_evidence: 3" if "campaign_member_evidence:" in line else line for line in text.splitlines())
    with pytest.raises(UsageError, match="campaign_member_evidence is a list of reason codes"):
        Policy.from_yaml(bad)
