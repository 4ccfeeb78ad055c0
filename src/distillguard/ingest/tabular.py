"""Canonical events in tables: CSV (plain or ``.gz``) and Parquet (a file or a folder, recursively).

Column names map case-insensitively onto canonical fields and their aliases
once per file; the rows are then validated and normalised in DuckDB with the
same SQL rules as JSONL (:mod:`distillguard.ingest.sqlfast`). Rows failing a
check go through the reference normaliser, which accepts or quarantines them.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from distillguard.errors import UsageError
from distillguard.ingest.base import Quarantined, ReadBatch, truncate_raw
from distillguard.ingest.lines import open_input
from distillguard.ingest.fields import FIELD_KEYS, KEY_TO_FIELD
from distillguard.ingest.normalize import Reject, normalize, rows_to_batch
from distillguard.ingest.sqlfast import Col, connect, fill_event_ids, lit, normalize_sql, q, to_event_batch

__all__ = ["CsvSource", "ParquetSource", "column_mapping", "parquet_files"]


def column_mapping(columns: list[tuple[str, str]]):
    """(cols per canonical field, extra SQL, extra_ok SQL) for named, typed columns."""
    cols: dict[str, list[Col]] = {}
    known, unknown = [], []
    seen_lower: set[str] = set()
    for name, kind in columns:
        low = name.lower()
        if low in KEY_TO_FIELD and low not in seen_lower:
            known.append((name, kind))
            seen_lower.add(low)
        elif low in KEY_TO_FIELD:
            unknown.append((name, kind))  # a second spelling of the same key: keep it, unmapped
        else:
            unknown.append((name, kind))
    for name, kind in sorted(known, key=lambda nk: FIELD_KEYS[KEY_TO_FIELD[nk[0].lower()]].index(nk[0].lower())):
        cols.setdefault(KEY_TO_FIELD[name.lower()], []).append(Col(q(name), kind))
    extra_ok = "TRUE"
    carried = [(n, k) for n, k in unknown if n.lower() == "extra"]
    unknown = [(n, k) for n, k in unknown if n.lower() != "extra"]
    if len(carried) > 1:
        return cols, "NULL", "FALSE"  # several 'extra' spellings: the Python normaliser merges them
    base = "'{}'"
    if carried:
        n, k = carried[0]
        e = f"CAST({q(n)} AS VARCHAR)"
        # an exported ``extra`` column (JSON object text); its keys come back, unknown columns win
        base = f"coalesce(nullif({e}, ''), '{{}}')"
        extra_ok = (f"nullif({e}, '') IS NULL OR (starts_with(ltrim({e}), '{{') AND TRY(json_valid({e})) "
                    f"AND NOT contains({e}, ':null'))")
    if unknown:
        obj = "json_object(" + ", ".join(f"{lit(n)}, {q(n)}" for n, _ in unknown) + ")"
        extra = f"nullif(CAST(TRY(json_merge_patch({base}, {obj})) AS VARCHAR), '{{}}')"
    elif carried:
        extra = f"nullif(CAST(TRY(json_merge_patch('{{}}', {base})) AS VARCHAR), '{{}}')"
    else:
        extra = "NULL"
    return cols, extra, extra_ok


def _python_rows(source: str, records: list[tuple[int, dict]]):
    rows, bad = [], []
    for no, rec in records:
        rec = {k: v for k, v in rec.items() if v is not None and v != ""}
        try:
            rows.append(normalize(rec))
        except Reject as rej:
            bad.append(Quarantined(source, no, rej.reason, truncate_raw(rec), rej.detail))
    return rows, bad


def _run(con, source: str, sql: str, fetch_bad, first_line: int = 0) -> Iterator[ReadBatch]:
    out = con.sql(sql).to_arrow_table()
    ok = out.column("_ok")
    if pc.all(ok).as_py() is not False:
        good = out
        bad_rows = []
    else:
        good = out.filter(ok)
        bad_rows = out.filter(pc.invert(ok)).column("_row").to_pylist()
    if good.num_rows:
        yield ReadBatch(events=to_event_batch(good.drop_columns(["_row", "_ok", "_raw"])))
    if bad_rows:
        rows, quarantined = _python_rows(source, fetch_bad(bad_rows))
        events = fill_event_ids(con, rows_to_batch(rows)) if rows else ReadBatch().events
        yield ReadBatch(events=events, quarantined=quarantined)


class CsvSource:
    """Canonical events as CSV with a header row (``.csv``, ``.tsv``, ``.gz``).

    Empty cells are missing values. ``line`` in quarantine records is the
    record number counting the header as line 1 (the file line when no value
    spans several lines).
    """

    name: ClassVar[str] = "csv"

    def __init__(self, block_size: int = 16 << 20, on_progress=None):
        self.block_size = block_size
        self.on_progress = on_progress

    def read(self, path: str) -> Iterator[ReadBatch]:
        source = str(path)
        delim = "\t" if source.lower().endswith((".tsv", ".tsv.gz")) else ","
        stream, raw = open_input(source)
        try:
            head = stream.read(1 << 16)
        finally:
            stream.close()
        text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")  # a byte order mark is not part of the header
        if not text.strip():
            return
        try:
            header = next(csv.reader(io.StringIO(text), delimiter=delim))
        except (csv.Error, StopIteration):
            raise UsageError(f"{source}: no CSV header") from None
        header = [h.strip() for h in header]
        if not any(h.lower() in KEY_TO_FIELD for h in header):
            raise UsageError(f"{source}: CSV header names no known event field ({', '.join(header[:8])})")
        names = [h if h else f"column{i}" for i, h in enumerate(header)]
        if len(set(names)) != len(names):
            names = [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
        odd: list = []

        def handler(row):
            odd.append((row.number, row.text))
            return "skip"

        stream, raw = open_input(source)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=self.block_size,
                                           use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True, invalid_row_handler=handler),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.binary() for n in names},
                                                 strings_can_be_null=True),
        )
        cols, extra, extra_ok = column_mapping([(n, "text") for n in names])
        sql = normalize_sql("_tab", cols, extra_sql=extra, extra_ok=extra_ok)
        con = connect()
        next_no = 2
        try:
            for batch in reader:
                n = batch.num_rows
                bad_odd = [(no, t) for no, t in odd]
                odd.clear()
                numbers = np.arange(next_no, next_no + n + len(bad_odd), dtype=np.int64)
                if bad_odd:
                    numbers = numbers[~np.isin(numbers, [no for no, _ in bad_odd if no is not None])][:n]
                next_no += n + len(bad_odd)
                quarantined = [Quarantined(source, int(no or 0), "bad_csv_row", truncate_raw(t),
                                           "wrong number of columns") for no, t in bad_odd]
                arrays, utf8_bad = [], np.zeros(n, dtype=bool)
                for col in batch.columns:
                    try:
                        arrays.append(col.cast(pa.string()))
                    except pa.ArrowInvalid:
                        vals = col.to_pylist()
                        fixed = []
                        for i, v in enumerate(vals):
                            try:
                                fixed.append(v.decode("utf-8") if v is not None else None)
                            except UnicodeDecodeError:
                                utf8_bad[i] = True
                                fixed.append(None)
                        arrays.append(pa.array(fixed, pa.string()))
                for i in np.flatnonzero(utf8_bad).tolist():
                    rawrow = ",".join((c[i].as_py() or b"").decode("utf-8", "backslashreplace") for c in batch.columns)
                    quarantined.append(Quarantined(source, int(numbers[i]), "invalid_utf8", truncate_raw(rawrow),
                                                   "a value is not valid UTF-8"))
                keep = ~utf8_bad
                tbl = pa.table([pa.array(np.arange(n, dtype=np.int64))] + arrays, names=["_row"] + names)
                if utf8_bad.any():
                    tbl = tbl.filter(pa.array(keep))
                if quarantined:
                    yield ReadBatch(quarantined=quarantined)
                if tbl.num_rows:
                    con.register("_tab", tbl)
                    try:
                        def fetch(rows, tbl=tbl, numbers=numbers):
                            sub = tbl.take(pa.array(np.searchsorted(tbl.column("_row").to_numpy(), rows)))
                            return [(int(numbers[r["_row"]]), {k: v for k, v in r.items() if k != "_row"})
                                    for r in sub.to_pylist()]
                        yield from _run(con, source, sql, fetch)
                    finally:
                        con.unregister("_tab")
                if self.on_progress:
                    self.on_progress(raw.tell())
            if odd:
                yield ReadBatch(quarantined=[Quarantined(source, int(no or 0), "bad_csv_row", truncate_raw(t),
                                                         "wrong number of columns") for no, t in odd])
        finally:
            stream.close()
            con.close()


def parquet_files(path: Path) -> list[Path]:
    """A Parquet file, or every ``*.parquet`` under a folder (recursively, sorted)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".pq", ".parq")
                       and not p.name.startswith((".", "_")))
        if not files:
            raise UsageError(f"{path}: folder holds no Parquet files")
        return files
    return [path]


