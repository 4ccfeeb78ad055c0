"""Analyst decisions and the hash-chained, append-only audit log.

Two tables live in the store next to the scan's tables (a scan never touches
them, so decisions survive re-scans):

- ``audit_log(seq, ts, analyst, action, target_kind, target_id, reason,
  details_json, prev_hash, row_hash)``: one row per analyst action. Each row
  stores ``row_hash = sha256(prev_hash + canonical_json(row))`` where ``row``
  is every column but the two hashes, so editing, deleting or reordering any
  row breaks the chain from that row on (:func:`verify_audit_chain`). Nothing
  in the package updates or deletes a row.
- ``analyst_decisions(seq, ts, analyst, action, target_kind, target_id,
  campaign_id, members_json, indicators_json, reason, audit_hash)``: the same
  actions in the shape the scan needs (:func:`analyst_overrides`): for a
  campaign decision the member accounts and indicators as they were when the
  analyst decided, so a later scan can recognise the same cluster under a new
  campaign id. The SHA-256 of each row's content is kept in its audit row
  (``decision_sha256``), so :func:`verify_audit_chain` also catches edits here.

The service's own events (labels, challenge results, reads, sign-ins, token
changes) join the chain through :func:`log_event`. After every append the
new head (row number = row count, hash) is signed with the Ed25519 key of
``distillguard keys init`` when the process has it
(:func:`verify_audit_signature`), so deleting the newest rows or rewriting a
row and recomputing the chain no longer verifies.
"""
from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone
from typing import NamedTuple

from distillguard.errors import UsageError
from distillguard.store import table_exists

__all__ = [
    "ACTIONS", "GENESIS", "AnalystOverrides", "ensure_tables", "record_action", "log_event", "audit_head",
    "verify_audit_chain", "verify_audit_signature", "trusted_public_key", "analyst_overrides", "confirmed_indicators", "latest_campaign_status", "matches_dismissed",
]

ACTIONS = ("confirm", "dismiss", "escalate", "allowlist")
TARGET_KINDS = ("campaign", "account", "org")
GENESIS = "0" * 64
_LOCK = threading.Lock()

_DDL = (
    "CREATE TABLE IF NOT EXISTS audit_log (seq BIGINT PRIMARY KEY, ts VARCHAR, analyst VARCHAR, action VARCHAR, "
    "target_kind VARCHAR, target_id VARCHAR, reason VARCHAR, details_json VARCHAR, prev_hash VARCHAR, row_hash VARCHAR)",
    "CREATE TABLE IF NOT EXISTS analyst_decisions (seq BIGINT PRIMARY KEY, ts VARCHAR, analyst VARCHAR, action VARCHAR, "
    "target_kind VARCHAR, target_id VARCHAR, campaign_id VARCHAR, members_json VARCHAR, indicators_json VARCHAR, "
    "reason VARCHAR, audit_hash VARCHAR)",
    "CREATE INDEX IF NOT EXISTS analyst_decisions_target ON analyst_decisions (target_kind, target_id)",
)


def first(cur):
    """The first row of a result, or None (fetches it all: DuckDB refuses new work on an unfinished result)."""
    rows = cur.fetchall()
    return rows[0] if rows else None


def _accepts_path(fn):
    """Let ``fn(store, ...)`` take a path too: open the file, call, close."""
    import functools
    from pathlib import PurePath

    @functools.wraps(fn)
    def wrapper(store, *args, **kwargs):
        if isinstance(store, (str, PurePath)):
            import duckdb

            try:
                con = duckdb.connect(str(store))
            except duckdb.Error as exc:
                raise UsageError(f"cannot open store {store}: {str(exc).splitlines()[0]}") from None
            try:
                return fn(con, *args, **kwargs)
            finally:
                con.close()
        return fn(store, *args, **kwargs)

    return wrapper


