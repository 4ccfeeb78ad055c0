"""Durability: a write-ahead JSONL journal in front of the DuckDB store.

An accepted batch is appended to the journal and ``fsync``-ed *before* the
service answers 2xx. A background flusher moves the journal into the DuckDB
``events``/``accounts`` tables in large batches (opening the file only for
the write, so a ``scan --db`` can run between flushes) and then deletes the
flushed part. At start every journal file left behind (a crash, a kill -9)
is replayed into the store first. Replaying twice is harmless: event ids are
computed from the content exactly as ingest does
(:func:`distillguard.ingest.sqlfast.fill_event_ids`) and the store's append is
idempotent by ``event_id``.
"""
from __future__ import annotations

import contextlib
import glob
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA

__all__ = ["Journal", "Turns", "events_to_table"]

HELD_EVENTS = 50_000
"""Journaled events kept in memory as well (their journal lines), to be stored without reading the file back: a
few flushes' worth at 20,000 events/s (~0.7-1.5 KB each); beyond, as while a scan holds the store, they are read
back from the file."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _ts_us(v) -> int:
    if isinstance(v, int):
        return v
    return int(v.timestamp() * 1_000_000)


def events_to_table(rows: list[dict]) -> pa.Table:
    """Journaled events (``ts`` as epoch microseconds or a datetime) -> an EVENT_SCHEMA table, in Arrow's C++."""
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


_LINES = pa_json.ParseOptions(explicit_schema=pa.schema([pa.field("e", pa.struct(list(EVENT_SCHEMA)))]),
                              unexpected_field_behavior="ignore")


def lines_to_table(lines: bytes, longest: int) -> pa.Table:
    """Journal lines of events (``{"e": {...}}`` as :meth:`Journal.append` writes them; ``longest``: the longest
    line's length) -> the EVENT_SCHEMA table :func:`events_to_table` gives on the same events.

    Arrow's JSON reader parses them in its own threads with the GIL released: the flusher then leaves the
    GIL to intake, where building the table from Python dicts held it ~2-6 µs a row (docs/serve.md)."""
    read = pa_json.ReadOptions(block_size=max(1 << 20, 2 * longest + 2))  # a line never straddles two blocks
    t = pa_json.read_json(pa.BufferReader(lines), read_options=read, parse_options=_LINES)
    t = pa.Table.from_batches([pa.RecordBatch.from_struct_array(c) for c in t.column("e").chunks])
    return t.cast(EVENT_SCHEMA)


def accounts_to_table(rows: list[dict]) -> pa.Table:
    cols = {}
    for f in ACCOUNT_SCHEMA:
        vals = [r.get(f.name) for r in rows]
        if f.name == "created_at":
            vals = [datetime.fromtimestamp(_ts_us(v) / 1e6, tz=timezone.utc) if v is not None else None for v in vals]
        cols[f.name] = pa.array(vals, f.type)
    return pa.table(cols, schema=ACCOUNT_SCHEMA)


_OPT = orjson.OPT_PASSTHROUGH_DATETIME
_EVENT_LINE = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE
"""An event's ``ts`` is journaled as orjson writes a datetime (RFC 3339, microseconds exact), in C: no Python call
per event; account, label and audit times as epoch microseconds. Journals of earlier versions (epoch microseconds
everywhere) are read as well."""


def _default(o):
    if isinstance(o, datetime):  # exact microseconds (``timestamp() * 1e6`` can be one off), as from_pylist keeps
        return ((o if o.tzinfo else o.replace(tzinfo=timezone.utc)) - _EPOCH) // _US
    raise TypeError


def _not_forgotten(con, events: pa.Table) -> pa.Table:
    """The events not erased meanwhile: an account forgotten after an event happened stays forgotten."""
    from distillguard.erasure import forgotten_before

    gone = forgotten_before(con)
    if not gone:
        return events
    until = pa.array(list(gone.values()), EVENT_SCHEMA.field("ts").type)
    cutoff = until.take(pc.index_in(events["account_id"], value_set=pa.array(list(gone), pa.string())))
    return events.filter(pc.fill_null(pc.greater(events["ts"], cutoff), True))


