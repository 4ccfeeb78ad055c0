"""Linkage: rarity weighting, signup bursts, LSH bands, and communities on planted structure."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from distillguard.link import find_communities, load_rules
from distillguard.link import memberships as mb
from distillguard.link.rules import LinkRule
from distillguard.text import minhash_signatures


def test_rare_values_link_strongly_and_common_values_not_at_all():
    rule = LinkRule("client_ip", weight=1.0, reason="SHARED_INFRA", max_share=0.05)
    assert rule.hub_weight(1, 10_000) == 0.0  # nobody to link to
    assert rule.hub_weight(2, 10_000) > rule.hub_weight(50, 10_000) > 0
    assert rule.hub_weight(501, 10_000) == 0.0  # a NAT over 5% of accounts


def _m(rows):
    return pa.Table.from_pylist([dict(account_id=a, kind=k, value=v) for a, k, v in rows], schema=mb.MEMBERSHIP_SCHEMA)


def test_two_card_rings_stay_apart_although_a_big_nat_joins_everyone():
    rows = []
    for i in range(12):
        rows.append((f"a{i}", "payment_fingerprint", "card-A"))
        rows.append((f"b{i}", "payment_fingerprint", "card-B"))
    everyone = [f"a{i}" for i in range(12)] + [f"b{i}" for i in range(12)] + [f"u{i}" for i in range(600)]
    rows += [(a, "client_ip", "10.0.0.1") for a in everyone]
    comms = find_communities(_m(rows), load_rules(), n_accounts=len(everyone))
    groups = {frozenset(m) for m in comms.members().values()}
    assert frozenset(f"a{i}" for i in range(12)) in groups
    assert frozenset(f"b{i}" for i in range(12)) in groups
    assert not any(a.startswith("u") for a in comms.membership)  # the NAT linked nobody
    cid = comms.membership["a0"]
    assert comms.coverage[cid]["payment_fingerprint"] == 1.0
    assert comms.hubs[cid][0][:3] == ("payment_fingerprint", "card-a", 12) or comms.hubs[cid][0][:3] == ("payment_fingerprint", "card-A", 12)


def test_small_groups_below_min_size_are_not_campaigns():
    comms = find_communities(_m([("x", "payment_fingerprint", "c"), ("y", "payment_fingerprint", "c")]), load_rules(), 100)
    assert comms.membership == {}


def test_signup_burst_is_found_against_a_steady_base_rate():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    created = [t0 + dt.timedelta(hours=i) for i in range(200)]  # one signup an hour
    created += [t0 + dt.timedelta(days=3, seconds=7 * i) for i in range(40)]  # 40 in under 5 minutes
    ids = [f"s{i}" for i in range(200)] + [f"burst{i}" for i in range(40)]
    meta = pa.table({"account_id": ids, "created_at": pa.array(created, pa.timestamp("us", tz="UTC"))})
    out = mb.signup_bursts(meta)
    flagged = set(out.column("account_id").to_pylist())
    assert {f"burst{i}" for i in range(40)} <= flagged
    assert len(flagged & {f"s{i}" for i in range(200)}) <= 1


def test_near_duplicate_templates_share_lsh_bands_and_unrelated_prompts_do_not():
    prompts = {
        "p1": "Solve the following problem and show every intermediate step of your reasoning in full, "
        "then give the final answer on its own line: 17 apples and 4 crates",
        "p2": "Solve the following problem and show every intermediate step of your reasoning in full, "
        "then give the final answer on its own line: 92 trains and 8 stations",
        "p3": "What is a good recipe for a vegetarian lasagna with spinach?",
    }
    samples = pa.table({"account_id": list(prompts), "prompt": list(prompts.values())})
    t = mb.templates(samples)
    bands = {a: set() for a in prompts}
    for a, v in zip(t.column("account_id").to_pylist(), t.column("value").to_pylist()):
        bands[a].add(v)
    assert bands["p1"] & bands["p2"]
    assert not bands["p1"] & bands["p3"]


def test_chinese_templates_link_too():
    a, b, c = minhash_signatures(["请逐步展示你的完整推理过程，然后给出最终答案：小明有 5 个苹果", "请逐步展示你的完整推理过程，然后给出最终答案：火车每小时 80 公里", "今天天气怎么样"])
    assert (a == b).mean() > 0.4 > (a == c).mean()


def test_lockstep_links_synchronised_accounts_only():
    rng = np.random.default_rng(0)
    wave = rng.choice(1000, 40, replace=False)
    rows = []
    for i in range(5):
        rows += [(f"sync{i}", int(b)) for b in wave]
    for i in range(5):
        rows += [(f"solo{i}", int(b)) for b in rng.choice(1000, 40, replace=False)]
    buckets = pa.table({"account_id": [a for a, _ in rows], "bucket": pa.array([b for _, b in rows], pa.int64())})
    t = mb.lockstep(buckets)
    keys = {}
    for a, v in zip(t.column("account_id").to_pylist(), t.column("value").to_pylist()):
        keys.setdefault(a, set()).add(v)
    assert keys["sync0"] == keys["sync4"]
    assert not keys["solo0"] & keys["solo1"]
