"""Intake of the service: ids for normalised rows, repeats dropped, bad records quarantined, the rest
journalled (durably) and folded into the running state; account metadata likewise."""
from __future__ import annotations

import threading

import orjson

from distillguard.ingest.base import Quarantined, truncate_raw
from distillguard.ingest.normalize import Reject, normalize, normalize_fields, rows_to_batch
from distillguard.serve.recent import Recent

__all__ = ["Intake"]

DEDUP_IDS = 1_000_000
"""Event ids remembered for dropping repeats: at least the latest this many (:class:`Recent`)."""


class Intake:
    """Event and account intake into ``journal`` and ``state``; ``signups`` hears of each account's creation time."""

    def __init__(self, journal, state, privacy, counters: dict, quarantine_path: str | None, signups):
        self.journal, self.state, self.privacy, self.counters, self.signups = journal, state, privacy, counters, signups
        self.con = None  # a DuckDB connection for content-derived ids, from open()
        self._seen = Recent(DEDUP_IDS)
        self._lock = threading.Lock()
        self._qfile = open(quarantine_path, "ab") if quarantine_path else None
        self._qlock = threading.Lock()

    def open(self) -> None:
        from distillguard.ingest.sqlfast import connect

        self.con = connect()

    def close(self) -> None:
        if self._qfile:
            self._qfile.close()

    def remember(self, ids) -> list[bool]:
        """Whether each id is new (and remember it)."""
        with self._lock:
            return self._seen.fresh(ids)

    def quarantine(self, bad: list[Quarantined]) -> None:
        if self._qfile is not None and bad:
            with self._qlock:
                self._qfile.write(b"".join(orjson.dumps(q.to_dict()) + b"\n" for q in bad))
                self._qfile.flush()
        self.counters["quarantined"] += len(bad)

    def accept(self, rows: list[dict], bad: list[Quarantined]) -> dict:
        """Give ids to normalised rows, drop repeats, journal (durably), update state."""
        if rows and any(r.get("event_id") is None for r in rows):
            from distillguard.ingest.sqlfast import fill_event_ids

            with self._lock:
                ids = fill_event_ids(self.con, rows_to_batch(rows)).column("event_id").to_pylist()
            for r, i in zip(rows, ids):
                r["event_id"] = i
        rows = self.privacy.records(rows)  # ids above come from what was received, as ingest's do
        fresh = self.remember([r["event_id"] for r in rows])
        new = [r for r, f in zip(rows, fresh) if f]
        self.journal.append(new)
        self.state.apply(new)
        self.quarantine(bad)
        self.counters["accepted"] += len(new)
        self.counters["duplicates"] += len(rows) - len(new)
        return {"accepted": len(new), "duplicates": len(rows) - len(new), "quarantined": len(bad),
                "errors": [{"index": q.line - 1, "reason": q.reason, "detail": q.detail} for q in bad]}

    def ingest(self, records: list, source: str = "api") -> dict:
        """Validate a batch with the ingest rules; bad records are quarantined, the rest accepted."""
        rows, bad = [], []
        for i, rec in enumerate(records):
            try:
                rows.append(normalize(rec))
            except Reject as rej:
                bad.append(Quarantined(source, i + 1, rej.reason, truncate_raw(rec), rej.detail))
            except Exception as exc:  # never let one record fail the batch
                bad.append(Quarantined(source, i + 1, "invalid", truncate_raw(rec), str(exc)[:200]))
        return self.accept(rows, bad)

    def ingest_pairs(self, pairs: list, source: str = "otlp") -> dict:
        """Mapped ``(record, extra)`` pairs (OTLP intake): normalised, quarantined or accepted."""
        rows, bad = [], []
        for i, (rec, extra) in enumerate(pairs):
            try:
                rows.append(normalize_fields(rec, extra))
            except Reject as rej:
                bad.append(Quarantined(source, i + 1, rej.reason, truncate_raw(rec), rej.detail))
            except Exception as exc:  # as ingest: never let one record fail the batch
                bad.append(Quarantined(source, i + 1, "invalid", truncate_raw(rec), str(exc)[:200]))
        return self.accept(rows, bad)

    def put_account(self, meta: dict) -> dict:
        """Store account metadata (journal + state); returns the normalised row."""
        from distillguard.ingest.accounts import normalize_account

        row = self.privacy.record(normalize_account(meta))
        self.journal.append([], [row])
        self.state.put_meta(row["account_id"], {k: row.get(k) for k in ("payment_fingerprint", "email_domain", "org_id")})
        if row.get("created_at") is not None:
            self.signups.note(int(row["created_at"].timestamp() * 1_000_000))
        return row
