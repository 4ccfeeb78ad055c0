"""Canonical JSONL straight into the store, a whole file per DuckDB statement.

DuckDB's newline-delimited reader splits and parses in parallel, and with
``ignore_errors`` a line it cannot parse becomes a NULL record instead of
vanishing, so records keep the file's order and count (blank lines are
skipped, as we skip them). Per file:

1. one pass for the top-level keys and the number of records;
2. one ``INSERT ... ANTI JOIN events`` of every record the SQL checks accept
   (:func:`~distillguard.ingest.jsonl_rules.chunk_sql`), in a transaction that then
   drops repeats of an ``event_id`` within the file;
3. only when fewer records went in than were read: a pass marking which
   records failed. :class:`~distillguard.ingest.lines.RecordLines` finds them
   in the file (line number, raw bytes) and they go through the reference
   rules (:func:`~distillguard.ingest.jsonl_rules.python_record`).

When every key is a known field (or an exported ``extra``), step 2 parses with
DuckDB's ``read_json`` straight into the keys' columns; otherwise with
``json_transform`` on each line's text, which ``extra`` is cut from. Memory
stays bounded: nothing is materialised but the records' pass/fail flags. If
DuckDB cannot read the file, or its record count differs from the file's
non-blank lines (counted whenever records failed), the transaction is rolled
back and :class:`Fallback` sends the file to the block-by-block path.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import duckdb
import numpy as np

from distillguard.ingest.base import Quarantined
from distillguard.ingest.jsonl_rules import chunk_sql, python_record
from distillguard.ingest.lines import RecordLines
from distillguard.ingest.normalize import rows_to_batch
from distillguard.ingest.sqlfast import fill_event_ids, lit

__all__ = ["Fallback", "ingest_jsonl"]

KEPT_BYTES = 64 << 20
"""Raw bytes of failing records kept from the counting pass; beyond it the file is read again."""


class Fallback(Exception):
    """This file needs the block-by-block path; nothing was stored."""


def _checking_sql(path: str, keys: tuple[str, ...], lines: str) -> str:
    """The checks over the whole file, parsed by DuckDB's reader straight into the keys' columns
    when no key needs the line's text; case-colliding keys send every record to Python."""
    if keys:
        columns = "{" + ", ".join(f"{lit(k)}: 'VARCHAR'" for k in keys) + "}"
        parsed = (f"(SELECT NULL::BIGINT AS _row, _t FROM read_json({lit(path)}, format='newline_delimited', "
                  f"records=true, columns={columns}, ignore_errors=true) _t)")
        sql = chunk_sql(keys, parsed, parsed=True)
        if sql:
            return sql
    return chunk_sql(keys, lines) or chunk_sql((), lines)


@contextmanager
def _reporting(con, on_progress, size: int, lo: float, hi: float):
    """Report DuckDB's progress on the running statement as a byte position between ``lo`` and ``hi``."""
    if on_progress is None:
        yield
        return
    stop = threading.Event()

    def poll():
        while not stop.wait(0.2):
            try:
                p = con.query_progress()
            except duckdb.Error:  # between statements: nothing to report
                continue
            if p >= 0:
                on_progress(int(size * (lo + (hi - lo) * min(p, 100.0) / 100.0)))

    t = threading.Thread(target=poll, daemon=True, name="distillguard-progress")
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        on_progress(int(size * hi))


def ingest_jsonl(path: str, store, on_quarantine, on_progress=None, size: int = 0,
                 batch_rows: int = 50_000) -> tuple[int, int]:
    """Insert one canonical JSONL file into ``store``; ``(inserted, duplicates)``.

    Raises :class:`Fallback` when the file must go another way (nothing is
    stored then).
    """
    con = store.con
    src = (f"(SELECT NULL::BIGINT AS _row, json AS line FROM "
           f"read_json_objects({lit(path)}, format='newline_delimited', ignore_errors=true))")
    if on_progress is not None:
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
    try:
        with _fallback_on_read_errors():
            with _reporting(con, on_progress, size, 0.0, 0.25):
                # grouped by a 64-bit hash of the key list (cheaper than the list itself): two different
                # lists of one file would have to collide, at odds of ~1e-14 for a thousand lists
                groups = con.execute(f"SELECT any_value(k), count(*) FROM (SELECT json_keys(line) AS k FROM {src}) "
                                     "GROUP BY hash(k)").fetchall()
        records = sum(n for _, n in groups)
        if records == 0:
            if RecordLines(path).count():  # DuckDB reads a one-byte file ("{", "x", "1") as no record
                raise Fallback("DuckDB read no record")
            return 0, 0
        keys = tuple(sorted({k for ks, _ in groups if ks for k in ks}))
        sql = _checking_sql(path, keys, src)
        store.writing()  # outside the transaction: a rollback must not undo the store's settings
        con.execute("BEGIN TRANSACTION")
        try:
            with _fallback_on_read_errors():
                with _reporting(con, on_progress, size, 0.25, 1.0):
                    inserted, repeats = _insert(store, sql)
                failing = _failing(con, sql, path, records) if inserted < records else _Failing.none()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute("DROP TABLE IF EXISTS _chk")
    finally:
        if on_progress is not None:
            con.execute("RESET enable_progress_bar")
            con.execute("RESET enable_progress_bar_print")
    accepted, duplicates = inserted - repeats, records - inserted + repeats - len(failing.records)
    batch: list = []
    for no, raw in failing.lines(path):
        batch.append(python_record(path, no, raw))
        if len(batch) >= batch_rows:
            accepted, duplicates = _judged(store, on_quarantine, batch, accepted, duplicates)
    if batch:
        accepted, duplicates = _judged(store, on_quarantine, batch, accepted, duplicates)
    return accepted, duplicates


