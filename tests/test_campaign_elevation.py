"""Campaign members elevated on their campaign's characteristic detector (score/elevation.py): the policy rule,
the elevation itself, the decision service, and a real scan of simulated traffic (issue 12)."""
from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from distillguard.errors import UsageError
from distillguard.score.elevation import CODE, campaign_elevated_codes, elevated_members, elevation_levels
from distillguard.score.policy import Policy

FLAGS = ("challenge", "throttle", "block")
RULE = "challenge-campaign-signal-member"


def test_an_elevated_campaign_member_is_challenged_at_any_risk_on_its_campaigns_intent():
    p = Policy.load()
    d = p.decide(0.05, [CODE], in_campaign=True, elevated={"REFUSAL_PROBING"})
    assert (d.action, d.rule_id) == ("challenge", RULE)
    assert p.decide(0.05, [CODE], in_campaign=True, elevated={"RUBRIC_GRADING"}).action == "challenge"
    assert p.decide(0.05, [CODE], elevated={"REFUSAL_PROBING"}).action == "allow"  # no campaign: nothing to share
    # a behaviour family is what chat users and templated apps merged into a community trip too
    assert p.decide(0.05, [CODE], in_campaign=True, elevated={"HIGH_OUTPUT_RATIO"}).action == "allow"
    assert p.decide(0.05, [], in_campaign=True).action == "allow"  # a member without the elevation


def test_elevated_signal_conditions_name_known_families():
    text = resources.files("distillguard.score").joinpath("policy.yaml").read_text()
    with pytest.raises(UsageError, match="elevated_signal"):
        Policy.from_yaml(text.replace("elevated_signal: [content, outcomes]", "elevated_signal: [contnet]"))
    with pytest.raises(UsageError, match="elevation_quantile|unknown setting"):
        Policy.from_yaml(text.replace("elevation_quantile: 0.99", "elevation_quantil: 0.99"))


def test_elevation_is_relative_to_the_accounts_outside_campaigns_and_loose_members_join_when_elevated():
    """Ring members above the outside population's 99th percentile on the campaign's detector are elevated; a
    merged benign member below it is not; a loosely attached elevated member joins; a core's community does not."""
    codes = ["REFUSAL_PROBING", "HIGH_OUTPUT_RATIO"]
    ids = [f"ring{i}" for i in range(4)] + ["merged", "loose", "loose_plain", "core_loose"] + [f"u{i}" for i in range(200)]
    raw = np.zeros((len(ids), 2))
    raw[:4, 0] = [0.9, 0.9, 0.3, 0.3]  # two strong ring members, two moderate ones
    raw[5, 0] = 0.25
    raw[8:, 0] = np.linspace(0.0, 0.2, 200)  # the outside population tops out at 0.2
    raw[8:, 1] = np.linspace(0.0, 1.0, 200)
    raw[4, 1] = 0.99  # the merged user: long answers, no refusals
    belongs = {a: 0 for a in ids[:5]}
    outside = np.array([a not in belongs for a in ids])
    levels = elevation_levels(raw, np.ones(len(ids), dtype=bool), outside, 0.99)
    assert 0.19 < levels[0] <= 0.2
    membership = {a: 0 for a in ids[:7]} | {"core_loose": 1}
    out = elevated_members(belongs, {0: {"REFUSAL_PROBING"}, (1, 0): {"REFUSAL_PROBING"}}, membership, {0}, ids, raw, codes,
                           levels)
    assert sorted(ids[i] for i in out) == ["loose", "ring0", "ring1", "ring2", "ring3"]
    assert out[5] == [{"code": "REFUSAL_PROBING", "score": 0.25, "level": round(float(levels[0]), 4)}]
    assert belongs["loose"] == 0 and "loose_plain" not in belongs and "core_loose" not in belongs
    assert elevation_levels(raw, np.zeros(len(ids), dtype=bool), outside, 0.99) is None  # no population
    assert elevation_levels(raw, np.ones(len(ids), dtype=bool), outside, 0.0) is None  # off


