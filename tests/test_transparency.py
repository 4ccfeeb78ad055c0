"""Transparency report: aggregate figures from a real scan, and no customer identifier anywhere in them."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def scanned(smoke_traffic, tmp_path_factory):
    work = tmp_path_factory.mktemp("transparency")
    db = work / "dg.duckdb"
    proc = _cli("scan", smoke_traffic / "events.parquet", "--accounts", smoke_traffic / "accounts.parquet", "--db", db,
                "--out", work / "scan", "--quiet")
    assert proc.returncode == 0, proc.stderr
    from distillguard.audit import record_action

    con = duckdb.connect(str(db))
    cid = con.execute("SELECT campaign_id FROM campaigns ORDER BY risk DESC LIMIT 1").fetchall()[0][0]
    record_action(con, action="confirm", target_kind="campaign", target_id=cid, analyst="alice@example.org", reason="cards")
    con.close()
    return db, work


def test_figures_and_no_customer_identifier(scanned):
    db, work = scanned
    out = work / "tr"
    proc = _cli("report", "transparency", "--db", db, "--period", "2026-Q1", "--out", out)
    assert proc.returncode == 0, proc.stderr
    fig = json.loads((out / "transparency-2026-Q1.json").read_text())
    html = (out / "transparency-2026-Q1.html").read_text()
    con = duckdb.connect(str(db), read_only=True)
    n_campaigns, n_members = con.execute("SELECT count(*), sum(n_accounts) FROM campaigns").fetchall()[0]
    assert fig["campaigns"]["count"] == n_campaigns > 0
    assert fig["accounts"]["in_campaigns"] == n_members
    assert fig["harvest"]["exchanges"] > 0 and fig["harvest"]["output_tokens"] > 0
    assert "COT_ELICITATION" in fig["techniques"]
    assert fig["capabilities_targeted"] and abs(sum(c["share_of_exchanges"] for c in fig["capabilities_targeted"]) - 1) < 0.01
    assert fig["actions_taken"]["analyst_decisions_on_campaigns"]["confirm"] == 1
    assert sum(fig["actions_taken"]["policy_actions_on_campaign_accounts"].values()) == n_members
    assert fig["time_to_detection_hours"]["median"] is not None
    # nothing that identifies a customer: ids, keys, orgs, IPs, e-mail domains, cards, user agents, campaign ids, analysts
    ids = set()
    for sql in ("SELECT DISTINCT account_id FROM events", "SELECT DISTINCT api_key_id FROM events",
                "SELECT DISTINCT org_id FROM events", "SELECT DISTINCT client_ip FROM events",
                "SELECT DISTINCT user_agent FROM events", "SELECT DISTINCT org_id FROM accounts",
                "SELECT DISTINCT email_domain FROM accounts", "SELECT DISTINCT payment_fingerprint FROM accounts",
                "SELECT DISTINCT campaign_id FROM campaigns", "SELECT DISTINCT analyst FROM analyst_decisions"):
        ids |= {r[0] for r in con.execute(sql).fetchall() if r[0]}
    con.close()
    assert len(ids) > 100
    text = json.dumps(fig) + html
    leaked = sorted(i for i in ids if i in text)
    assert not leaked, leaked[:5]


def test_empty_period_and_bad_period(scanned):
    db, work = scanned
    proc = _cli("report", "transparency", "--db", db, "--period", "2026-Q4", "--out", work / "q4")
    assert proc.returncode == 0, proc.stderr
    fig = json.loads((work / "q4" / "transparency-2026-Q4.json").read_text())
    assert fig["campaigns"]["count"] == 0 and fig["start"] == "2026-10-01" and fig["end_exclusive"] == "2027-01-01"
    proc = _cli("report", "transparency", "--db", db, "--period", "Q4-2026", "--out", work / "x")
    assert proc.returncode == 2 and "period" in proc.stderr
