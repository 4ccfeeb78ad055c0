"""Canonical JSONL events (plain or ``.gz``): vectorised in DuckDB, Python for the odd row."""
from __future__ import annotations

import os
from typing import ClassVar, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.ingest.base import Quarantined, ReadBatch, truncate_raw
from distillguard.ingest.jsonl_rules import chunk_sql, python_record
from distillguard.ingest.jsonl_stream import Fallback, ingest_jsonl
from distillguard.ingest.lines import iter_lines, prefetch
from distillguard.ingest.normalize import rows_to_batch
from distillguard.ingest.sqlfast import connect, fill_event_ids, to_event_batch

__all__ = ["JsonlSource"]


def _as_text(lines: pa.Array, numbers: np.ndarray):
    """(utf-8 string array, its line numbers, [(line, bytes)] of lines that are not UTF-8)."""
    try:
        return lines.cast(pa.string()), numbers, []
    except pa.ArrowInvalid:
        pass
    good, bad = [], []
    for i, b in enumerate(lines.to_pylist()):
        try:
            b.decode("utf-8")
            good.append(True)
        except UnicodeDecodeError:
            good.append(False)
            bad.append((int(numbers[i]), b))
    mask = np.asarray(good)
    return lines.filter(pa.array(mask)).cast(pa.string()), numbers[mask], bad


