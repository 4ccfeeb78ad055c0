"""Strong cores: a ring merged with ordinary users is still found; a popular template's few strong users are not."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import scan_scenario

from distillguard.link import Communities
from distillguard.score.campaigns import (characteristic_codes, hub_holders, judge_campaigns, shared_strong_codes,
                                          strong_communities)


def _world(n_users: int = 400, n_ring: int = 12, n_app: int = 40, n_app_strong: int = 4):
    """One Leiden community: users on a cloud range, a ring on its own template, an app on a popular one."""
    users = [f"user{i:03d}" for i in range(n_users)]
    ring = [f"ring{i:02d}" for i in range(n_ring)]
    app = [f"app{i:02d}" for i in range(n_app)]
    ids = sorted(users + ring + app)
    rows = [(a, "subnet", "cloud-range") for a in ids]
    rows += [(a, "template", "ring-template") for a in ring]
    rows += [(a, "template", "app-template") for a in app]
    memberships = pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*rows))})
    comms = Communities(membership={a: 0 for a in ids})
    strong = np.array([a.startswith("ring") or a in app[:n_app_strong] for a in ids])
    strong[[ids.index(u) for u in users[:8]]] = True  # a few ordinary users with a strong signal of their own
    return ids, comms, memberships, strong


def _test(ids, comms, memberships, strong, kinds=("template",)):
    return strong_communities(comms, ids, strong, np.ones(len(ids)), core_hubs=hub_holders(memberships, ids, comms, kinds))


def test_a_ring_merged_with_ordinary_users_is_its_strong_core():
    ids, comms, memberships, strong = _world()
    found = _test(ids, comms, memberships, strong)
    assert list(found) == [(0, 0)]
    assert found[(0, 0)]["core"] == sorted(a for a in ids if a.startswith("ring"))
    assert found[(0, 0)]["p_value"] <= 1e-4


def test_without_core_kinds_the_merged_ring_is_missed():
    ids, comms, memberships, strong = _world()
    assert _test(ids, comms, memberships, strong, kinds=()) == {}


def test_a_popular_templates_few_strong_users_are_no_campaign():
    ids, comms, memberships, strong = _world(n_ring=0, n_app=40, n_app_strong=6)
    assert _test(ids, comms, memberships, strong) == {}


def test_a_small_core_must_beat_the_hubs_tried():
    # Three strong accounts on one template: improbable for one hub, not after
    # correcting for the many hubs a large community offers.
    ids, comms, memberships, strong = _world(n_ring=3)
    assert list(_test(ids, comms, memberships, strong)) == [(0, 0)]
    plain = [a for a, s in zip(ids, strong) if not s]
    extra = [(a, "template", f"pair{i // 2}") for i, a in enumerate(plain[:300])]
    memberships = pa.concat_tables([memberships, pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*extra))})])
    assert _test(ids, comms, memberships, strong) == {}


def _split_ring(n_users: int = 300, n_app: int = 40):
    """One community: a ring whose two strong halves have their own templates, its weak members
    sharing only its signup burst and wave band; users on a cloud range; an app on a popular template."""
    half_a = [f"ra{i:02d}" for i in range(14)]  # 8 strong, 6 weak on template ta
    half_b = [f"rb{i:02d}" for i in range(14)]
    weak = [f"rw{i:02d}" for i in range(20)]
    users = [f"user{i:03d}" for i in range(n_users)]
    app = [f"app{i:02d}" for i in range(n_app)]
    ids = sorted(half_a + half_b + weak + users + app)
    ring = half_a + half_b + weak
    rows = [(a, "subnet", "cloud-range") for a in ids]
    rows += [(a, "template", "ta") for a in half_a] + [(a, "template", "tb") for a in half_b]
    rows += [(a, kind, value) for a in ring for kind, value in (("signup_burst", "b1"), ("lockstep", "w1"))]
    rows += [(a, "template", "app-template") for a in app + half_a[:3]]
    memberships = pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*rows))})
    strong = np.array([a in half_a[:8] or a in half_b[:8] for a in ids])
    strong[[ids.index(u) for u in users[:6]]] = True
    return ids, Communities(membership={a: 0 for a in ids}), memberships, strong, ring


def _cores(ids, comms, memberships, strong, grow_kinds=2):
    kinds = ("template", "lockstep", "signup_burst", "payment_fingerprint")
    return strong_communities(comms, ids, strong, np.ones(len(ids)), core_hubs=hub_holders(memberships, ids, comms, kinds),
                              grow_kinds=grow_kinds)


def test_a_split_ring_is_rejoined_and_grown_to_its_weak_members():
    ids, comms, memberships, strong, ring = _split_ring()
    apart = _cores(ids, comms, memberships, strong, grow_kinds=0)
    assert len(apart) == 2 and all(t["grown"] == [] for t in apart.values())  # the ring cut in two halves
    found = _cores(ids, comms, memberships, strong)
    assert list(found) == [(0, 0)]
    whole = found[(0, 0)]
    assert sorted(whole["core"] + whole["grown"]) == sorted(ring)  # no user of the range, no app account
    assert whole["p_value"] <= 1e-4 and whole["firm_members"] == 28


def test_growth_is_bounded_by_the_core():
    ids, comms, memberships, strong, ring = _split_ring()
    extra = [(f"late{i:02d}", kind, value) for i in range(80) for kind, value in (("signup_burst", "b1"), ("lockstep", "w1"))]
    memberships = pa.concat_tables([memberships, pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*extra))})])
    ids2 = sorted(ids + [f"late{i:02d}" for i in range(80)])
    strong2 = np.array([strong[ids.index(a)] if a in ids else False for a in ids2])
    found = _cores(ids2, Communities(membership={a: 0 for a in ids2}), memberships, strong2)
    # 100 weak holders of the ring's burst and band outnumber its 28 core members: not its own evidence
    assert all(len(t["grown"]) <= t["firm_members"] for t in found.values())
    assert not any(a.startswith("late") for t in found.values() for a in t["grown"])


def test_a_members_strong_signal_counts_when_its_campaign_shares_it():
    """A rubric ring's RUBRIC_GRADING is the campaign's intent; a merged app user's DATASET_SYNTHESIS is not."""
    ids = [f"r{i}" for i in range(8)] + ["app", "weak", "alone"]
    assignment = {a: "C-ring" for a in ids[:10]}
    strong = [{"RUBRIC_GRADING"}] * 6 + [{"RUBRIC_GRADING", "LOGPROBS_HARVEST"}, {"HIGH_OUTPUT_RATIO"},
                                         {"DATASET_SYNTHESIS"}, set(), {"RUBRIC_GRADING"}]
    out = shared_strong_codes(assignment, strong, ids, characteristic_codes(assignment, strong, ids, 0.25))
    assert out[:7] == [{"RUBRIC_GRADING"}] * 7  # 7 of 9 strong members carry it; logprobs only 1 of 9
    assert out[7] == set() and out[8] == set() and out[9] == set()
    assert out[10] == set()  # outside every campaign


