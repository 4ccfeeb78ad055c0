"""Erasure of one account (``store forget``) and retention of raw events (``store retain``).

Erasure deletes every stored row about the account (each table with an
``account_id`` column: events, metadata, results, aggregates, labels), takes
it out of the campaigns' member lists, drops the quarantine lines that name it,
and writes an audit-log row (action ``forget``) with the counts. The audit row
is also how a running service learns of it: the service re-reads forget rows
on every refresh, drops the account's live state and deletes what its journal
moved into the store meanwhile, and its journal drain drops events of an
account forgotten after they happened (:func:`forgotten_before`).

Retention aggregates events older than the cut-off into ``account_daily``
(per account and day) and ``account_links`` (the linkage values: client IPs,
subnets, user agents, keyed hashes when ``store.identifiers: hashed``), then
deletes them. Running it again finds nothing older to delete.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from distillguard.errors import UsageError

__all__ = ["forget", "retain", "forget_log", "forgotten_before", "forget_rows", "quarantine_files", "ensure_tables",
           "record_case_export"]

_DDL = (
    "CREATE TABLE IF NOT EXISTS account_daily (account_id VARCHAR, day DATE, n_events BIGINT, input_tokens BIGINT, "
    "output_tokens BIGINT, reasoning_tokens BIGINT, n_errors BIGINT, n_distinct_prompts BIGINT, "
    "first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS account_links (account_id VARCHAR, kind VARCHAR, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS case_exports (campaign_id VARCHAR, path VARCHAR, exported_at VARCHAR, "
    "accounts_json VARCHAR)",
)


def ensure_tables(con) -> None:
    for ddl in _DDL:
        con.execute(ddl)


def _tables_with_account(con) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.columns WHERE column_name = 'account_id' "
        "AND table_schema = current_schema() AND table_catalog = current_database() ORDER BY table_name").fetchall()]


def delete_account_rows(con, account_id: str) -> dict[str, int]:
    """Delete the account's rows from every table that has an ``account_id``; counts per table (0s included)."""
    return {t: con.execute(f'DELETE FROM "{t}" WHERE account_id = ?', [account_id]).fetchall()[0][0]
            for t in _tables_with_account(con)}


def _drop_from_campaigns(con, account_id: str) -> int:
    """Take the account out of the member lists in ``campaigns.evidence_json``; campaigns changed."""
    has = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'campaigns' "
                      "AND column_name = 'evidence_json' AND table_schema = current_schema()").fetchall()[0][0]
    if not has:
        return 0
    changed = 0
    for cid, ev in con.execute("SELECT campaign_id, evidence_json FROM campaigns WHERE contains(evidence_json, ?)",
                               [json.dumps(account_id)]).fetchall():
        data = json.loads(ev)
        if account_id in (data.get("accounts") or []):
            data["accounts"] = [a for a in data["accounts"] if a != account_id]
            con.execute("UPDATE campaigns SET evidence_json = ? WHERE campaign_id = ?",
                        [json.dumps(data, ensure_ascii=False, default=str), cid])
            changed += 1
    return changed


def quarantine_files(db) -> list[Path]:
    """The quarantine files the store's commands write beside it (ingest's and the service's)."""
    return [p for p in (Path(str(db) + ".quarantine.jsonl"), Path(str(db) + ".serve-quarantine.jsonl")) if p.exists()]


def _scrub_quarantine(path: Path, account_id: str) -> int:
    """Remove the lines naming the account from a quarantine file, in place (the service appends to it)."""
    token = re.compile(r"(?<![\w.\-@])" + re.escape(account_id) + r"(?![\w.\-@])")
    with open(path, "r+b") as fh:
        lines = fh.read().splitlines(keepends=True)
        kept = [ln for ln in lines if not token.search(ln.decode("utf-8", "replace"))]
        if len(kept) != len(lines):
            fh.seek(0)
            fh.write(b"".join(kept))
            fh.truncate()
            os.fsync(fh.fileno())
    return len(lines) - len(kept)


def record_case_export(con, campaign_id: str, folder: Path, exported_at: str, accounts: list[str]) -> None:
    """Remember an exported case folder and its accounts: an erasure lists the copies it cannot reach.

    ``con`` is the store's connection as the export opened it (encrypted when the store is)."""
    ensure_tables(con)
    con.execute("INSERT INTO case_exports VALUES (?, ?, ?, ?)",
                [campaign_id, str(Path(folder).resolve()), exported_at, json.dumps(sorted(accounts))])


