"""Audit log chain, analyst overrides and the queue at 10,000 campaigns (no browser)."""
from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from distillguard.audit import GENESIS, analyst_overrides, audit_head, audit_rows, confirmed_indicators, record_action, verify_audit_chain
from distillguard.errors import UsageError


def _store(tmp_path, n_campaigns=3, members=4):
    db = tmp_path / "s.duckdb"
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    rows = []
    for i in range(n_campaigns):
        accs = [f"acct_{i}_{j}" for j in range(members)]
        ev = {"campaign_id": f"C-{i:05d}", "accounts": accs, "reasons": [{"code": "COT_ELICITATION", "weight": 1.0}],
              "shared": [], "signals": {}, "example_prompts": [], "timeline": []}
        rows.append({"run_id": "r1", "campaign_id": f"C-{i:05d}", "risk": round(1 - i / max(1, n_campaigns), 6),
                     "action": "block", "n_accounts": members + i % 50, "n_events": 100 + i,
                     "first_seen": f"2026-03-{1 + i % 28:02d}T00:00:00+00:00", "last_seen": f"2026-03-{1 + i % 28:02d}T12:00:00+00:00",
                     "reasons": ["COT_ELICITATION"] + (["JAILBREAK"] if i % 3 == 0 else []), "evidence_json": json.dumps(ev)})
    con.register("_c", pa.Table.from_pylist(rows))
    con.execute("CREATE TABLE campaigns AS SELECT run_id, campaign_id, risk, action, n_accounts, n_events, "
                "CAST(first_seen AS TIMESTAMPTZ) first_seen, CAST(last_seen AS TIMESTAMPTZ) last_seen, reasons, evidence_json FROM _c")
    con.execute("CREATE TABLE campaign_indicators AS SELECT 'C-00000' campaign_id, 'payment_fingerprint' kind, 'pm_1' value, 3.0 weight")
    return db, con


def test_chain_links_every_row_and_detects_edits(tmp_path):
    db, con = _store(tmp_path)
    assert audit_head(con) == {"seq": 0, "hash": GENESIS}
    a = record_action(con, action="confirm", target_kind="campaign", target_id="C-00000", analyst="alice", reason="cards")
    b = record_action(con, action="escalate", target_kind="campaign", target_id="C-00001", analyst="bob", reason="legal")
    assert a["prev_hash"] == GENESIS and b["prev_hash"] == a["row_hash"]
    assert audit_head(con) == {"seq": 2, "hash": b["row_hash"]}
    assert verify_audit_chain(con) == (True, None)
    con.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 1")
    assert verify_audit_chain(con) == (False, 1)
    con.execute("UPDATE audit_log SET reason = 'cards' WHERE seq = 1")
    assert verify_audit_chain(con) == (True, None)
    con.execute("DELETE FROM audit_log WHERE seq = 1")
    assert verify_audit_chain(con)[0] is False


def test_actions_need_who_why_and_a_known_target(tmp_path):
    _, con = _store(tmp_path)
    with pytest.raises(UsageError):
        record_action(con, action="confirm", target_kind="campaign", target_id="C-00000", analyst="", reason="x")
    with pytest.raises(UsageError):
        record_action(con, action="confirm", target_kind="campaign", target_id="C-00000", analyst="a", reason=" ")
    with pytest.raises(UsageError):
        record_action(con, action="delete", target_kind="campaign", target_id="C-00000", analyst="a", reason="x")
    with pytest.raises(UsageError):
        record_action(con, action="confirm", target_kind="campaign", target_id="C-nope", analyst="a", reason="x")
    with pytest.raises(UsageError):
        record_action(con, action="dismiss", target_kind="account", target_id="acct_0_0", analyst="a", reason="x")
    assert audit_rows(con) == []


