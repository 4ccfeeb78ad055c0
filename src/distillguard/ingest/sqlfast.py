"""Vectorised validation and normalisation in DuckDB (canonical JSONL, CSV, Parquet).

The fast path turns a chunk of input into canonical columns with one SQL
statement: JSON lines are parsed once with ``json_transform`` into a struct of
VARCHAR values (canonical names and aliases), aliases are merged with
``COALESCE`` (canonical spelling first), casts use ``TRY_CAST``, unknown keys
go to ``extra`` via ``json_merge_patch`` and missing ``event_id`` values are
derived from the content with :data:`EVENT_ID_SQL`.

A row is accepted here only when every check passes (``_ok``). Any other row
(broken JSON, case-variant keys, a type to coerce, a nested value to flatten,
a value out of range) is handed to the reference normaliser
(:func:`distillguard.ingest.normalize.normalize`), which either accepts it
under the same rules or quarantines it with the reason.
"""
from __future__ import annotations

import math

import duckdb
import pyarrow as pa

from distillguard.ingest.fields import (
    CANONICAL, EPOCH_UNITS, FALSE_WORDS, ID_ADDED, ID_COLUMNS, ID_NULL, ID_SEPARATOR, KIND, STATUS_SYNONYMS, TRUE_WORDS,
    TS_MAX, TS_MIN,
)
from distillguard.schema import EVENT_SCHEMA

__all__ = ["connect", "EVENT_ID_SQL", "fill_event_ids", "to_event_batch", "Col", "normalize_sql", "q", "lit"]


def connect() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB connection set to UTC."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def _id_part(col: str) -> str:
    if col == "ts":
        return "CAST(epoch_us(ts) AS VARCHAR)"
    return f"coalesce(CAST({q(col)} AS VARCHAR), chr({ord(ID_NULL)}))"


EVENT_ID_SQL = (f"md5(concat_ws(chr({ord(ID_SEPARATOR)}), {', '.join(_id_part(c) for c in ID_COLUMNS)}"
                + "".join(f", CAST({q(c)} AS VARCHAR)" for c in ID_ADDED) + "))")
"""Deterministic id of an event without one: MD5 of its canonical content
(every canonical column and ``extra``, :data:`~distillguard.ingest.fields.ID_COLUMNS`, then the
present :data:`~distillguard.ingest.fields.ID_ADDED` ones: ``concat_ws`` skips a NULL),
so the same record always gets the same id and a re-ingest adds nothing. The
one id expression of every engine: the Spark engine runs it through DuckDB."""

_FINAL_COLS = ", ".join(
    f"CASE WHEN event_id IS NULL THEN {EVENT_ID_SQL} ELSE event_id END AS event_id" if c == "event_id" else q(c)
    for c in EVENT_SCHEMA.names
)