@contextmanager
def _fallback_on_read_errors():
    """A DuckDB error (other than running out of memory) means: read this file another way."""
    try:
        yield
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:
        raise Fallback(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def _judged(store, on_quarantine, batch: list, accepted: int, duplicates: int) -> tuple[int, int]:
    """Store the accepted records of a batch judged by :func:`python_record`, quarantine the rest."""
    rows = [r for r in batch if not isinstance(r, Quarantined)]
    on_quarantine([r for r in batch if isinstance(r, Quarantined)])
    batch.clear()
    if rows:
        i, d = store.append_events([fill_event_ids(store.con, rows_to_batch(rows))])
        accepted, duplicates = accepted + i, duplicates + d
    return accepted, duplicates


def _insert(store, sql: str) -> tuple[int, int]:
    """Insert the accepted records; ``(inserted, in-file repeats deleted again)``."""
    con = store.con
    last = con.execute("SELECT coalesce(max(rowid), -1) FROM events").fetchall()[0][0]
    con.execute("SET preserve_insertion_order = false")
    try:
        inserted = store.insert_new(f"(SELECT * FROM ({sql}) WHERE _ok)")
    finally:
        con.execute("RESET preserve_insertion_order")
    # this transaction's rows have ids above every older row, and no checkpoint renumbers rows meanwhile
    repeats = con.execute(
        f"SELECT count(*) - count(DISTINCT event_id) FROM events WHERE rowid > {last}").fetchall()[0][0]
    if repeats:
        con.execute(f"""DELETE FROM events WHERE rowid IN (
            SELECT rowid FROM events WHERE rowid > {last}
            QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY rowid) > 1)""")
    return inserted, repeats


class _Failing:
    """The records the SQL refused: record numbers, line numbers, and their raw bytes when kept."""

    def __init__(self, records: np.ndarray, numbers: np.ndarray, raws: list | None):
        self.records, self.numbers, self.raws = records, numbers, raws

    @classmethod
    def none(cls) -> "_Failing":
        empty = np.array([], dtype=np.int64)
        return cls(empty, empty, [])

    def lines(self, path: str):
        """``(line number, raw bytes)`` in file order; reads the file again when the bytes were not kept."""
        if self.raws is not None:
            yield from zip(self.numbers.tolist(), self.raws)
        else:
            for _, no, raw in RecordLines(path).select(self.records):
                yield no, raw


def _failing(con, sql: str, path: str, records: int) -> _Failing:
    """Find the refused records in the file; :class:`Fallback` when DuckDB's records and the lines disagree."""
    # insertion order is kept (the default), so row ids (from some base) number the records in file order
    con.execute(f"CREATE OR REPLACE TEMP TABLE _chk AS SELECT _ok FROM ({sql})")
    first, span, n = con.execute("SELECT min(rowid), max(rowid) - min(rowid) + 1, count(*) FROM _chk").fetchall()[0]
    if n != records or (n and span != n):
        raise Fallback(f"DuckDB read {records} records, then {n}")
    idx = con.execute(f"SELECT rowid - {first or 0} AS k FROM _chk WHERE NOT _ok ORDER BY k").fetchnumpy()["k"]
    idx = np.asarray(idx, dtype=np.int64)
    if not len(idx):  # every record passed: the rest were already stored
        return _Failing.none()
    numbers = np.zeros(len(idx), dtype=np.int64)
    raws: list | None = []
    kept = 0
    lines = RecordLines(path)
    for i, (_, no, raw) in enumerate(lines.select(idx)):
        numbers[i] = no
        if raws is not None:
            raws.append(raw)
            kept += len(raw)
            if kept > KEPT_BYTES:
                raws = None
    if lines.total != records:  # every wanted record (all below ``records``) was then found
        raise Fallback(f"DuckDB read {records} records, the file has {lines.total} non-blank lines")
    return _Failing(idx, numbers, raws)
