"""A campaign corroborates only the members that carry its evidence: a templated app's user that its community's links
put in a ring's campaign is not flagged on the campaign's pooled evidence; the ring's own members still are."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pyarrow as pa
import pytest

from distillguard.link import load_rules
from distillguard.score.campaigns import kept_hubs, ring_links
from distillguard.score.policy import Policy

FLAGS = ("challenge", "throttle", "block")
APPS = ("app_backend", "tutoring", "eval_runner")


def _world():
    """One campaign: ring members r0-r3 (r0-r2 strong on its signal) on templates t0-t5, and an app user that shares
    one template with the ring and its other hubs with its own app (a0-a5, outside the campaign)."""
    ids = [f"r{i}" for i in range(4)] + ["user"] + [f"a{i}" for i in range(6)] + [f"x{i:03d}" for i in range(300)]
    rows = [(f"r{i}", "template", f"t{j}") for i in range(4) for j in range(6)]
    rows += [("user", "template", "t0")] + [("user", "template", f"app{j}") for j in range(8)]
    rows += [(f"a{i}", "template", f"app{j}") for i in range(6) for j in range(8)]
    memberships = pa.table({k: list(v) for k, v in zip(("account_id", "kind", "value"), zip(*rows))})
    rules = load_rules()
    hubs = kept_hubs(memberships, ids, rules, [r.kind for r in rules], values=True)
    belongs = {a: 0 for a in ["r0", "r1", "r2", "r3", "user"]}
    ring = np.array([a in ("r0", "r1", "r2") for a in ids])
    return ids, belongs, ring, hubs


def test_members_linked_to_the_ring_by_their_own_hubs_and_an_app_user_is_not():
    ids, belongs, ring, hubs = _world()
    linked = ring_links(ids, belongs, ring, hubs, min_hubs=2, min_share=0.1)
    # r3 (not strong) holds the ring's six templates; a ring member is linked by the others; the user by one of nine
    assert {"r0", "r1", "r2", "r3"} <= set(linked) and "user" not in linked
    assert linked["r3"] == {"linked_hubs": 6, "kept_hubs": 6}
    assert "user" in ring_links(ids, belongs, ring, hubs, min_hubs=1, min_share=0.1)  # one shared template: 1 of 9
    assert ring_links(ids, belongs, ring, hubs, min_hubs=0, min_share=0.1) == {}
    # a ring member's own hubs do not link it: with one ring member, nobody is linked to another
    alone = np.array([a == "r0" for a in ids])
    assert "r0" not in ring_links(ids, belongs, alone, hubs, min_hubs=2, min_share=0.1)


@pytest.mark.slow
def test_templated_app_users_linked_to_a_clean_identifier_ring_are_not_flagged(tmp_path):
    """A real scan: hydra rings with their own IP, card and user agent per account link by template to app backends,
    tutoring apps and eval runners, which Leiden merges into the rings' campaigns. The packaged policy flags none of
    those app users and most of the ring; the same scan with every member corroborated by its campaign flags them."""
    from distillguard.ingest import ingest_files
    from distillguard.scan import run_scan, store_inputs
    from distillguard.sim import simulate
    from distillguard.store import EventStore
    import pyarrow.parquet as pq

    clean = {"ip": {"kind": "rotating", "per_account": [1, 3], "pool": [20000, 30000]},
             "ua": {"kind": "campaign", "per_account": [1, 1], "shared_frac": 0.0},
             "payment": {"kind": "shared", "cards": [300, 400], "shared_frac": 0.0, "none_frac": 0.1},
             "email": {"kind": "campaign"},
             "signup": {"kind": "bursts", "days_before": [1, 20], "bursts": [3, 8], "burst_len_h": 1.5, "in_window_frac": 0.0}}
    sc = {"name": "clean-rings", "window": {"start": "2026-03-02T00:00:00Z", "days": 3},
          "populations": [{"archetype": "chat", "accounts": 250}, *({"archetype": a, "accounts": 80} for a in APPS),
                          {"archetype": "hydra", "accounts": 160, "campaigns": 4, "infra": clean}]}
    simulate(sc, seed=7, out=tmp_path / "w", family="holdout")
    arch = {r["account_id"]: r["archetype"] for r in pq.read_table(tmp_path / "w" / "labels.parquet").to_pylist()}
    text = resources.files("distillguard.score").joinpath("policy.yaml").read_text()
    every_member = Policy.from_yaml("\n".join(ln for ln in text.splitlines() if "campaign_member_evidence:" not in ln))
    store = EventStore(tmp_path / "s.duckdb")
    with store:
        ingest_files([str(tmp_path / "w" / "events.parquet")], store, accounts=str(tmp_path / "w" / "accounts.parquet"),
                     progress=False)
        results = {name: run_scan(*store_inputs(store), policy=p) for name, p in
                   (("packaged", Policy.load()), ("every_member", every_member))}

    def flagged(result, archetypes):
        return [r for r in result.accounts.to_pylist() if arch[r["account_id"]] in archetypes and r["action"] in FLAGS]

    packaged = results["packaged"]
    in_campaigns = [a for c in packaged.campaigns for a in c["accounts"] if arch[a] in APPS]
    assert len(in_campaigns) >= 10  # the templates do merge app users into the rings' campaigns
    assert flagged(results["every_member"], APPS)  # corroborated by the campaign alone, they were flagged
    assert not flagged(packaged, APPS)
    hydra = [a for a in arch if arch[a] == "hydra"]
    assert len(flagged(packaged, ("hydra",))) >= 0.5 * len(hydra)
    assert len(flagged(packaged, ("hydra",))) == len(flagged(results["every_member"], ("hydra",)))
    linked = [r for r in packaged.accounts.to_pylist() if "RING_EVIDENCE" in r["reasons"]]
    assert linked and all(r["campaign_id"] for r in linked)
    assert packaged.calibration["ring_evidence"]["members"] == len(linked)