def fill_event_ids(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Fill null ``event_id`` values of canonical rows with :data:`EVENT_ID_SQL`."""
    if batch.num_rows == 0 or batch.column("event_id").null_count == 0:
        return batch.cast(EVENT_SCHEMA) if batch.schema != EVENT_SCHEMA else batch
    con.register("_fill", pa.Table.from_batches([batch]))
    try:
        tbl = con.sql(f"SELECT {_FINAL_COLS} FROM _fill").to_arrow_table()
    finally:
        con.unregister("_fill")
    return to_event_batch(tbl)


def to_event_batch(tbl: pa.Table) -> pa.RecordBatch:
    """Canonical columns of a query result -> one Arrow batch in :data:`EVENT_SCHEMA` exactly."""
    tbl = tbl.combine_chunks()
    arrays = [tbl.column(f.name).cast(f.type) for f in EVENT_SCHEMA]
    if tbl.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=EVENT_SCHEMA)
    return pa.RecordBatch.from_arrays([a.chunk(0) if a.num_chunks else pa.array([], f.type)
                                       for a, f in zip(arrays, EVENT_SCHEMA)], schema=EVENT_SCHEMA)


class Col:
    """A source column feeding a canonical field.

    ``expr`` is a SQL expression; ``kind`` is how its values come:
    ``"json"`` (VARCHAR text of a JSON value: nested values arrive as JSON
    text), ``"text"`` (plain strings, as in CSV), or a DuckDB type name for
    typed columns (Parquet).
    """

    __slots__ = ("expr", "kind")

    def __init__(self, expr: str, kind: str):
        self.expr = expr
        self.kind = kind

    @property
    def textual(self) -> bool:
        return self.kind in ("json", "text") or self.kind.startswith("VARCHAR")

    @property
    def nested(self) -> bool:
        k = self.kind.upper()
        return k.endswith("]") or k.startswith(("STRUCT", "MAP", "UNION", "JSON")) and self.kind not in ("json",)


_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_NUM_TYPES = _INT_TYPES + ("FLOAT", "DOUBLE", "REAL") 


def _is_num(kind: str) -> bool:
    k = kind.upper()
    return k in _NUM_TYPES or k.startswith("DECIMAL")


def _e(power_of_ten: float) -> str:
    return f"1e{round(math.log10(power_of_ten))}"  # 1e17: a DOUBLE literal


def _epoch(x: str) -> str:
    whens = " ".join(f"WHEN abs({x}) >= {_e(cut)} THEN {x} / {_e(div)}" for cut, div in EPOCH_UNITS)
    return f"to_timestamp(CASE {whens} ELSE {x} END)"


def _bool_words(x: str) -> str:
    return " ".join(f"WHEN {lit(w)} THEN {b}" for words, b in ((TRUE_WORDS, "TRUE"), (FALSE_WORDS, "FALSE"))
                    for w in words)


def _ts_literal(t) -> str:
    return f"TIMESTAMPTZ '{t:%Y-%m-%d %H:%M:%S}+00'"


def _field_exprs(field: str, cols: list[Col], w: str, x: str) -> tuple[str, str, str]:
    """(winner, value, ok) expressions for one canonical field.

    ``winner`` picks the source value (the first present one); ``value`` is
    written in terms of the winner's column ``w``, ``ok`` in terms of ``w`` and
    the value's column ``x``, so each is computed once per row.
    """
    if not cols:
        return "NULL", "NULL", "TRUE"
    # A value counts as present when not NULL and not ''; the first present wins.
    def present(c: Col) -> str:
        return f"nullif(CAST({c.expr} AS VARCHAR), '')" if (c.textual or c.nested) else c.expr

    winner = "coalesce(" + ", ".join(present(c) for c in cols) + ")" if len(cols) > 1 else present(cols[0])
    kinds = {("text" if c.textual else "num" if _is_num(c.kind) else "nested" if c.nested else c.kind.upper()) for c in cols}
    if len(kinds) > 1:
        # Mixed kinds (rare, Parquet): compare as text and let Python coerce unusual values.
        winner = "coalesce(" + ", ".join(f"nullif(CAST({c.expr} AS VARCHAR), '')" for c in cols) + ")"
        kinds = {"text"}
    kind = kinds.pop()
    json_text = any(c.kind == "json" for c in cols)
    v = w
    if kind == "nested":
        return winner, "NULL", f"{v} IS NULL"
    if field == "ts":
        if kind == "text":
            # a failing TRY_CAST is slow in DuckDB: tell ISO text from epoch numbers by '-' / ':' first
            val = (f"CASE WHEN contains({v}, '-') OR contains({v}, ':') THEN TRY_CAST({v} AS TIMESTAMPTZ) "
                   f"ELSE TRY({_epoch(f'TRY_CAST({v} AS DOUBLE)')}) END")
        elif kind == "num":
            val = f"TRY({_epoch(f'CAST({v} AS DOUBLE)')})"
        elif kind.startswith("TIMESTAMP") or kind == "DATE":
            val = f"CAST({v} AS TIMESTAMPTZ)"
        else:
            return winner, "NULL", "FALSE"
        return winner, val, "TRUE"
    rule = KIND[field]
    if rule == "int":
        if kind == "text":
            return winner, f"TRY_CAST({v} AS BIGINT)", f"{v} IS NULL OR ({x} >= 0 AND CAST({x} AS VARCHAR) = {v})"
        if kind == "num":
            return winner, f"TRY_CAST({v} AS BIGINT)", f"{v} IS NULL OR ({x} >= 0 AND {x} = {v})"
        return winner, "NULL", f"{v} IS NULL"
    if rule == "float":
        if kind in ("text", "num"):
            return winner, f"TRY_CAST({v} AS DOUBLE)", f"{v} IS NULL OR isfinite({x})"
        return winner, "NULL", f"{v} IS NULL"
    if rule == "bool":
        if kind == "BOOLEAN":
            return winner, v, "TRUE"
        if kind == "text":
            val = (f"CASE {v} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE ELSE "
                   f"CASE lower(trim({v})) {_bool_words(v)} END END")
            return winner, val, f"{v} IS NULL OR {x} IS NOT NULL"
        return winner, "NULL", f"{v} IS NULL"
    # string fields
    if kind not in ("text",):
        if kind == "num" and rule == "reasoning_effort":  # a thinking budget: a non-negative integer's text
            ints = all(c.kind.upper() in _INT_TYPES for c in cols)
            return winner, f"CAST({v} AS VARCHAR)", f"{v} IS NULL OR {v} >= 0" if ints else f"{v} IS NULL"
        if kind == "num" and rule != "status":
            return winner, f"CAST({v} AS VARCHAR)", "TRUE"
        if kind == "BOOLEAN" or kind == "num":
            return winner, "NULL", f"{v} IS NULL"
        return winner, f"CAST({v} AS VARCHAR)", "TRUE"
    if rule == "status":
        cases = " ".join(f"WHEN {lit(k)} THEN {lit(s)}" for k, s in STATUS_SYNONYMS.items())
        val = f"CASE {v} WHEN 'ok' THEN 'ok' WHEN 'error' THEN 'error' ELSE CASE lower(trim({v})) {cases} ELSE lower(trim({v})) END END"
        ok = f"{v} IS NULL OR NOT (substr(trim({v}), 1, 1) BETWEEN '0' AND '9')"  # HTTP codes: Python
        return winner, val, ok
    if json_text:
        # nested JSON values arrive as text starting with { or [: let Python flatten or reject them
        ok = f"{v} IS NULL OR NOT (starts_with({v}, '{{') OR starts_with({v}, '['))"
        if rule == "reasoning_effort":
            ok = f"({ok}) AND ({v} IS NULL OR NOT (substr(trim({v}), 1, 1) BETWEEN '0' AND '9'))"
        return winner, v, ok
    return winner, v, "TRUE"


_DUCK = {f: {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "ts": "TIMESTAMPTZ"}.get(k, "VARCHAR")
         for f, k in KIND.items()}


def normalize_sql(source: str, cols: dict[str, list[Col]], extra_sql: str = "NULL", extra_ok: str = "TRUE",
                  pre: str = "", raw: str = "NULL") -> str:
    """SELECT text producing ``_row``, ``_ok`` and the canonical columns from ``source``.

    ``source`` must provide a ``_row`` column (row index in the chunk);
    ``pre`` adds select items (e.g. the parsed struct) to the innermost query;
    ``raw`` is carried as ``_raw`` for the rows that fail (``NULL`` for the others).
    Levels: each field's winning source value, then its typed value, then the checks.
    """
    winners, vals, oks = [], [], []
    for i, f in enumerate(CANONICAL):
        w, x = f"_w{i}", ("_ts" if f == "ts" else q(f))
        winner, val, ok = _field_exprs(f, cols.get(f, []), w, x)
        winners.append(f"{winner} AS {w}")
        vals.append(f"CAST({val} AS {_DUCK[f]}) AS {x}")
        if ok != "TRUE" and f != "ts":
            oks.append(f"coalesce({ok}, FALSE)")
    oks.append("coalesce(_extra_ok, FALSE)")
    base = f"SELECT {pre + ', ' if pre else ''}* FROM {source}"
    lvl0 = (f"SELECT _row, {raw} AS _rawin, {', '.join(winners)}, {extra_sql} AS _extra, "
            f"{extra_ok} AS _extra_ok FROM ({base})")
    typed = f"SELECT *, {', '.join(vals)} FROM ({lvl0})"
    lvl1 = f"SELECT *, {' AND '.join(oks)} AS _okraw FROM ({typed})"
    ts_ok = f"_ts IS NOT NULL AND _ts >= {_ts_literal(TS_MIN)} AND _ts < {_ts_literal(TS_MAX)}"
    final = []
    for f in EVENT_SCHEMA.names:
        if f == "ts":
            final.append("_ts AS ts")
        elif f == "account_id":
            final.append("coalesce(account_id, api_key_id) AS account_id")
        elif f == "extra":
            final.append("CAST(_extra AS VARCHAR) AS extra")
        else:
            final.append(q(f))
    lvl2 = (f"SELECT _row, _rawin, coalesce(_okraw AND {ts_ok} AND coalesce(account_id, api_key_id) IS NOT NULL, FALSE) AS _ok, "
            f"{', '.join(final)} FROM ({lvl1})")
    return f"SELECT _row, _ok, CASE WHEN NOT _ok THEN _rawin END AS _raw, {_FINAL_COLS} FROM ({lvl2})"