def test_a_small_scan_has_no_elevation_and_says_so(smoke_traffic, tmp_path):
    from distillguard.ingest import ingest_files
    from distillguard.scan import run_scan, store_inputs
    from distillguard.store import EventStore

    with EventStore(tmp_path / "s.duckdb") as store:
        ingest_files([str(smoke_traffic / "events.parquet")], store, accounts=str(smoke_traffic / "accounts.parquet"),
                     progress=False)
        result = run_scan(*store_inputs(store))
    report = result.calibration["campaign_elevation"]
    assert result.calibration["population"]["source"] == "reference"
    assert report["levels"] is None and "small scan" in report["note"]
    assert not [r for r in result.accounts.to_pylist() if CODE in r["reasons"]]


def test_the_service_challenges_an_elevated_member_as_the_scan_does(tmp_path):
    """The decision service reads the CAMPAIGN_SIGNAL reason the scan stored and decides with the same rule."""
    from conftest import service_decisions

    signal = [{"code": CODE, "weight": 0.0, "terms": ["campaign_elevation"], "strong": False, "campaign_shared": False,
               "evidence": {"campaign_elevation": {"campaign_id": "C-test", "quantile": 0.99,
                                                   "signals": [{"code": "REFUSAL_PROBING", "score": 0.3, "level": 0.05}]}}}]
    volume = json.loads(json.dumps(signal))
    volume[0]["evidence"]["campaign_elevation"]["signals"][0]["code"] = "HIGH_OUTPUT_RATIO"
    assert campaign_elevated_codes(signal) == {"REFUSAL_PROBING"}
    d = service_decisions(tmp_path, {"camp-2": (0.05, signal), "camp-3": (0.05, volume)})
    assert (d["camp-2"]["action"], d["camp-2"]["rule_id"]) == ("challenge", RULE), d
    assert CODE in {r["code"] for r in d["camp-2"]["reasons"]}
    assert d["camp-3"]["action"] not in FLAGS, d


def test_a_real_scan_challenges_elevated_ring_members_and_not_the_benign_users_merged_with_them(tmp_path):
    """Chat users, tutoring apps and cloud-range users share a jailbreak ring's cloud range, and a rubric ring runs
    beside them: ring members whose own signals are weak but above the population on their campaign's detector are
    challenged, each saying which detector and which campaign; the benign users in the same campaigns are not."""
    from conftest import scan_scenario

    cloud = {"ip": {"kind": "cloud_shared", "per_account": [1, 3], "group": [30, 60], "shared_nets": 2}}
    sc = {"name": "elevation", "window": {"days": 4},
          "populations": [{"archetype": "chat", "accounts": 350},
                          {"archetype": "cloud_range_users", "accounts": 30, "infra": cloud},
                          {"archetype": "tutoring", "accounts": 20, "infra": cloud},
                          {"archetype": "jailbreak", "accounts": 60, "infra": cloud},
                          {"archetype": "rubric_grading", "accounts": 30}]}
    result, labels = scan_scenario(sc, 4, tmp_path)
    attack = {r["account_id"]: r["is_attack"] for r in labels}
    report = result.calibration["campaign_elevation"]
    assert report["quantile"] == 0.99 and report["elevated_members"] > 0
    rows = result.accounts.to_pylist()
    by_rule = [r for r in rows if r["rule_id"] == RULE]
    assert by_rule and all(attack[r["account_id"]] for r in by_rule)
    families = Policy.load().corroboration.families
    intent = families["content"] | families["outcomes"]
    for r in by_rule:
        assert r["campaign_id"] is not None and r["risk"] < 0.5
        reasons = json.loads(r["reasons_json"])
        signal = [x["evidence"]["campaign_elevation"] for x in reasons if x["code"] == CODE]
        for s in signal:  # the detector, its score above the population's level, and the campaign
            assert s["campaign_id"] == r["campaign_id"] and all(h["score"] > h["level"] for h in s["signals"])
        elevated = campaign_elevated_codes(reasons)
        assert elevated & intent, r["account_id"]
        assert elevated <= {x["code"] for x in reasons if x.get("campaign_elevated")} | {
            h["code"] for s in signal for h in s["signals"]}
    merged = [r for r in rows if r["campaign_id"] is not None and not attack[r["account_id"]]]
    assert merged  # linkage put benign users into the rings' campaigns
    for r in merged:
        assert not campaign_elevated_codes(json.loads(r["reasons_json"])), r["account_id"]
        assert r["action"] not in FLAGS, r["account_id"]