class ParquetSource:
    """Canonical events in Parquet: a file, or a folder read recursively (e.g. a date-partitioned lake).

    ``line`` in quarantine records is the 1-based row number in the file.
    Partition folders (``date=2026-01-01/``) are not turned into columns.
    """

    name: ClassVar[str] = "parquet"

    def __init__(self, on_progress=None, batch_rows: int = 250_000):
        self.on_progress = on_progress
        self.batch_rows = batch_rows

    def _plan(self, con, f: Path):
        try:
            desc = con.sql(f"DESCRIBE SELECT * FROM read_parquet({lit(str(f))}, hive_partitioning=false)").fetchall()
        except Exception as exc:
            raise UsageError(f"{f}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        columns = [(d[0], d[1]) for d in desc]
        if not any(n.lower() in KEY_TO_FIELD for n, _ in columns):
            raise UsageError(f"{f}: Parquet columns name no known event field")
        cols, extra, extra_ok = column_mapping(columns)
        return columns, cols, extra, extra_ok

    def _src(self, f: Path, lo: int | None = None, hi: int | None = None) -> str:
        src = (f"(SELECT file_row_number + 1 AS _row, * EXCLUDE (file_row_number) FROM read_parquet({lit(str(f))}, "
               f"hive_partitioning=false, file_row_number=true)")
        if lo is not None:
            src += f" WHERE file_row_number >= {lo} AND file_row_number < {hi}"
        return src + ")"

    def _fetch(self, con, f: Path, columns):
        names = ", ".join(q(n) for n, _ in columns)

        def fetch(rows):
            rl = "[" + ",".join(str(int(r)) for r in rows) + "]"
            tbl = con.sql(f"SELECT _row, {names} FROM {self._src(f)} WHERE list_contains({rl}, _row) ORDER BY _row").to_arrow_table()
            return [(r.pop("_row"), r) for r in tbl.to_pylist()]
        return fetch

    def read(self, path: str) -> Iterator[ReadBatch]:
        con = connect()
        try:
            for f in parquet_files(Path(path)):
                columns, cols, extra, extra_ok = self._plan(con, f)
                nrows = con.sql(f"SELECT count(*) FROM read_parquet({lit(str(f))})").fetchall()[0][0]
                for lo in range(0, nrows, self.batch_rows):
                    sql = normalize_sql(self._src(f, lo, lo + self.batch_rows), cols, extra, extra_ok)
                    yield from _run(con, str(f), sql, self._fetch(con, f, columns))
        finally:
            con.close()

    def ingest_into(self, path: str, store, on_quarantine) -> tuple[int, int]:
        """Fast path: validate in SQL over ``read_parquet`` and insert the good rows with one anti-join per file."""
        con = store.con
        ins_total = dup_total = 0
        files = parquet_files(Path(path))
        for i, f in enumerate(files):
            columns, cols, extra, extra_ok = self._plan(con, f)
            sql = normalize_sql(self._src(f), cols, extra, extra_ok)
            bad = [r[0] for r in con.sql(f"SELECT _row FROM ({sql}) WHERE NOT _ok").fetchall()]
            n_ok, n_distinct = con.sql(
                f"SELECT count(*), count(DISTINCT event_id) FROM ({sql}) WHERE _ok").fetchall()[0]
            src = f"(SELECT * FROM ({sql}) WHERE _ok)" if n_ok == n_distinct else (
                f"(SELECT * FROM ({sql}) WHERE _ok QUALIFY row_number() OVER (PARTITION BY event_id) = 1)")
            ins = store.insert_new(src)
            ins_total += ins
            dup_total += n_ok - ins
            if bad:
                for start in range(0, len(bad), 10_000):
                    rows, quarantined = _python_rows(str(f), self._fetch(con, f, columns)(bad[start:start + 10_000]))
                    on_quarantine(quarantined)
                    if rows:
                        i2, d2 = store.append_events([fill_event_ids(con, rows_to_batch(rows))])
                        ins_total += i2
                        dup_total += d2
            if self.on_progress:
                self.on_progress(sum(x.stat().st_size for x in files[: i + 1]))
        return ins_total, dup_total
