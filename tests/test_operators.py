"""Operators: campaigns joined by their own members' identifiers or by activity that moves together (issue 12, item 5)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import scan_scenario

from distillguard.link import load_rules
from distillguard.link.components import UnionFind
from distillguard.score.operators import (BUCKET_S, co_moving, followed, footprint_candidates, group_operators,
                                         identity_cells, join_footprint, schedule_parts)


def _memberships(rows):
    return pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*rows))})


def _two_cores_in_one_community(n_users: int = 300):
    """Two rings cut from one community of a cloud range: each its own card, every account on the range."""
    ring_a, ring_b = [f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)]
    users = [f"u{i:03d}" for i in range(n_users)]
    rows = [(x, "subnet", "203.0.113.0/24") for x in ring_a + ring_b + users[:20]]
    rows += [(x, "payment_fingerprint", "card-a") for x in ring_a] + [(x, "payment_fingerprint", "card-b") for x in ring_b]
    assignment = {**{x: "C-a" for x in ring_a}, **{x: "C-b" for x in ring_b}}
    return rows, assignment, len(ring_a + ring_b + users)


def test_two_cores_of_one_community_are_not_joined_by_the_community_s_subnet():
    rows, assignment, n = _two_cores_in_one_community()
    ops = group_operators(assignment, _memberships(rows), load_rules(), n)
    assert ops["C-a"]["operator_id"] != ops["C-b"]["operator_id"]
    assert ops["C-a"]["shared"] == ops["C-b"]["shared"] == []


def test_campaigns_whose_own_members_hold_one_card_are_one_operator():
    rows, assignment, n = _two_cores_in_one_community()
    ops = group_operators(assignment, _memberships(rows + [("a0", "payment_fingerprint", "card-x"), ("a1", "payment_fingerprint", "card-x"),
                                                            ("b0", "payment_fingerprint", "card-x")]), load_rules(), n)
    assert ops["C-a"]["operator_id"] != ops["C-b"]["operator_id"]  # one member of C-b is not the campaign's
    ops = group_operators(assignment, _memberships(rows + [(x, "payment_fingerprint", "card-x") for x in ("a0", "a1", "b0", "b1")]),
                          load_rules(), n)
    assert ops["C-a"]["operator_id"] == ops["C-b"]["operator_id"]
    assert {"kind": "payment_fingerprint", "value": "card-x", "campaigns": 2} in ops["C-a"]["shared"]


def _schedule(rng, buckets: int, every: float, phase: float) -> np.ndarray:
    """Wave starts about every ``every`` buckets (jittered by 20%, as an operator's scheduler does)."""
    starts, x = [], phase
    while x < buckets:
        starts.append(int(x))
        x += every * rng.uniform(0.8, 1.2)
    return np.array(starts)


def _waves(rng, starts: np.ndarray, buckets: int, accounts: int) -> np.ndarray:
    """Requests per bucket of ``accounts`` accounts joining waves of 90 minutes that start at ``starts``."""
    on = np.zeros(buckets, dtype=bool)
    for s in starts:
        on[s:s + 9] = True
    return rng.poisson(np.where(on, 2.0 * accounts, 0.05 * accounts))


def _diurnal(rng, buckets: int, accounts: int, peak_hour: float) -> np.ndarray:
    hour = (np.arange(buckets) * BUCKET_S / 3600) % 24
    return rng.poisson(accounts * (0.6 + 0.5 * np.cos((hour - peak_hour) / 24 * 2 * np.pi)))


def test_one_schedule_is_one_operator_and_independent_schedules_or_day_rhythms_are_not():
    rng = np.random.default_rng(0)
    days = 5 * 144
    mine, theirs = _schedule(rng, days, 36, 5), _schedule(rng, days, 36, 20)
    activity = {"cell-1": _waves(rng, mine, days, 30), "cell-2": _waves(rng, mine, days, 12),
                "other": _waves(rng, theirs, days, 30),
                "day-1": _diurnal(rng, days, 40, 15), "day-2": _diurnal(rng, days, 25, 14)}
    pairs = {(a, b) for a, b, _, _ in co_moving(activity)}
    assert pairs == {("cell-1", "cell-2")}
    r, z = next((r, z) for a, b, r, z in co_moving(activity) if a == "cell-1")
    assert r >= 0.3 and z >= 5
    assert co_moving({k: v[:30] for k, v in activity.items()}) == []  # five hours: too few shifts to test against


def test_an_account_is_a_footprint_candidate_only_of_an_operator_that_holds_most_of_its_ring_value():
    members = {**{f"a{i}": "O-a" for i in range(4)}, **{f"b{i}": "O-b" for i in range(2)}}
    rows = [(f"a{i}", "template", "ring-a") for i in range(4)] + [("x", "template", "ring-a")]  # O-a's template
    rows += [("b0", "template", "popular"), ("b1", "template", "popular")] + [(f"u{i}", "template", "popular") for i in range(5)]
    rows += [("a0", "template", "mixed"), ("a1", "template", "mixed"), ("b0", "template", "mixed"), ("b1", "template", "mixed"),
             ("y", "template", "mixed")]  # two operators' members hold it: neither holds half
    rows += [("a0", "subnet", "10.0.0.0/24"), ("a1", "subnet", "10.0.0.0/24"), ("z", "subnet", "10.0.0.0/24")]  # not a core kind
    got = footprint_candidates(members, _memberships(rows), load_rules(), 5000, ["template", "payment_fingerprint"])
    assert got == {"x": {"O-a": [("template", "ring-a")]}}


def test_a_candidate_joins_the_operator_whose_schedule_it_follows_and_no_other():
    rng = np.random.default_rng(1)
    days = 5 * 144
    mine, theirs = _schedule(rng, days, 36, 5), _schedule(rng, days, 36, 20)
    operators = {"O-a": _waves(rng, mine, days, 30), "O-b": _waves(rng, theirs, days, 30)}
    accounts = {"follows-a": _waves(rng, mine, days, 1), "diurnal": _diurnal(rng, days, 1, 14),
                "follows-b": _waves(rng, theirs, days, 1), "both": _waves(rng, np.r_[mine, theirs], days, 1)}
    both = {"O-a": [("template", "t-a")], "O-b": [("template", "t-b")]}
    candidates = {"follows-a": {"O-a": [("template", "t-a")]}, "diurnal": {"O-a": [("template", "t-a")]},
                  "follows-b": {"O-a": [("template", "t-a")]}, "both": both}
    got = join_footprint(candidates, accounts, operators)
    assert set(got) == {"follows-a"}  # follows-b moves with O-b, whose ring evidence it does not hold
    assert got["follows-a"]["operator_id"] == "O-a"
    assert got["follows-a"]["shared"][0] == {"kind": "template", "value": "t-a"}
    assert got["follows-a"]["shared"][-1]["kind"] == "activity"
    assert join_footprint({"both": both}, accounts, operators) == {}  # moves with two operators: not attributed
    assert join_footprint({"follows-b": {"O-b": [("template", "t-b")]}}, accounts, operators)["follows-b"]["operator_id"] == "O-b"


def test_identity_cells_follow_cards_waves_and_bursts_not_ranges_or_templates():
    hubs = [("payment_fingerprint", np.array([0, 1, 2])), ("lockstep", np.array([2, 3])), ("payment_fingerprint", np.array([4, 5])),
            ("subnet", np.array([0, 1, 2, 3, 4, 5, 6])), ("template", np.array([3, 4, 6])), ("signup_burst", np.array([6, 9]))]
    cells = identity_cells(np.arange(7), hubs, ("payment_fingerprint", "lockstep", "signup_burst"))
    assert sorted(c.tolist() for c in cells) == [[0, 1, 2, 3], [4, 5], [6]]  # 9 is not a member: 6 stays alone


def _activity(per_account: list[np.ndarray]):
    return lambda rows: np.sum([per_account[i] for i in rows], axis=0)


def test_two_operators_schedules_split_one_community_and_one_operator_s_cells_do_not():
    rng = np.random.default_rng(2)
    days = 3 * 144
    mine, theirs = _schedule(rng, days, 36, 5), _schedule(rng, days, 36, 20)
    per_account = ([_waves(rng, mine, days, 1) for _ in range(9)] + [_waves(rng, theirs, days, 1) for _ in range(5)]
                   + [np.eye(1, days, 50)[0]])  # 14: one request, no schedule
    cells = [np.arange(0, 5), np.arange(5, 9), np.arange(9, 13), np.array([13]), np.array([14])]
    parts, anchors, loners = schedule_parts(cells, _activity(per_account), min_cell=3, min_z=3.0)
    assert sorted(p.tolist() for p in parts) == [list(range(0, 9)) + [14], [9, 10, 11, 12, 13]] and loners == []
    assert [a.tolist() for a in anchors] == [c.tolist() for c in cells[:3]]
    # one operator's cells (and a small cell with no schedule) stay one part
    one, _, _ = schedule_parts(cells[:2] + cells[4:], _activity(per_account), min_cell=3, min_z=3.0)
    assert [p.tolist() for p in one] == [list(range(0, 9)) + [14]]


def test_a_ring_at_a_steady_rate_is_never_cut():
    """Cells that keep no schedule of their own (steady Poisson senders) do not co-move, and that is no evidence of two
    operators."""
    rng = np.random.default_rng(4)
    per_account = [rng.poisson(0.5, 3 * 144) for _ in range(12)]
    cells = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 12)]
    parts, anchors, loners = schedule_parts(cells, _activity(per_account), min_cell=3, min_z=3.0, follow_z=1.5)
    assert [p.tolist() for p in parts] == [list(range(12))] and anchors == [] and loners == []