class JsonlSource:
    """Canonical events, one JSON object per line (``.jsonl``, ``.ndjson``, ``.gz``).

    Examples
    --------
    >>> from distillguard.ingest.jsonl import JsonlSource
    >>> JsonlSource.name
    'jsonl'
    """

    name: ClassVar[str] = "jsonl"

    def __init__(self, block_size: int = 32 << 20, on_progress=None):
        self.block_size = block_size
        self.on_progress = on_progress

    def read(self, path: str) -> Iterator[ReadBatch]:
        con = connect()
        try:
            for chunk in iter_lines(str(path), block_size=self.block_size):
                yield from self._chunk(con, str(path), chunk)
                if self.on_progress:
                    self.on_progress(chunk.position)
        finally:
            con.close()

    def ingest_into(self, path: str, store, on_quarantine) -> tuple[int, int]:
        """Fast path of :meth:`read` straight into ``store`` (same rules, no Arrow round trip).

        A whole file per DuckDB statement (:mod:`~distillguard.ingest.jsonl_stream`);
        files DuckDB cannot read that way go block by block. Returns
        ``(inserted, duplicates)``.
        """
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        try:
            return ingest_jsonl(str(path), store, on_quarantine, on_progress=self.on_progress, size=size)
        except Fallback:
            return self._ingest_by_block(path, store, on_quarantine)

    def _ingest_by_block(self, path: str, store, on_quarantine, group_rows: int = 250_000) -> tuple[int, int]:
        """Lines split by Arrow, gathered in the store's connection into groups of ~``group_rows``.

        Each group (several DuckDB row groups, so queries run in parallel) is
        normalised into a temporary table and inserted with one anti-join;
        rows that fail the SQL checks go through :func:`python_record`.
        """
        con = store.con
        source = str(path)
        con.execute("SET preserve_insertion_order = false")
        state = {"pending": 0, "ins": 0, "dup": 0, "lines": False}

        def process():
            if not state["lines"]:
                return
            try:
                keys = con.sql("SELECT DISTINCT unnest(TRY(json_keys(line))) FROM _lines").fetchall()
                sql = chunk_sql(tuple(sorted(k[0] for k in keys)))
                if sql is None:  # case-colliding keys: no key maps, every line goes through Python
                    sql = chunk_sql(())
                con.execute(f"CREATE OR REPLACE TEMP TABLE _norm AS {sql}")
            finally:
                con.execute("DROP TABLE IF EXISTS _lines")
                state["lines"] = False
                state["pending"] = 0
            try:
                bad = con.sql("SELECT _row, _raw FROM _norm WHERE NOT _ok ORDER BY _row").fetchall()
                n_ok, n_distinct = con.sql(
                    "SELECT count(*), count(DISTINCT event_id) FROM _norm WHERE _ok").fetchall()[0]
                src = "(SELECT * FROM _norm WHERE _ok)" if n_ok == n_distinct else (
                    "(SELECT * FROM _norm WHERE _ok QUALIFY row_number() OVER (PARTITION BY event_id) = 1)")
                ins = store.insert_new(src)
            finally:
                con.execute("DROP TABLE IF EXISTS _norm")
            state["ins"] += ins
            state["dup"] += n_ok - ins
            if bad:
                rows, quarantined = [], []
                for no, raw in bad:
                    res = python_record(source, no, raw)
                    (quarantined if isinstance(res, Quarantined) else rows).append(res)
                on_quarantine(quarantined)
                if rows:
                    i, d = store.append_events([fill_event_ids(con, rows_to_batch(rows))])
                    state["ins"] += i
                    state["dup"] += d

        try:
            for chunk in prefetch(iter_lines(source, block_size=self.block_size)):
                quarantined = [Quarantined(source, no, "invalid_json", truncate_raw(t), "control character 0x01 in line")
                               for no, t in chunk.odd]
                text, numbers, bad_utf8 = _as_text(chunk.lines, chunk.numbers)
                for no, b in bad_utf8:
                    quarantined.append(python_record(source, no, b))
                on_quarantine(quarantined)
                if len(text):
                    con.register("_lines_arrow", pa.table({"_row": pa.array(numbers), "line": text}))
                    try:
                        # a native copy: DuckDB scans its own strings faster than Arrow's, twice below
                        if state["lines"]:
                            con.execute("INSERT INTO _lines SELECT * FROM _lines_arrow")
                        else:
                            con.execute("CREATE OR REPLACE TEMP TABLE _lines AS SELECT * FROM _lines_arrow")
                            state["lines"] = True
                    finally:
                        con.unregister("_lines_arrow")
                    state["pending"] += len(text)
                    if state["pending"] >= group_rows:
                        process()
                if self.on_progress:
                    self.on_progress(chunk.position)
            process()
        finally:
            con.execute("DROP TABLE IF EXISTS _lines")
            con.execute("DROP TABLE IF EXISTS _norm")
            con.execute("RESET preserve_insertion_order")
        return state["ins"], state["dup"]

    def _chunk(self, con, source: str, chunk) -> Iterator[ReadBatch]:
        quarantined = [Quarantined(source, no, "invalid_json", truncate_raw(text), "control character 0x01 in line")
                       for no, text in chunk.odd]
        lines, numbers = chunk.lines, chunk.numbers
        fallback: list[tuple[int, object]] = []
        if len(lines):
            try:
                text = lines.cast(pa.string())
            except pa.ArrowInvalid:
                raw = lines.to_pylist()
                good = []
                for i, b in enumerate(raw):
                    try:
                        b.decode("utf-8")
                        good.append(True)
                    except UnicodeDecodeError:
                        good.append(False)
                        fallback.append((int(numbers[i]), b))
                mask = pa.array(good)
                lines = lines.filter(mask)
                numbers = numbers[np.asarray(good)]
                text = lines.cast(pa.string())
        if len(lines):
            n = len(text)
            tbl = pa.table({"_row": pa.array(np.arange(n, dtype=np.int64)), "line": text})
            step = max(4096, -(-n // 8))
            con.register("_lines", pa.Table.from_batches(tbl.to_batches(max_chunksize=step)))
            try:
                keys = con.sql("SELECT DISTINCT unnest(TRY(json_keys(line))) FROM _lines").fetchall()
                sql = chunk_sql(tuple(sorted(k[0] for k in keys)))
                out = con.sql(sql).to_arrow_table() if sql else None
            finally:
                con.unregister("_lines")
            if out is None:
                fallback.extend((int(numbers[r]), text[r].as_py()) for r in range(n))
            else:
                ok = out.column("_ok")
                if pc.all(ok).as_py():
                    good = out
                else:
                    good = out.filter(ok)
                    bad_rows = out.filter(pc.invert(ok)).column("_row").to_numpy()
                    for r in bad_rows.tolist():
                        fallback.append((int(numbers[r]), text[r].as_py()))
                if good.num_rows:
                    yield ReadBatch(events=to_event_batch(good.drop_columns(["_row", "_ok", "_raw"])))
        if fallback:
            fallback.sort(key=lambda x: x[0])
            rows = []
            for no, raw in fallback:
                res = python_record(source, no, raw)
                if isinstance(res, Quarantined):
                    quarantined.append(res)
                else:
                    rows.append(res)
            events = fill_event_ids(con, rows_to_batch(rows)) if rows else None
            yield ReadBatch(events=events if events is not None else ReadBatch().events, quarantined=quarantined)
        elif quarantined:
            yield ReadBatch(quarantined=quarantined)
