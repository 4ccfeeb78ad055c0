"""Campaigns of shared moderate elevation (score/shared_elevation.py): the group test on arrays, the policy rule and
its validation, and a real scan of simulated traffic where a low-and-slow ring forms one (issue 12)."""
from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from distillguard.errors import UsageError
from distillguard.score.policy import Policy
from distillguard.score.shared_elevation import CODE, TERM, shared_elevation_groups

FLAGS = ("challenge", "throttle", "block")
RULE = "challenge-shared-elevation-member"


def _world():
    """2,000 ordinary accounts, a ring of 20 tied by templates it shares in threes, and a templated app of 20 whose
    members share every template (apps are more template-linked than rings)."""
    n = 2040
    rng = np.random.default_rng(5)
    raw = np.zeros((n, 2))  # HIGH_OUTPUT_RATIO, RUBRIC_GRADING
    raw[:2000] = rng.uniform(0.0, 0.3, size=(2000, 2))
    ring, app = np.arange(2000, 2020), np.arange(2020, 2040)
    raw[ring, 0] = rng.uniform(0.32, 0.45, size=20)  # moderately above almost every ordinary account, none far above
    raw[ring[:4], 0] = 0.1  # a few members are not elevated at all
    raw[app, 0] = rng.uniform(0.0, 0.3, size=20)  # answers as long as anyone's, bar one or two
    raw[app[:2], 0] = 0.4
    raw[app, 1] = 0.8  # every app member grades: what it is built to do
    hubs = [("template", ring[i:i + 3]) for i in range(0, 18, 2)] + [("template", app)] * 5
    hubs += [("template", np.array([i, i + 1])) for i in range(0, 1998, 7)]  # ordinary users sharing a prompt in pairs
    return raw, ring, app, hubs


def test_a_ring_elevated_together_forms_a_group_and_a_templated_app_does_not():
    raw, ring, app, hubs = _world()
    codes = ["HIGH_OUTPUT_RATIO", "RUBRIC_GRADING"]
    active, outside = np.ones(len(raw), dtype=bool), np.ones(len(raw), dtype=bool)
    kw = dict(quantile=0.98, min_share=0.3, min_members=3, max_p_value=1e-4)
    groups = shared_elevation_groups(raw, active, outside, codes, {"HIGH_OUTPUT_RATIO"}, hubs, **kw)
    assert len(groups) == 1
    g = groups[0]
    assert g["code"] == "HIGH_OUTPUT_RATIO" and set(g["members"]) <= set(ring) and len(g["members"]) >= 12
    assert g["elevated"] > 5 * g["expected"] and g["p_value"] <= 1e-4 and g["kinds"] == ["template"]
    assert all(s > g["level"] for s in g["scores"])
    # the app elevates its own detector together: that is why content detectors are not tested
    both = shared_elevation_groups(raw, active, outside, codes, set(codes), hubs, **kw)
    assert {x["code"] for x in both} == {"HIGH_OUTPUT_RATIO", "RUBRIC_GRADING"}
    # accounts already in a campaign are not tested again; off at quantile 0
    inside = outside.copy()
    inside[ring] = False
    assert not shared_elevation_groups(raw, active, inside, codes, {"HIGH_OUTPUT_RATIO"}, hubs, **kw)
    assert not shared_elevation_groups(raw, active, outside, codes, {"HIGH_OUTPUT_RATIO"}, hubs, **(kw | {"quantile": 0}))


def test_a_member_of_a_shared_elevation_campaign_is_challenged_and_says_why():
    p = Policy.load()
    d = p.decide(0.02, [CODE], in_campaign=True)
    assert (d.action, d.rule_id) == ("challenge", RULE)
    assert p.decide(0.02, [CODE]).action == "allow"  # the reason without the campaign: nothing shared
    assert p.decide(0.02, ["HIGH_OUTPUT_RATIO"], in_campaign=True).action not in FLAGS


def test_shared_elevation_families_are_corroboration_families():
    text = resources.files("distillguard.score").joinpath("policy.yaml").read_text()
    with pytest.raises(UsageError, match="shared_elevation_families"):
        Policy.from_yaml(text.replace("shared_elevation_families: [volume]", "shared_elevation_families: [volumes]"))


def test_the_service_challenges_a_shared_elevation_member_as_the_scan_does(tmp_path):
    """The decision service reads the SHARED_ELEVATION reason and the campaign the scan stored, and decides alike."""
    from conftest import service_decisions

    reason = [{"code": CODE, "weight": 0.0, "terms": [TERM], "strong": False, "campaign_shared": False,
               "evidence": {TERM: {"campaign_id": "C-test", "signal": "HIGH_OUTPUT_RATIO", "score": 0.4, "level": 0.35,
                                   "elevated": 20, "linked": 60, "expected": 1.2, "p_value": 1e-20,
                                   "linked_by": ["template"]}}}]
    d = service_decisions(tmp_path, {"camp-2": (0.02, reason)})["camp-2"]
    assert (d["action"], d["rule_id"]) == ("challenge", RULE), d
    assert CODE in {r["code"] for r in d["reasons"]}


def test_a_real_scan_forms_a_low_and_slow_campaign_and_leaves_templated_apps_alone(tmp_path):
    """A low-and-slow ring (unique cards and IPs, shared templates, long answers) among chat users and templated
    benign apps: the ring's elevated, template-linked members form a campaign on HIGH_OUTPUT_RATIO and are
    challenged, each saying which detector, the level, the count against chance and the link; no benign account
    is in such a campaign."""
    from conftest import scan_scenario

    sc = {"name": "low-and-slow", "window": {"days": 7},
          "populations": [{"archetype": "chat", "accounts": 2500},
                          {"archetype": "tutoring", "accounts": 40},
                          {"archetype": "eval_runner", "accounts": 30},
                          {"archetype": "app_backend", "accounts": 40},
                          {"archetype": "enterprise_batch", "accounts": 30},
                          {"archetype": "low_and_slow", "accounts": 50}]}
    result, labels = scan_scenario(sc, 11, tmp_path)
    attack = {r["account_id"]: r["is_attack"] for r in labels}
    report = result.calibration["shared_elevation"]
    assert report["campaigns"] >= 1 and report["members"] >= 5, report
    rows = result.accounts.to_pylist()
    shared = [r for r in rows if CODE in r["reasons"]]
    assert shared and all(attack[r["account_id"]] for r in shared)
    for r in shared:
        assert r["campaign_id"] is not None and r["action"] in FLAGS
        assert r["rule_id"] == RULE or r["risk"] >= 0.5
        ev = [x["evidence"][TERM] for x in json.loads(r["reasons_json"]) if x["code"] == CODE][0]
        assert ev["signal"] == "HIGH_OUTPUT_RATIO" and ev["score"] > ev["level"]
        assert ev["elevated"] > ev["expected"] and ev["linked_by"] and ev["campaign_id"] == r["campaign_id"]
    records = [c for c in result.campaigns if "shared_elevation" in c]
    assert records and all(c["shared_elevation"]["signal"] == "HIGH_OUTPUT_RATIO" for c in records)
    assert all(attack[a] for c in records for a in c["accounts"])  # no chat user or app in them
    benign_flagged = [r for r in rows if not attack[r["account_id"]] and r["action"] in FLAGS]
    assert len(benign_flagged) <= 0.005 * len(rows)