def test_an_account_that_keeps_its_ring_s_schedule_is_no_loner_and_one_that_follows_another_ring_is_a_stray():
    rng = np.random.default_rng(3)
    days = 3 * 144
    mine, theirs = _schedule(rng, days, 36, 5), _schedule(rng, days, 36, 20)
    per_account = ([_waves(rng, mine, days, 1) for _ in range(9)] + [_waves(rng, theirs, days, 1), _waves(rng, mine, days, 1),
                                                                       np.eye(1, days, 50)[0], rng.poisson(0.5, days)])
    cells = [np.arange(0, 5), np.arange(5, 9), np.array([9]), np.array([10]), np.array([11]), np.array([12])]
    parts, _, loners = schedule_parts(cells, _activity(per_account), min_cell=3, min_z=3.0, follow_z=1.5)
    assert [p.tolist() for p in parts] == [list(range(13))]  # loners stay in their part until shown to be another's
    assert loners == [9, 12]  # 10 follows this ring; 11 (one request) is too quiet to tell
    other_ring, my_other_ring = _waves(rng, theirs, days, 6), _waves(rng, mine, days, 6)
    assert followed(per_account[9], [my_other_ring, other_ring], 3.0) == [1]  # the other operator's account
    assert followed(per_account[12], [my_other_ring, other_ring], 3.0) == []  # a steady sender follows nobody: it stays