class Turns:
    """Intake batches taking turns at their Python work (decoding, checks, the fold).

    Under the GIL, batches that run together only interleave, handing the GIL back and forth at
    every switch; in turn they cost less CPU each (docs/serve.md, Performance). A batch waiting on
    the disk (:meth:`Journal.append`'s fsync) steps aside meanwhile, so the next one runs.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._mine = threading.local()

    @contextlib.contextmanager
    def turn(self):
        with self._lock:
            self._mine.held = True
            try:
                yield
            finally:
                self._mine.held = False

    @contextlib.contextmanager
    def aside(self):
        """Around blocking I/O: the turn goes to the next batch meanwhile (nothing to do outside a turn)."""
        if not getattr(self._mine, "held", False):
            yield
            return
        self._mine.held = False
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._mine.held = True


def _claim(path: str):
    """Hold an exclusive lock on ``<path>.lock`` while the journal is open: a second service process on the same
    journal would rotate the file under the first and lose what it appends (docs/serve.md, Several processes)."""
    import fcntl

    from distillguard.errors import UsageError

    fh = open(path + ".lock", "ab")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise UsageError(f"journal {path} is in use by another service process: give each process that shares "
                         "a store its own --journal") from None
    return fh


class Journal:
    """Append-only JSONL journal of accepted events and account metadata.

    Parameters
    ----------
    db
        The DuckDB store the journal drains into (``None``: journal only, no store).
    path
        The journal file [default: ``<db>.journal.jsonl``].
    fsync
        ``fsync`` each append before returning (the durability promise).
    privacy
        The store's :class:`~distillguard.privacy.StorePrivacy`. The engine journals events and accounts
        as :meth:`~distillguard.privacy.StorePrivacy.record` keeps them, so what this process wrote is
        stored without a second redaction; files an earlier process left are redacted again on replay
        (idempotent: docs/privacy.md).
    """

    def __init__(self, db: str | None, path: str | None = None, fsync: bool = True, privacy=None):
        self.db = db
        self.privacy = privacy
        self.path = path or (str(db) + ".journal.jsonl" if db else None)
        self.fsync = fsync
        self.lock = threading.Lock()
        self.db_lock = threading.Lock()
        self.turns = Turns()
        self.pending = 0
        self.flushed_events = 0
        self.last_error: str | None = None
        self._owner = _claim(self.path) if self.path else None
        self._fh = open(self.path, "ab") if self.path else None
        self._seq = 0
        # files holding only what this process wrote (rows as privacy.record left them: stored as they are);
        # a file left by an earlier process, perhaps under other settings, is redacted by the store again
        self._clean = self._fh is not None and self._fh.tell() == 0
        self._kept: set[str] = set()
        # the events of this process's files, as appended (their journal lines and the longest line's length),
        # while a file holds nothing else: drained from memory (the file is the same lines, read back only after
        # a crash or beyond HELD_EVENTS)
        self._live: list | None = [] if self._clean else None
        self._held: dict[str, list] = {}
        self._n_held = 0

    # -- writing ------------------------------------------------------------------
    def append(self, events: list[dict], accounts: list[dict] = (), labels: list[dict] = (), audits: list[dict] = ()) -> None:
        """Write records durably (returns after the OS confirms them on disk when ``fsync``).

        ``audits`` are audit-log entries (who labelled, who reported a challenge result, who read what):
        they join the hash chain when the journal drains.
        """
        if self._fh is None or not (events or accounts or labels or audits):
            return
        lines = [orjson.dumps({"e": e}, option=_EVENT_LINE) for e in events]
        held = b"".join(lines)
        buf = held + b"".join(orjson.dumps({"a": a}, default=_default, option=_OPT) + b"\n" for a in accounts)
        buf += b"".join(orjson.dumps({"l": x}, default=_default, option=_OPT) + b"\n" for x in labels)
        buf += b"".join(orjson.dumps({"x": x}, default=_default, option=_OPT) + b"\n" for x in audits)
        with self.turns.aside(), self.lock:  # the turn back only once the lock is free: no batch waits on both
            live, self._live = self._live, None  # an append failing half-way: the file is read back
            self._fh.write(buf)
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
            self.pending += len(events)
            if live is not None and not (accounts or labels or audits) and self._n_held + len(events) <= HELD_EVENTS:
                live.append((held, len(events), max(map(len, lines))))
                self._n_held += len(events)
                self._live = live
            elif live is not None:
                self._n_held -= sum(n for _, n, _ in live)

    # -- draining -------------------------------------------------------------------
    def _rotate(self) -> str | None:
        with self.lock:
            if self._fh is None or self._fh.tell() == 0:
                return None
            self._fh.close()
            self._seq += 1
            rotated = f"{self.path}.{int(time.time() * 1000)}-{os.getpid()}-{self._seq}.flushing"
            os.replace(self.path, rotated)
            if self._clean:
                self._kept.add(rotated)
            if self._live is not None:
                self._held[rotated] = self._live
            self._fh = open(self.path, "ab")
            self._clean = True
            self._live = []
            self.pending = 0
            return rotated

    def leftovers(self) -> list[str]:
        """Journal files not yet in the store (oldest first), the live one last."""
        if not self.path:
            return []
        files = sorted(glob.glob(glob.escape(self.path) + ".*.flushing"))
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            files.append(self.path)
        return files

    @staticmethod
    def read(path: str) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
        events, accounts, labels, audits = [], [], [], []
        with open(path, "rb") as fh:
            for line in fh:
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line of a crash: that request was never answered 2xx
                if "e" in rec:
                    e = rec["e"]
                    if isinstance(e.get("ts"), str):
                        e["ts"] = datetime.fromisoformat(e["ts"])
                    events.append(e)
                elif "a" in rec:
                    accounts.append(rec["a"])
                elif "l" in rec:
                    labels.append(rec["l"])
                elif "x" in rec:
                    audits.append(rec["x"])
        return events, accounts, labels, audits

    def drain_file(self, path: str) -> int:
        """Move one journal file into the store; delete it once committed."""
        held = self._held.get(path)
        if held is not None:
            accounts, labels, audits = [], [], []
            events = lines_to_table(b"".join(b for b, _, _ in held), max(m for _, _, m in held)) if held else None
        else:
            events, accounts, labels, audits = self.read(path)
            events = events_to_table(events) if events else None
        n = events.num_rows if events is not None else 0
        if self.db:
            from distillguard.store import EventStore

            with self.db_lock, EventStore(self.db, privacy=self.privacy) as store:
                inserted = 0
                events = _not_forgotten(store.con, events) if events is not None else None
                n = events.num_rows if events is not None else 0
                kept = path in self._kept
                if n:
                    inserted, _ = store.append_events([events], kept=kept)
                if accounts:
                    store.append_accounts(accounts_to_table(accounts), kept=kept)
                if labels:
                    store.con.execute(
                        "CREATE TABLE IF NOT EXISTS decision_labels (decision_id VARCHAR, account_id VARCHAR, "
                        "label VARCHAR, note VARCHAR, labelled_at TIMESTAMPTZ)")
                    for col in ("labelled_by VARCHAR", "immune_until TIMESTAMPTZ"):
                        store.con.execute(f"ALTER TABLE decision_labels ADD COLUMN IF NOT EXISTS {col}")
                    for x in labels:
                        store.con.execute(
                            "INSERT INTO decision_labels (decision_id, account_id, label, note, labelled_at, labelled_by, "
                            "immune_until) VALUES (?, ?, ?, ?, to_timestamp(?), ?, to_timestamp(?))",
                            [x["decision_id"], x["account_id"], x["label"], x.get("note"), x["at"], x.get("by"),
                             x.get("immune_until")])
                if audits:
                    from distillguard.audit import log_event

                    for x in audits:
                        log_event(store.con, analyst=x["analyst"], action=x["action"], target_kind=x["target_kind"],
                                  target_id=x["target_id"], reason=x.get("reason") or "", details=x.get("details"),
                                  now=datetime.fromtimestamp(x["at"], tz=timezone.utc))
                store.con.execute("CHECKPOINT")
            self.flushed_events += inserted
        os.remove(path)
        self._kept.discard(path)
        if self._held.pop(path, None) is not None:
            with self.lock:
                self._n_held -= sum(k for _, k, _ in held)
        return n

    def flush(self) -> int:
        """Rotate the live journal and drain every pending file; returns events moved."""
        moved = 0
        self._rotate()
        for f in sorted(glob.glob(glob.escape(self.path) + ".*.flushing")) if self.path else []:
            try:
                moved += self.drain_file(f)
                self.last_error = None
            except Exception as exc:  # the store is busy (a scan holds it): keep the file, retry later
                self.last_error = str(exc).splitlines()[0][:200]
                break
        return moved

    def close(self) -> None:
        with self.lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if self._owner is not None:
                self._owner.close()  # releases the claim
                self._owner = None
