"""Hub joins: an outsider whose kept hubs are mostly a campaign's joins it; one coincidental hub does not."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from distillguard.link import Communities, load_rules
from distillguard.score.campaigns import hub_joins, kept_hubs


def _world():
    """Community 0: a ring (flagged r0-r5) on templates t0-t3, its quiet member on three of them; a user who shares
    one template with the ring; community 1: an account on the ring's templates but placed elsewhere."""
    ids = [f"r{i}" for i in range(6)] + ["quiet", "user", "far"] + [f"u{i:03d}" for i in range(300)]
    rows = [(a, "template", f"t{j}") for a in ids[:6] for j in range(4)]
    rows += [("quiet", "template", f"t{j}") for j in range(3)] + [("quiet", "user_agent", "ua-quiet")]
    rows += [("user", "template", "t0")] + [("user", "template", f"own{j}") for j in range(6)]
    rows += [("far", "template", f"t{j}") for j in range(4)]
    rows += [(a, "template", f"own{j}") for a in ids[-6:] for j in range(6)]  # the user's hubs are others' too
    rows += [(ids[-7], "user_agent", "ua-quiet")]  # the quiet member's one hub that is not the ring's
    memberships = pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*rows))})
    comms = Communities(membership={a: (1 if a == "far" else 0) for a in ids})
    risk = np.array([0.9] * 6 + [0.1] * (len(ids) - 6))
    belongs = {f"r{i}": 0 for i in range(6)}
    rules = load_rules()
    return ids, comms, memberships, risk, belongs, kept_hubs(memberships, ids, rules, [r.kind for r in rules], values=True)


def test_an_outsider_whose_hubs_are_mostly_the_campaigns_joins_it_and_says_which():
    ids, comms, memberships, risk, belongs, hubs = _world()
    joined = hub_joins(comms, ids, risk, belongs, hubs, min_hubs=3, min_share=0.5)
    assert set(joined) == {"quiet"}  # not the user (1 of 7 hubs), not "far" (another community)
    assert joined["quiet"]["campaign"] == 0 and joined["quiet"]["kept_hubs"] == 4
    assert sorted(h["value"] for h in joined["quiet"]["hubs"]) == ["t0", "t1", "t2"]


def test_hub_join_levels_are_the_policys():
    ids, comms, memberships, risk, belongs, hubs = _world()
    assert hub_joins(comms, ids, risk, belongs, hubs, min_hubs=0, min_share=0.5) == {}
    assert hub_joins(comms, ids, risk, belongs, hubs, min_hubs=4, min_share=0.5) == {}
    assert hub_joins(comms, ids, risk, belongs, hubs, min_hubs=3, min_share=0.8) == {}


def test_only_flagged_members_tie_an_outsider():
    ids, comms, memberships, risk, belongs, hubs = _world()
    risk[:6] = 0.2
    assert hub_joins(comms, ids, risk, belongs, hubs, min_hubs=3, min_share=0.5) == {}


def test_a_real_scan_joins_ring_members_by_their_hubs_and_flags_no_benign_one_by_it(tmp_path):
    """Rings among chat users, coding agents and app backends: members outside every campaign whose kept hubs are
    mostly a campaign's flagged members' join it, each recorded with the hubs that tie it; a benign account that
    joins is not flagged for it."""
    from conftest import scan_scenario

    sc = {"name": "rings", "window": {"days": 7},
          "populations": [{"archetype": "chat", "accounts": 2000}, {"archetype": "coding_agent", "accounts": 200},
                          {"archetype": "app_backend", "accounts": 60}, {"archetype": "jailbreak", "accounts": 40},
                          {"archetype": "rubric_grading", "accounts": 40}, {"archetype": "capability_sweep", "accounts": 30}]}
    result, labels = scan_scenario(sc, 3, tmp_path)
    attack = {r["account_id"]: r["is_attack"] for r in labels}
    rows = {r["account_id"]: r for r in result.accounts.to_pylist()}
    joined = {a: (c["campaign_id"], ev) for c in result.campaigns for a, ev in c["hub_joined"].items()}
    assert joined and sum(attack[a] for a in joined) >= 0.75 * len(joined), joined
    for a, (cid, ev) in joined.items():
        assert rows[a]["campaign_id"] == cid
        assert len(ev["hubs"]) >= 3 and len(ev["hubs"]) >= 0.5 * ev["kept_hubs"]
        if not attack[a]:
            assert rows[a]["action"] not in {"challenge", "throttle", "block"}
    benign = [r for r in rows.values() if not attack[r["account_id"]]]
    assert sum(r["action"] in {"challenge", "throttle", "block"} for r in benign) <= 0.005 * len(benign)