def _con(store):
    """A DuckDB connection from an EventStore, a connection, or a path."""
    if hasattr(store, "con"):
        return store.con
    if hasattr(store, "execute"):
        return store
    import duckdb

    return duckdb.connect(str(store))


def ensure_tables(con) -> None:
    for stmt in _DDL:
        con.execute(stmt)


def canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(prev_hash: str, row: dict) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode("utf-8")).hexdigest()


_ROW_FIELDS = ("seq", "ts", "analyst", "action", "target_kind", "target_id", "reason", "details_json")


def _decision_digest(row: dict) -> str:
    """SHA-256 of an ``analyst_decisions`` row's content (what the next scan obeys), kept in its audit row."""
    return hashlib.sha256(canonical({k: row[k] for k in _DECISION_FIELDS}).encode("utf-8")).hexdigest()


_DECISION_FIELDS = ("seq", "ts", "analyst", "action", "target_kind", "target_id", "campaign_id", "members_json",
                    "indicators_json", "reason")


def _append(con, *, analyst: str, action: str, target_kind: str, target_id: str, reason: str, details: dict,
            now: datetime | None = None, decision: dict | None = None) -> dict:
    """Append one chained row (and its ``analyst_decisions`` row when ``decision``), then sign the new head."""
    with _LOCK:
        ensure_tables(con)
        con.execute("BEGIN TRANSACTION")
        try:
            last = first(con.execute("SELECT seq, row_hash FROM audit_log ORDER BY seq DESC LIMIT 1"))
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            ts = (now or datetime.now(timezone.utc)).isoformat(timespec="microseconds")
            if decision is not None:
                drow = {"seq": seq, "ts": ts, "analyst": analyst, "action": action, "target_kind": target_kind,
                        "target_id": str(target_id), "reason": reason, **decision}
                details = {**details, "decision_sha256": _decision_digest(drow)}
            row = {"seq": seq, "ts": ts, "analyst": analyst, "action": action, "target_kind": target_kind,
                   "target_id": str(target_id), "reason": reason, "details_json": canonical(details)}
            h = row_hash(prev, row)
            con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [*(row[f] for f in _ROW_FIELDS), prev, h])
            if decision is not None:
                con.execute("INSERT INTO analyst_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [*(drow[f] for f in _DECISION_FIELDS), h])
            _sign_head(con, seq, h)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return {**row, "prev_hash": prev, "row_hash": h}


@_accepts_path
def log_event(store, *, analyst: str, action: str, target_kind: str, target_id: str, reason: str = "",
              details: dict | None = None, now: datetime | None = None) -> dict:
    """Append a service event (an API label, a challenge result, a token change, an audited read) to ``audit_log``.

    ``analyst`` is the name of the credential that acted, never a name the caller typed.
    """
    return _append(_con(store), analyst=(analyst or "unknown")[:200], action=action, target_kind=target_kind,
                   target_id=target_id, reason=(reason or "")[:4000], details=details or {}, now=now)


@_accepts_path
def record_action(store, *, action: str, target_kind: str, target_id: str, analyst: str, reason: str,
                  now: datetime | None = None) -> dict:
    """Append one analyst action to ``audit_log`` and ``analyst_decisions``; returns the audit row.

    ``action`` is one of :data:`ACTIONS`; ``target_kind`` is ``campaign``
    (all four actions), ``account`` or ``org`` (``allowlist`` and ``escalate``). The ``analyst_decisions`` row's
    content is hashed into its audit row, so editing what the next scan obeys breaks the chain.
    """
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    if target_kind not in TARGET_KINDS:
        raise UsageError(f"unknown target kind {target_kind!r}")
    if target_kind != "campaign" and action in ("confirm", "dismiss"):
        raise UsageError(f"{action} applies to a campaign")
    analyst = (analyst or "").strip()[:200]
    reason = (reason or "").strip()[:4000]
    if not analyst:
        raise UsageError("an analyst name is required")
    if not reason:
        raise UsageError("a reason is required")
    con = _con(store)
    ensure_tables(con)
    members: list[str] = []
    indicators: list[dict] = []
    campaign_id = None
    if target_kind == "campaign":
        campaign_id = target_id
        if table_exists(con, "campaigns"):
            row = first(con.execute("SELECT evidence_json FROM campaigns WHERE campaign_id = ?", [target_id]))
            if row is None:
                raise UsageError(f"no campaign {target_id!r} in the store")
            members = sorted(json.loads(row[0]).get("accounts") or [])
        if table_exists(con, "campaign_indicators"):
            indicators = [
                {"kind": k, "value": v, "weight": None if w is None else float(w)}
                for k, v, w in con.execute(
                    "SELECT kind, value, weight FROM campaign_indicators WHERE campaign_id = ? ORDER BY kind, value",
                    [target_id]).fetchall()
            ]
    elif target_kind == "account" and table_exists(con, "account_results"):
        r = first(con.execute("SELECT campaign_id FROM account_results WHERE account_id = ?", [target_id]))
        campaign_id = r[0] if r else None
    details = {"campaign_id": campaign_id, "n_members": len(members),
               "members_sha256": hashlib.sha256("\n".join(members).encode()).hexdigest() if members else None}
    return _append(con, analyst=analyst, action=action, target_kind=target_kind, target_id=target_id, reason=reason,
                   details=details, now=now, decision={"campaign_id": campaign_id, "members_json": json.dumps(members),
                                                       "indicators_json": json.dumps(indicators)})


@_accepts_path
def audit_rows(store, target_kind: str | None = None, target_id: str | None = None, limit: int | None = None) -> list[dict]:
    con = _con(store)
    if not table_exists(con, "audit_log"):
        return []
    cols = [*_ROW_FIELDS, "prev_hash", "row_hash"]
    sql = f"SELECT {', '.join(cols)} FROM audit_log"
    args: list = []
    if target_kind is not None:
        sql += " WHERE target_kind = ? AND target_id = ?"
        args = [target_kind, target_id]
    sql += " ORDER BY seq DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [dict(zip(cols, r)) for r in con.execute(sql, args).fetchall()]


@_accepts_path
def audit_head(store) -> dict:
    """``{"seq": n, "hash": h}`` of the newest audit row (``seq`` 0 and the genesis hash when empty)."""
    con = _con(store)
    if not table_exists(con, "audit_log"):
        return {"seq": 0, "hash": GENESIS}
    last = first(con.execute("SELECT seq, row_hash FROM audit_log ORDER BY seq DESC LIMIT 1"))
    return {"seq": last[0], "hash": last[1]} if last else {"seq": 0, "hash": GENESIS}


@_accepts_path
def verify_audit_chain(store) -> tuple[bool, int | None]:
    """Recompute the chain; ``(True, None)`` when intact, else ``(False, first bad seq)``.

    Each ``analyst_decisions`` row must match the digest its audit row
    carries, and every analyst action in the log must still have its row.
    """
    con = _con(store)
    if not table_exists(con, "audit_log"):
        return True, None
    prev = GENESIS
    expected = 1
    cols = [*_ROW_FIELDS, "prev_hash", "row_hash"]
    digests: dict[int, str | None] = {}
    for r in con.execute(f"SELECT {', '.join(cols)} FROM audit_log ORDER BY seq").fetchall():
        d = dict(zip(cols, r))
        row = {f: d[f] for f in _ROW_FIELDS}
        if d["seq"] != expected or d["prev_hash"] != prev or row_hash(prev, row) != d["row_hash"]:
            return False, d["seq"]
        if d["action"] in ACTIONS:
            digests[d["seq"]] = json.loads(d["details_json"] or "{}").get("decision_sha256")
        prev = d["row_hash"]
        expected += 1
    if table_exists(con, "analyst_decisions"):
        dcols = [*_DECISION_FIELDS, "audit_hash"]
        seen = set()
        for r in con.execute(f"SELECT {', '.join(dcols)} FROM analyst_decisions ORDER BY seq").fetchall():
            d = dict(zip(dcols, r))
            want = digests.get(d["seq"], "absent")
            if want == "absent" or (want is not None and want != _decision_digest(d)):
                return False, d["seq"]
            seen.add(d["seq"])
        missing = sorted(set(digests) - seen)
        if missing:
            return False, missing[0]
    return True, None


def _head_message(seq: int, head_hash: str) -> bytes:
    """What the head signature covers: the newest row's number (= the row count) and hash."""
    return f"distillguard-audit-head/1\n{seq}\n{head_hash}".encode()


def _sign_head(con, seq: int, head_hash: str, key=None) -> None:
    """Sign the new head when this process has the signing key (one row, replaced: truncation then fails).

    The key is the process's cached signer (:func:`distillguard.signing.signer`), not read per append."""
    from distillguard import signing

    signer = signing.Signer.of(key) if key is not None else signing.signer()
    if signer is None:
        return
    sig = signer.sign(_head_message(seq, head_hash))
    con.execute("CREATE TABLE IF NOT EXISTS audit_signature (seq BIGINT, head_hash VARCHAR, key_id VARCHAR, "
                "signature VARCHAR, public_key_pem VARCHAR, signed_at VARCHAR)")
    con.execute("DELETE FROM audit_signature")
    con.execute("INSERT INTO audit_signature VALUES (?, ?, ?, ?, ?, ?)",
                [seq, head_hash, sig["key_id"], sig["signature"], signer.public_pem.decode(),
                 datetime.now(timezone.utc).isoformat(timespec="seconds")])


@_accepts_path
def sign_current_head(store, key) -> None:
    """Sign the log's current head (after ``keys init`` on a store that already has a log)."""
    con = _con(store)
    head = audit_head(con)
    if head["seq"]:
        with _LOCK:
            _sign_head(con, head["seq"], head["hash"], key)


def trusted_public_key(public_key_path=None):
    """The key evidence is checked against: ``public_key_path``, else the keys folder's ``signing.pub``;
    None when there is none. Never a key read from the store: whoever can edit the store could put one there."""
    from distillguard import signing

    return signing.load_public(public_key_path)


@_accepts_path
def verify_audit_signature(store, public_key) -> str | None:
    """None when the signed head is the log's newest row under ``public_key``, else what is wrong.

    Deleting the newest rows, or rewriting a row and recomputing the chain,
    leaves a head no signature covers.
    """
    from distillguard import signing

    con = _con(store)
    head = audit_head(con)
    if head["seq"] == 0:
        return None
    if public_key is None:
        return "no trusted public key to check the audit log's signature (distillguard keys init; --public-key)"
    r = first(con.execute("SELECT seq, head_hash, key_id, signature FROM audit_signature")) \
        if table_exists(con, "audit_signature") else None
    if r is None:
        return "the audit log head is not signed"
    seq, head_hash, kid, sig = r
    why = signing.verify(public_key, _head_message(seq, head_hash), {"alg": "ed25519", "key_id": kid, "signature": sig})
    if why:
        return f"audit log signature: {why}"
    if (seq, head_hash) != (head["seq"], head["hash"]):
        return (f"the audit log does not end where its signed head does (signed #{seq}, found #{head['seq']}): "
                "rows were removed, added or rewritten")
    return None


def latest_campaign_status(con) -> dict[str, str]:
    """campaign_id -> latest of confirm/dismiss/escalate (allowlist on a campaign counts as dismiss)."""
    if not table_exists(con, "analyst_decisions"):
        return {}
    rows = con.execute(
        "SELECT target_id, action FROM analyst_decisions WHERE target_kind = 'campaign' "
        "QUALIFY row_number() OVER (PARTITION BY target_id ORDER BY seq DESC) = 1").fetchall()
    return {t: ("dismissed" if a in ("dismiss", "allowlist") else a + "ed" if a == "confirm" else "escalated") for t, a in rows}


class AnalystOverrides(NamedTuple):
    """What analysts decided, in the shape a scan applies.

    - ``allow_accounts``: account ids allowlisted (directly, or as members of an
      allowlisted campaign) -> ``Policy.with_allowlist(accounts=...)``;
    - ``allow_orgs``: org ids allowlisted -> ``Policy.with_allowlist(orgs=...)``;
    - ``dismissed_campaign_member_sets``: for each campaign whose latest
      decision is *dismiss*, the frozenset of its member accounts at decision
      time: a new campaign whose members are (mostly) inside one of these sets
      is the same benign cluster and stays cleared;
    - ``confirmed_campaign_ids``: campaigns whose latest decision is *confirm*;
      their indicators (:func:`confirmed_indicators`) are to be blocked.
    """

    allow_accounts: frozenset
    allow_orgs: frozenset
    dismissed_campaign_member_sets: tuple
    confirmed_campaign_ids: frozenset


@_accepts_path
def analyst_overrides(store) -> AnalystOverrides:
    """Analyst feedback for the next scan (see :class:`AnalystOverrides`).

    ``store`` is an :class:`~distillguard.store.EventStore`, a DuckDB
    connection, or a path. The latest decision on a target wins (a campaign
    confirmed after being dismissed is confirmed).
    """
    con = _con(store)
    if not table_exists(con, "analyst_decisions"):
        return AnalystOverrides(frozenset(), frozenset(), (), frozenset())
    latest = con.execute(
        "SELECT target_kind, target_id, action, members_json FROM analyst_decisions "
        "WHERE action <> 'escalate' "
        "QUALIFY row_number() OVER (PARTITION BY target_kind, target_id ORDER BY seq DESC) = 1 ORDER BY seq").fetchall()
    allow_accounts: set[str] = set()
    allow_orgs: set[str] = set()
    dismissed: list[frozenset] = []
    confirmed: set[str] = set()
    for kind, tid, action, members_json in latest:
        members = json.loads(members_json or "[]")
        if kind == "account" and action == "allowlist":
            allow_accounts.add(tid)
        elif kind == "org" and action == "allowlist":
            allow_orgs.add(tid)
        elif kind == "campaign":
            if action == "confirm":
                confirmed.add(tid)
            elif action == "dismiss" and members:
                dismissed.append(frozenset(members))
            elif action == "allowlist":
                allow_accounts.update(members)
    return AnalystOverrides(frozenset(allow_accounts), frozenset(allow_orgs), tuple(dismissed), frozenset(confirmed))


def matches_dismissed(accounts, dismissed_sets, min_share: float = 0.8) -> bool:
    """True when at least ``min_share`` of ``accounts`` lie inside one dismissed member set.

    The scan's test for "this new campaign is a cluster an analyst already
    cleared" (campaign ids change between scans; member sets don't).
    """
    acc = set(accounts)
    if not acc:
        return False
    return any(len(acc & d) >= min_share * len(acc) for d in dismissed_sets)


@_accepts_path
def confirmed_indicators(store) -> list[dict]:
    """Indicators (kind, value, weight, campaign_id) of confirmed campaigns, as snapshotted at confirmation."""
    con = _con(store)
    ov = analyst_overrides(con)
    out = []
    for cid in sorted(ov.confirmed_campaign_ids):
        r = first(con.execute(
            "SELECT indicators_json FROM analyst_decisions WHERE target_kind = 'campaign' AND target_id = ? "
            "AND action = 'confirm' ORDER BY seq DESC LIMIT 1", [cid]))
        for ind in json.loads(r[0] or "[]"):
            out.append({**ind, "campaign_id": cid})
    return out