def test_overrides_latest_decision_wins(tmp_path):
    _, con = _store(tmp_path)
    kw = dict(analyst="alice", reason="checked")
    record_action(con, action="dismiss", target_kind="campaign", target_id="C-00000", **kw)
    record_action(con, action="confirm", target_kind="campaign", target_id="C-00000", **kw)  # changed their mind
    record_action(con, action="dismiss", target_kind="campaign", target_id="C-00001", **kw)
    record_action(con, action="escalate", target_kind="campaign", target_id="C-00001", **kw)  # escalation changes no policy
    record_action(con, action="allowlist", target_kind="campaign", target_id="C-00002", **kw)
    record_action(con, action="allowlist", target_kind="account", target_id="acct_9", **kw)
    record_action(con, action="allowlist", target_kind="org", target_id="org_partner", **kw)
    ov = analyst_overrides(con)
    allow, orgs, dismissed, confirmed = ov  # a plain 4-tuple for the scan
    assert confirmed == {"C-00000"}
    assert dismissed == (frozenset({"acct_1_0", "acct_1_1", "acct_1_2", "acct_1_3"}),)
    assert allow == {"acct_9", "acct_2_0", "acct_2_1", "acct_2_2", "acct_2_3"}
    assert orgs == {"org_partner"}
    assert confirmed_indicators(con) == [{"kind": "payment_fingerprint", "value": "pm_1", "weight": 3.0, "campaign_id": "C-00000"}]
    # a policy built from the overrides allows the allowlisted accounts whatever their risk
    from distillguard.score.policy import Policy

    pol = Policy.load().with_allowlist(accounts=ov.allow_accounts, orgs=ov.allow_orgs)
    assert pol.decide(1.0, ["COT_ELICITATION"], in_campaign=True, account_id="acct_9").action == "allow"
    assert pol.decide(1.0, ["COT_ELICITATION"], in_campaign=True, account_id="x", org_id="org_partner").action == "allow"


def test_a_rescanned_dismissed_cluster_is_recognised(tmp_path):
    from distillguard.audit import matches_dismissed

    _, con = _store(tmp_path)
    record_action(con, action="dismiss", target_kind="campaign", target_id="C-00001", analyst="a", reason="load test")
    sets = analyst_overrides(con).dismissed_campaign_member_sets
    assert matches_dismissed(["acct_1_0", "acct_1_1", "acct_1_2", "acct_1_3"], sets)
    assert matches_dismissed(["acct_1_0", "acct_1_1", "acct_1_2", "acct_1_3", "new"], sets)  # 4 of 5
    assert not matches_dismissed(["acct_1_0", "x", "y", "z"], sets)
    assert not matches_dismissed([], sets)


def test_overrides_on_a_store_without_decisions(tmp_path):
    _, con = _store(tmp_path)
    assert analyst_overrides(con) == (frozenset(), frozenset(), (), frozenset())


def test_queue_of_10000_campaigns_pages_sorts_and_filters(tmp_path):
    from distillguard.console.data import queue

    _, con = _store(tmp_path, n_campaigns=10_000)
    record_action(con, action="confirm", target_kind="campaign", target_id="C-00042", analyst="a", reason="b")
    first = queue(con)
    last = queue(con, page=10_000)
    filtered = queue(con, reason="JAILBREAK", min_size=10, max_size=30, date_from="2026-03-05", date_to="2026-03-09", page=2)
    status = queue(con, status="confirmed")
    assert first["total"] == 10_000 and first["pages"] == 200 and len(first["rows"]) == 50
    assert [r["risk"] for r in first["rows"]] == sorted((r["risk"] for r in first["rows"]), reverse=True)
    assert last["page"] == 200 and len(last["rows"]) == 50
    assert filtered["rows"] and all("JAILBREAK" in r["reasons"] and 10 <= r["n_accounts"] <= 30 for r in filtered["rows"])
    assert [r["campaign_id"] for r in status["rows"]] == ["C-00042"] and status["rows"][0]["status"] == "confirmed"