def forget_rows(con, account_id: str) -> dict:
    """The store side of an erasure (no audit row): counts."""
    ensure_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        per_table = delete_account_rows(con, account_id)
        campaigns = _drop_from_campaigns(con, account_id)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    others = {t: n for t, n in per_table.items() if t not in ("events", "accounts") and n}
    return {"rows_deleted": per_table, "events_deleted": per_table.get("events", 0),
            "accounts_deleted": per_table.get("accounts", 0), "results_deleted": others, "campaigns_updated": campaigns}


def forget(store, account_id: str, reason: str = "", operator: str | None = None) -> dict:
    """Erase ``account_id`` from the store at ``store.path`` and its quarantine files; returns the counts.

    ``rows_deleted`` has every table with an ``account_id`` (0 where none);
    ``found`` is False when nothing of the account was there (the audit row is
    written all the same: a running service must still drop what its journal
    holds); ``account_id`` is the id as stored (a pseudonym when it held an e-mail...).
    """
    from distillguard.audit import log_event

    account_id = store.privacy.identifier((account_id or "").strip())  # a pseudonym when it held an e-mail...
    if not account_id:
        raise UsageError("--account must name an account")
    con = store.con
    out = forget_rows(con, account_id)
    out["quarantine_lines_deleted"] = sum(_scrub_quarantine(p, account_id) for p in quarantine_files(store.path))
    out["case_exports"] = [
        {"campaign_id": c, "path": p, "exported_at": at}
        for c, p, at, members in con.execute(
            "SELECT campaign_id, path, exported_at, accounts_json FROM case_exports ORDER BY exported_at").fetchall()
        if account_id in json.loads(members or "[]")]
    out["found"] = bool(sum(out["rows_deleted"].values()) or out["campaigns_updated"] or out["quarantine_lines_deleted"])
    out["account_id"] = account_id
    counts = {k: v for k, v in out.items() if k not in ("case_exports", "account_id")}
    counts["case_exports"] = [c["path"] for c in out["case_exports"]]
    row = log_event(con, action="forget", target_kind="account", target_id=account_id,
                    analyst=operator or os.environ.get("USER") or "operator",
                    reason=reason or "erasure request", details=counts)
    out["audit_seq"] = row["seq"]
    con.execute("CHECKPOINT")
    return out


def forget_log(con, after_seq: int = 0) -> list[tuple[int, str, datetime]]:
    """``(seq, account_id, when)`` of the forget rows after ``after_seq``."""
    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_log'").fetchall()[0][0]
    if not has:
        return []
    rows = con.execute("SELECT seq, target_id, ts FROM audit_log WHERE action = 'forget' AND seq > ? ORDER BY seq",
                       [after_seq]).fetchall()
    return [(s, a, datetime.fromisoformat(t)) for s, a, t in rows]


def forgotten_before(con) -> dict[str, datetime]:
    """Each forgotten account and the last time it was forgotten (events up to then stay erased)."""
    return {a: t for _, a, t in forget_log(con)}


# -- retention ------------------------------------------------------------------------
def retain(store, keep_days: int, as_of: datetime | None = None) -> dict:
    """Aggregate then delete the events older than ``keep_days`` before ``as_of`` (default now)."""
    if keep_days < 1:
        raise UsageError("--keep-days must be at least 1")
    as_of = as_of or datetime.now(timezone.utc)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    import ibis

    from distillguard.link.memberships import infrastructure

    cutoff = as_of - timedelta(days=keep_days)
    con = store.con
    ensure_tables(con)
    old = "(SELECT * FROM events WHERE ts < ?)"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"""INSERT INTO account_daily SELECT account_id, CAST(ts AS DATE), count(*), sum(input_tokens),
            sum(output_tokens), sum(reasoning_tokens), count(*) FILTER (WHERE status = 'error'), count(DISTINCT prompt),
            min(ts), max(ts) FROM {old} GROUP BY 1, 2""", [cutoff])
        links = infrastructure(store.ibis().table("events").filter(lambda t: t.ts < cutoff))
        con.execute(f"INSERT INTO account_links SELECT * FROM ({ibis.to_sql(links, dialect='duckdb')}) "
                    "EXCEPT SELECT * FROM account_links")
        deleted = con.execute("DELETE FROM events WHERE ts < ?", [cutoff]).fetchall()[0][0]
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    if deleted:
        con.execute("CHECKPOINT")
    return {"events_deleted": deleted, "cutoff": cutoff.isoformat(), "events_kept": store.count("events"),
            "daily_rows": store.count("account_daily"), "link_rows": store.count("account_links")}