def test_a_loosely_attached_member_at_risk_belongs_to_its_campaign():
    """Of a whole community that is a campaign, a member at risk 0.5 with a strong signal of its own belongs to it
    however few links it shares; a loosely attached member below 0.5, or without a strong signal, does not, and a
    strong core holds only its own members."""
    ids = [f"firm{i}" for i in range(6)] + ["loose_high", "loose_low", "loose_fused_only"]
    comms = Communities(membership={a: 0 for a in ids})
    risk = np.array([0.9] * 6 + [0.8, 0.3, 0.8])
    attachment = np.array([1.0] * 6 + [0.05, 0.05, 0.05])
    strong = np.array([True] * 8 + [False])
    judge = lambda cands: judge_campaigns(comms, ids, risk, attachment, cands, strong=strong, min_flagged_share=0.25,
                                          min_attachment=0.3)
    camp_risk, belongs = judge({0: {}})
    assert set(belongs) == set(ids[:7]) and camp_risk[0] == pytest.approx(0.9)
    _, belongs = judge({(0, 0): {"core": ids[:6], "grown": []}})
    assert set(belongs) == set(ids[:6])


@pytest.mark.slow
def test_benign_apps_sharing_cloud_ranges_stay_below_challenge(tmp_path):
    """A real scan: app backends, tutoring apps, eval runners and enterprise batch jobs on shared
    cloud ranges link into communities, yet none of their accounts is challenged and no campaign
    is mostly theirs; a ring in the same traffic is still flagged."""
    cloud = {"ip": {"kind": "cloud_shared", "per_account": [1, 3], "group": [30, 60]}}
    apps = ("app_backend", "tutoring", "eval_runner", "enterprise_batch", "cloud_range_users")
    sc = {"name": "cloud", "window": {"days": 3},
          "populations": [{"archetype": "chat", "accounts": 200},
                          *({"archetype": a, "accounts": 40, "infra": cloud} for a in apps),
                          {"archetype": "hydra", "accounts": 40}]}
    result, labels = scan_scenario(sc, 5, tmp_path)
    arch = {r["account_id"]: r["archetype"] for r in labels}
    rows = result.accounts.to_pylist()
    linked = [r for r in rows if arch[r["account_id"]] in apps and r["campaign_attachment"] > 0]
    assert len(linked) >= 20  # the ranges do link them into communities
    flagged = [r for r in rows if r["action"] in ("challenge", "throttle", "block")]
    assert not [r for r in flagged if arch[r["account_id"]] in apps]
    for c in result.campaigns:
        assert sum(arch[a] in apps or arch[a] == "chat" for a in c["accounts"]) < len(c["accounts"]) / 2, c["campaign_id"]
    hydra = [r for r in rows if arch[r["account_id"]] == "hydra"]
    assert sum(r["action"] in ("challenge", "throttle", "block") for r in hydra) >= len(hydra) / 2
