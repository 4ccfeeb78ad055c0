"""Hub ties: an account whose kept hubs are mostly a campaign's flagged members' is tied to it (an outsider joins it);
a tied member is challenged. One coincidental hub, or a firm member linked by what ordinary users share, is not tied."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from distillguard.link import Communities, load_rules
from distillguard.score.campaigns import HUB_JOIN_CODE, HUB_TIE_CODE, HUB_TIE_TERM, hub_ties, kept_hubs
from distillguard.score.policy import Policy

FLAGS = ("challenge", "throttle", "block")
RULE = "challenge-hub-tied-member"


def _world():
    """Community 0: a ring (flagged r0-r5) on templates t0-t3, its quiet member on three of them; a user who shares
    one template with the ring; community 1: an account on the ring's templates but placed elsewhere. Members of the
    campaign below the flag level: "slow" (on the ring's templates) and "neighbour" (firm through a shared IP)."""
    ids = [f"r{i}" for i in range(6)] + ["quiet", "user", "far", "slow", "neighbour"] + [f"u{i:03d}" for i in range(300)]
    rows = [(a, "template", f"t{j}") for a in ids[:6] for j in range(4)]
    rows += [("quiet", "template", f"t{j}") for j in range(3)] + [("quiet", "user_agent", "ua-quiet")]
    rows += [("user", "template", "t0")] + [("user", "template", f"own{j}") for j in range(6)]
    rows += [("far", "template", f"t{j}") for j in range(4)]
    rows += [("slow", "template", f"t{j}") for j in range(4)]
    rows += [("neighbour", "client_ip", "ip-1"), ("r0", "client_ip", "ip-1")]
    rows += [("neighbour", "template", f"own{j}") for j in range(6)]
    rows += [(a, "template", f"own{j}") for a in ids[-6:] for j in range(6)]  # the user's hubs are others' too
    rows += [(ids[-7], "user_agent", "ua-quiet")]  # the quiet member's one hub that is not the ring's
    memberships = pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*rows))})
    comms = Communities(membership={a: (1 if a == "far" else 0) for a in ids})
    risk = np.array([0.9] * 6 + [0.1] * (len(ids) - 6))
    belongs = {f"r{i}": 0 for i in range(6)} | {"slow": 0, "neighbour": 0}
    rules = load_rules()
    return ids, comms, memberships, risk, belongs, kept_hubs(memberships, ids, rules, [r.kind for r in rules], values=True)


def test_accounts_whose_hubs_are_mostly_the_campaigns_are_tied_to_it_and_say_which():
    ids, comms, memberships, risk, belongs, hubs = _world()
    tied = hub_ties(comms, ids, risk, belongs, hubs, min_hubs=3, min_share=0.5)
    # not the user (1 of 7 hubs), not "far" (another community), not the neighbour (1 of 7: an IP)
    assert set(tied) == {"quiet", "slow"}
    assert tied["quiet"]["campaign"] == 0 and tied["quiet"]["joined"] and tied["quiet"]["kept_hubs"] == 4
    assert sorted(h["value"] for h in tied["quiet"]["hubs"]) == ["t0", "t1", "t2"]
    assert tied["slow"]["campaign"] == 0 and not tied["slow"]["joined"] and len(tied["slow"]["hubs"]) == 4
    # both tied by template bands alone (attachment caps such a member below min_attachment)
    assert {h["kind"] for h in tied["quiet"]["hubs"]} == {h["kind"] for h in tied["slow"]["hubs"]} == {"template"}


def test_hub_tie_levels_are_the_policys():
    ids, comms, memberships, risk, belongs, hubs = _world()
    assert hub_ties(comms, ids, risk, belongs, hubs, min_hubs=0, min_share=0.5) == {}
    assert set(hub_ties(comms, ids, risk, belongs, hubs, min_hubs=4, min_share=0.5)) == {"slow"}
    assert set(hub_ties(comms, ids, risk, belongs, hubs, min_hubs=3, min_share=0.8)) == {"slow"}


def test_only_flagged_members_tie_an_account():
    ids, comms, memberships, risk, belongs, hubs = _world()
    risk[:6] = 0.2
    assert hub_ties(comms, ids, risk, belongs, hubs, min_hubs=3, min_share=0.5) == {}