def test_union_find_groups_every_item():
    uf = UnionFind(["a", "b", "c", "d"])
    uf.union("a", "b")
    uf.union_all(["c", "d", "e"])
    assert sorted(map(sorted, uf.groups())) == [["a", "b"], ["c", "d", "e"]]


@pytest.mark.slow
def test_a_real_scan_puts_one_operator_s_cells_under_one_operator_id(tmp_path):
    """Cells with their own cards and proxies, one wave schedule: one operator; another ring: another."""
    sc = {"name": "ops", "window": {"days": 3},
          "populations": [{"archetype": "chat", "accounts": 250}, {"archetype": "cloud_range_users", "accounts": 40},
                          {"archetype": "hydra", "accounts": 90, "campaigns": 3, "operators": 1,
                           "infra": {"payment": {"cards": [1, 1], "shared_frac": 1.0, "none_frac": 0.0}}},
                          {"archetype": "hydra", "accounts": 30}]}
    result, labels = scan_scenario(sc, 4, tmp_path)
    pred = {r["account_id"]: r["operator_id"] for r in result.accounts.to_pylist()}
    lab = [r for r in labels if r["campaign_id"]]
    found: dict[str, set] = {}
    for r in lab:
        if pred[r["account_id"]]:
            found.setdefault(r["operator_id"], set()).add(pred[r["account_id"]])
    assert len(found) == 2 and all(len(v) == 1 for v in found.values()), found
    a, b = found.values()
    assert a != b
    cells = {r["campaign_id"] for r in lab if r["operator_id"] == "op-001"}
    assert len(cells) == 3 and len({c["campaign_id"] for c in result.campaigns if c["operator_id"] in a}) >= 2


@pytest.mark.slow
def test_a_real_scan_keeps_two_operators_on_one_cloud_range_apart_and_attributes_their_unflagged_members(tmp_path):
    """Two operators' hydra rings egress from the same cloud range (infrastructure, not operator
    evidence) and a third runs two cells: no operator id spans two true operators, a cell pair stays one,
    and accounts outside every campaign that get an operator id (footprint) are that operator's."""
    cloud = {"ip": {"kind": "cloud_shared", "shared_nets": 1, "group": [1, 1], "per_account": [1, 2]}}
    sc = {"name": "two-operators-one-range", "window": {"days": 3},
          "populations": [{"archetype": "chat", "accounts": 250}, {"archetype": "cloud_range_users", "accounts": 40},
                          {"archetype": "hydra", "accounts": 45, "infra": cloud},
                          {"archetype": "hydra", "accounts": 45, "infra": cloud},
                          {"archetype": "hydra", "accounts": 60, "campaigns": 2, "operators": 1}]}
    result, labels = scan_scenario(sc, 4, tmp_path)
    pred = {r["account_id"]: r for r in result.accounts.to_pylist()}
    true_of = {r["account_id"]: r["operator_id"] for r in labels}
    held: dict[str, set] = {}
    for acc, r in pred.items():
        if r["operator_id"]:
            held.setdefault(r["operator_id"], set()).add(true_of.get(acc))
    assert held and all(len(owners - {None}) == 1 for owners in held.values()), held
    attributed = [acc for acc, r in pred.items() if r["operator_id"] and not r["campaign_id"]]
    assert attributed and all(true_of[acc] for acc in attributed)  # ring members, no ordinary user
    by_true: dict[str, set] = {}
    for acc, r in pred.items():
        if r["operator_id"] and true_of.get(acc):
            by_true.setdefault(true_of[acc], set()).add(r["operator_id"])
    assert all(len(ids) == 1 for ids in by_true.values()), by_true
    assert sum(o["n_attributed"] for o in result.operators) == len(attributed)
