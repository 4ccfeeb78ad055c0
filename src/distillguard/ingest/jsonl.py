"""Canonical JSONL events (plain or ``.gz``): vectorised in DuckDB, Python for the odd row."""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import ClassVar, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.ingest.base import Quarantined, ReadBatch, truncate_raw
from distillguard.ingest.lines import iter_lines, prefetch
from distillguard.ingest.fields import FIELD_KEYS, KEY_TO_FIELD
from distillguard.ingest.normalize import Reject, normalize, rows_to_batch
from distillguard.ingest.sqlfast import Col, connect, fill_event_ids, lit, normalize_sql, q, _to_schema

__all__ = ["JsonlSource", "python_record"]


@lru_cache(maxsize=64)
def chunk_sql(keys: tuple[str, ...], source: str = "_lines", parsed: bool = False) -> str | None:
    """The normalisation SQL for lines that use exactly these top-level keys.

    Keys map case-insensitively onto canonical fields (exact canonical spelling
    first); ``None`` when two keys differ only in case (DuckDB struct names are
    case-insensitive), in which case the lines go through Python. ``source``
    has the text of each line as ``line``; or, when ``parsed``, the line
    already parsed into a struct ``_t`` of VARCHAR values (DuckDB's
    ``read_json`` with these columns), and ``None`` is returned when the keys
    need the line itself (unknown keys are cut out of it into ``extra``).
    """
    lowered = [k.lower() for k in keys]
    if len(set(lowered)) != len(lowered):
        return None
    known = [k for k in keys if k.lower() in KEY_TO_FIELD]
    unknown = [k for k in keys if k.lower() not in KEY_TO_FIELD]
    carried = [k for k in unknown if k.lower() == "extra"]
    raw = "NULL" if parsed else "line"
    cols: dict[str, list[Col]] = {}
    for k in sorted(known, key=lambda k: (FIELD_KEYS[KEY_TO_FIELD[k.lower()]].index(k.lower()), k != k.lower())):
        cols.setdefault(KEY_TO_FIELD[k.lower()], []).append(Col(f"_t.{q(k)}", "json"))
    if carried and len(unknown) == 1:
        # only an exported ``extra`` (JSON object text or object): keep it, normalised, on the fast path
        e = f"_t.{q(carried[0])}"
        pre = _parse(known + carried, parsed)
        extra = (f"CASE WHEN {e} IS NULL THEN NULL ELSE "
                 f"nullif(CAST(TRY(json_merge_patch('{{}}', json({e}))) AS VARCHAR), '{{}}') END")
        extra_ok = (f"_t IS NOT NULL AND ({e} IS NULL OR (starts_with(ltrim({e}), '{{') "
                    f"AND TRY(json_valid({e})) AND NOT contains({e}, ':null')))")
        return normalize_sql(source, cols, extra_sql=extra, extra_ok=extra_ok, pre=pre, raw=raw)
    pre = _parse(known, parsed)
    if not unknown:
        extra, extra_ok = "NULL", "_t IS NOT NULL"
    elif parsed:
        return None
    else:
        klist = "[" + ", ".join(lit(k) for k in known) + "]"
        patch = json.dumps({k: None for k in known})
        pre += ", TRY(json_keys(line)) AS _k"
        extra = f"CASE WHEN list_has_all({klist}, _k) THEN NULL ELSE TRY(json_merge_patch(line, {lit(patch)})) END"
        extra_ok = "_t IS NOT NULL AND _k IS NOT NULL"
        if any(k.lower() == "extra" for k in unknown):
            extra_ok += " AND NOT list_contains(list_transform(_k, lambda x: lower(x)), 'extra')"
    return normalize_sql(source, cols, extra_sql=extra, extra_ok=extra_ok, pre=pre, raw=raw)


def _parse(keys: list[str], parsed: bool) -> str:
    """The select item parsing ``line`` into the struct ``_t`` (nothing when the source did it)."""
    if parsed:
        return ""
    struct = json.dumps({k: "VARCHAR" for k in keys} or {"__none__": "VARCHAR"})
    return f"TRY(json_transform(line, {lit(struct)})) AS _t"


def python_record(source: str, line_no: int, raw: bytes | str | None):
    """Normalise one JSON line in Python: a canonical dict or a :class:`Quarantined`."""
    try:
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Reject("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
        if int(line_no) == 1 and isinstance(raw, str) and raw.startswith("\ufeff"):
            raw = raw[1:]  # a UTF-8 byte order mark some editors and exporters put before the first record
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Reject("invalid_json", str(exc).splitlines()[0][:200]) from None
        return normalize(obj)
    except Reject as rej:
        return Quarantined(source, int(line_no), rej.reason, truncate_raw(raw), rej.detail)


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
        from distillguard.ingest.jsonl_stream import Fallback, ingest_jsonl

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
                    yield ReadBatch(events=_to_schema(good.drop_columns(["_row", "_ok", "_raw"])))
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