def test_a_tied_member_is_challenged_by_the_packaged_policy_and_a_joined_outsider_is_not():
    p = Policy.load()
    d = p.decide(0.05, [HUB_TIE_CODE], in_campaign=True)
    assert (d.action, d.rule_id) == ("challenge", RULE)
    assert p.decide(0.05, [HUB_TIE_CODE]).action not in FLAGS  # outside a campaign: nothing tied it
    assert p.decide(0.05, ["TEMPLATE_REUSE"], in_campaign=True).action not in FLAGS  # a member without the tie
    # joined from outside every campaign: every benign account tied on fit worlds 1008-1014 was one (section 9)
    assert p.decide(0.3, [HUB_JOIN_CODE], in_campaign=True).action == "monitor"


def test_the_service_challenges_a_tied_member_as_the_scan_does(tmp_path):
    """The decision service reads the HUB_TIED reason and the campaign the scan stored, and decides alike."""
    from conftest import service_decisions

    reason = [{"code": HUB_TIE_CODE, "weight": 0.0, "terms": [HUB_TIE_TERM], "strong": False, "campaign_shared": False,
               "evidence": {HUB_TIE_TERM: {"campaign_id": "C-test", "joined": True, "kept_hubs": 30,
                                           "hubs": [{"kind": "template", "value": "b1"}]}}}]
    d = service_decisions(tmp_path, {"camp-2": (0.05, reason)})["camp-2"]
    assert (d["action"], d["rule_id"]) == ("challenge", RULE), d


def test_a_real_scan_challenges_ring_members_tied_by_their_hubs_and_no_templated_app(tmp_path):
    """Rings among chat users and templated benign apps (coding agents, app backends, enterprise batch jobs):
    accounts whose kept hubs are mostly a campaign's flagged members' are tied to it, each recorded with the hubs
    that tie it; tied members are challenged, accounts that joined are flagged only on other grounds; no user of a
    templated app is tied."""
    from conftest import scan_scenario

    sc = {"name": "rings", "window": {"days": 7},
          "populations": [{"archetype": "chat", "accounts": 2000}, {"archetype": "coding_agent", "accounts": 200},
                          {"archetype": "app_backend", "accounts": 60}, {"archetype": "jailbreak", "accounts": 40},
                          {"archetype": "rubric_grading", "accounts": 40}, {"archetype": "capability_sweep", "accounts": 30},
                          {"archetype": "low_and_slow", "accounts": 40}, {"archetype": "enterprise_batch", "accounts": 30}]}
    result, labels = scan_scenario(sc, 4, tmp_path)
    label = {r["account_id"]: r for r in labels}
    rows = {r["account_id"]: r for r in result.accounts.to_pylist()}
    tied = {a: (c["campaign_id"], ev) for c in result.campaigns for a, ev in c["hub_tied"].items()}
    # a benign account can be tied (at seed 3, a chat user whose five kept hubs are the bands of one prompt like the
    # ring's); rarely: 6 of 145 over fit worlds 1008-1014 (docs/scoring.md section 9, "Tied members")
    assert len(tied) >= 5 and sum(label[a]["is_attack"] for a in tied) >= 0.75 * len(tied), tied
    assert any(not ev["joined"] for _, ev in tied.values()), tied  # members of a campaign, tied and challenged
    joined = sum(ev["joined"] for _, ev in tied.values())
    assert result.calibration["hub_ties"] == {"min_hubs": 3, "min_share": 0.5, "tied_members": len(tied) - joined,
                                              "joined": joined}
    from distillguard.report.html import render_report
    html = " ".join(render_report(result, {}).split())
    assert f"reason HUB_TIED): {len(tied) - joined}; accounts that joined a campaign that way from outside (HUB_JOINED): {joined}." in html
    for a, (cid, ev) in tied.items():
        code = HUB_JOIN_CODE if ev["joined"] else HUB_TIE_CODE
        assert rows[a]["campaign_id"] == cid and code in rows[a]["reasons"]
        assert len(ev["hubs"]) >= 3 and len(ev["hubs"]) >= 0.5 * ev["kept_hubs"]
        assert rows[a]["action"] in FLAGS if not ev["joined"] else rows[a]["rule_id"] != RULE
        stored = [r for r in json.loads(rows[a]["reasons_json"]) if r["code"] == code][0]
        assert stored["evidence"][HUB_TIE_TERM]["campaign_id"] == cid
        assert label[a]["archetype"] not in {"app_backend", "coding_agent", "enterprise_batch"}
    benign = [r for r in rows.values() if not label[r["account_id"]]["is_attack"]]
    assert sum(r["action"] in FLAGS for r in benign) <= 0.005 * len(benign)
