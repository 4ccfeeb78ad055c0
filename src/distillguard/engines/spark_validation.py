"""Validation of raw Parquet rows on Spark, generated from the field rules of :mod:`distillguard.ingest.fields`.

As on the DuckDB fast path (:mod:`distillguard.ingest.sqlfast`), Spark accepts
a row only when it can prove it clean under the rules (``ok``); every other row
is brought to the driver and given to the reference normaliser, which accepts
it (flattening a message list, reading ``"1e3"`` tokens, an HTTP status code...)
or quarantines it with the reason. So quarantine reasons come from one place on
every engine. Bad rows are rare in real logs; they cost one extra job when present.

An event without an id gets the same content id as on DuckDB: the columns of
:data:`~distillguard.ingest.fields.ID_COLUMNS` as DuckDB writes them as text,
joined and hashed like :data:`~distillguard.ingest.sqlfast.EVENT_ID_SQL`. Spark
writes integers, booleans and strings as DuckDB does; floats are written by
DuckDB itself (:data:`DOUBLE_TEXT_SQL`, a vectorised UDF), and unknown columns go
to ``extra`` through DuckDB's ``json_merge_patch`` (:data:`MERGE_SQL`), so the
``extra`` text is the same too.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.ingest.base import Quarantined, truncate_raw
from distillguard.ingest.fields import (
    EPOCH_UNITS, FALSE_WORDS, FIELD_KEYS, ID_ADDED, ID_COLUMNS, ID_NULL, ID_SEPARATOR, ISO_TS_PATTERN, KEY_TO_FIELD, KIND,
    NUMBER_PATTERN, STATUS_SYNONYMS, TRUE_WORDS, TS_MAX, TS_MIN,
)
from distillguard.ingest.normalize import Reject, normalize, rows_to_batch
from distillguard.ingest.sqlfast import connect, fill_event_ids
from distillguard.schema import EVENT_SCHEMA

__all__ = ["DOUBLE_TEXT_UDF", "DOUBLE_TEXT_SQL", "MERGE_UDF", "MERGE_SQL", "plan", "canonical_events", "decide_on_driver"]

MERGE_UDF = "distillguard_extra_merge"
MERGE_SQL = "SELECT nullif(CAST(TRY(json_merge_patch(a, b)) AS VARCHAR), '{}') AS r FROM _v"
"""An ``extra`` object patched with the unknown columns, as the DuckDB ingest merges them."""
DOUBLE_TEXT_UDF = "distillguard_double_text"
DOUBLE_TEXT_SQL = "SELECT CAST(TRY_CAST(a AS DOUBLE) AS VARCHAR) AS r FROM _v"
"""A float as DuckDB writes it (``0.7``, ``1e+20``): Spark's text of a double round-trips to the same double."""
_SPARK_TYPE = {"ts": "timestamp", "int": "long", "float": "double", "bool": "boolean"}


def _kind(dtype) -> str:
    from pyspark.sql import types as T

    if isinstance(dtype, T.StringType):
        return "text"
    if isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "int"
    if isinstance(dtype, (T.FloatType, T.DoubleType, T.DecimalType)):
        return "num"
    if isinstance(dtype, T.BooleanType):
        return "bool"
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        return "time"
    return "other"  # nested values and the rest: the reference normaliser decides


def _epoch(x):
    from pyspark.sql import functions as F

    e = None
    for cut, divisor in EPOCH_UNITS:
        e = (F.when if e is None else e.when)(F.abs(x) >= cut, x / divisor)
    seconds = e.otherwise(x)
    return F.timestamp_micros(F.round(seconds * 1e6).cast("long"))


def _ts_in_range(v):
    from pyspark.sql import functions as F

    lo, hi = (F.lit(t.strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp") for t in (TS_MIN, TS_MAX))
    return (v >= lo) & (v < hi)


def _convert(field: str, col, kind: str):
    """(value, ok) Spark expressions for one present source column feeding ``field``.

    ``ok`` is true when the reference normaliser would accept the value as it
    is and give the same canonical value; anything else (``ok`` false) is left
    to the reference.
    """
    from pyspark.sql import functions as F

    no = (None, F.lit(False))
    rule = KIND[field]
    if rule == "ts":
        if kind == "time":
            v = col.cast("timestamp")
        elif kind == "text":
            iso = F.trim(col).rlike(f"^{ISO_TS_PATTERN}$")
            v = F.when(iso, F.trim(col).try_cast("timestamp"))
        elif kind in ("int", "num"):
            v = _epoch(col.cast("double"))
        else:
            return no
        return v, v.isNotNull() & _ts_in_range(v)
    if rule == "int":
        if kind == "int":
            return col.cast("long"), col >= 0
        if kind == "num":  # integral floats (an integer column with nulls written by pandas)
            d = col.cast("double")
            v = F.when((d == F.floor(d)) & (F.abs(d) < 9.2e18), d.cast("long"))
            return v, v >= 0
        if kind == "text":
            v = col.try_cast("long")
            return v, (v >= 0) & (v.cast("string") == col)
        return no
    if rule == "float":
        if kind in ("int", "num"):
            v = col.cast("double")
        elif kind == "text":
            v = F.when(col.rlike(f"^\\s*{NUMBER_PATTERN}\\s*$"), F.trim(col).try_cast("double"))
        else:
            return no
        return v, v.isNotNull() & ~F.isnan(v) & (F.abs(v) != float("inf"))
    if rule == "bool":
        if kind == "bool":
            return col, F.lit(True)
        if kind == "int":
            return col == 1, col.isin(0, 1)
        if kind == "text":
            s = F.lower(F.trim(col))
            v = F.when(s.isin(*TRUE_WORDS), F.lit(True)).when(s.isin(*FALSE_WORDS), F.lit(False))
            return v, v.isNotNull()
        return no
    if rule == "status":
        if kind != "text":
            return no  # HTTP codes and the rest: the reference
        s = F.lower(F.trim(col))
        synonyms = F.create_map(*[F.lit(x) for kv in STATUS_SYNONYMS.items() for x in kv])
        return F.coalesce(synonyms[s], s), ~F.trim(col).rlike("^[0-9]")
    if kind == "text":
        return col, F.lit(True)
    if kind == "int":  # a number's text (a thinking budget, an id): Spark writes integers as Python does
        return col.cast("string"), col >= 0 if rule == "reasoning_effort" else F.lit(True)
    return no


def _present(col, kind: str):
    from pyspark.sql import functions as F

    return col.isNotNull() & (col != F.lit("")) if kind == "text" else col.isNotNull()


def _id_text(field: str, e):
    from pyspark.sql import functions as F

    if field == "ts":
        return F.unix_micros(e).cast("string")
    text = F.call_udf(DOUBLE_TEXT_UDF, e.cast("string")) if KIND.get(field) == "float" else e.cast("string")
    return F.coalesce(text, F.lit(ID_NULL))


def _sources(schema):
    """(canonical field -> source column names in priority order, unknown names, the ``extra`` column or None)."""
    by_field: dict[str, list[tuple[int, str]]] = {}
    unknown: list[str] = []
    extra_col = None
    for name in schema.names:
        low = name.lower()
        target = KEY_TO_FIELD.get(low)
        if target is None:
            if low == "extra" and extra_col is None:
                extra_col = name
            else:
                unknown.append(name)
            continue
        by_field.setdefault(target, []).append((FIELD_KEYS[target].index(low) * 2 + (0 if name == low else 1), name))
    if not by_field:
        raise UsageError("Parquet columns name no known event field")
    return {f: [n for _, n in sorted(v)] for f, v in by_field.items()}, unknown, extra_col


def plan(schema):
    """(canonical column expressions, ok expression, source columns) over a raw schema.

    The expressions name raw columns only, so they can be evaluated in any
    ``select`` over the raw DataFrame (the accepted rows, the rows for the reference).
    """
    from pyspark.sql import functions as F

    kinds = {f.name: _kind(f.dataType) for f in schema.fields}
    by_field, unknown, extra_col = _sources(schema)

    def col(n):
        return F.col("`" + n.replace("`", "``") + "`")

    exprs, ok = {}, F.lit(True)
    for field in EVENT_SCHEMA.names:
        if field == "extra":
            continue
        values = []
        for n in by_field.get(field, []):
            v, good = _convert(field, col(n), kinds[n])
            ok = ok & (~_present(col(n), kinds[n]) | F.coalesce(good, F.lit(False)))
            values.append(v if v is not None else F.lit(None))
        value = (F.coalesce(*values) if len(values) > 1 else values[0]) if values else F.lit(None)
        exprs[field] = value.cast(_SPARK_TYPE.get(KIND.get(field), "string"))
    exprs["account_id"] = F.coalesce(exprs["account_id"], exprs["api_key_id"])
    ok = ok & exprs["ts"].isNotNull() & exprs["account_id"].isNotNull()
    exprs["extra"], extra_ok = _extra(col, unknown, extra_col)
    ok = F.coalesce(ok & extra_ok, F.lit(False))
    content = F.md5(F.concat_ws(ID_SEPARATOR, *[_id_text(c, exprs[c]) for c in ID_COLUMNS],
                                *[exprs[c].cast("string") for c in ID_ADDED]))  # NULL skipped, as in EVENT_ID_SQL
    exprs["event_id"] = F.coalesce(exprs["event_id"], content)
    return {f: exprs[f] for f in EVENT_SCHEMA.names}, ok, [col(n) for n in schema.names]


def _extra(col, unknown: list[str], extra_col: str | None):
    """(``extra`` expression, ok): unknown columns patched onto an exported ``extra`` object, by DuckDB."""
    from pyspark.sql import functions as F

    if not unknown and extra_col is None:
        return F.lit(None).cast("string"), F.lit(True)
    empty = F.lit("{}")
    base, ok = empty, F.lit(True)
    if extra_col is not None:
        carried = col(extra_col).cast("string")
        given = carried.isNotNull() & (carried != "")
        base = F.when(given, carried).otherwise(empty)
        ok = ~given | (F.ltrim(carried).startswith("{") & ~carried.contains(":null"))
    if unknown:
        merged = F.call_udf(MERGE_UDF, base, F.to_json(F.struct(*[col(n) for n in unknown])))
    else:  # as the DuckDB ingest writes a carried object alone
        merged = F.call_udf(MERGE_UDF, empty, base)
    return merged, ok & (merged.isNotNull() | (base == empty))


def canonical_events(raw):
    """The canonical columns of a raw Parquet DataFrame, plus ``_ok``.

    ``_ok`` is false for the rows the reference normaliser must decide on.
    Unknown columns go to ``extra`` as a JSON object (null members left out),
    merged into an ``extra`` column the input already has (unknown columns win,
    as in the DuckDB ingest).
    """
    exprs, ok, _ = plan(raw.schema)
    return raw.select(*[e.alias(f) for f, e in exprs.items()], ok.alias("_ok"))


def _source_name(file_uri: str, given: str) -> str:
    """A file Spark read, named as the user named its input (a folder given relatively stays relative)."""
    src = unquote(file_uri or "")
    for prefix in ("file://", "file:"):
        if src.startswith(prefix):
            src = src[len(prefix):]
            break
    absolute = str(Path(given).resolve())
    return given + src[len(absolute):] if src.startswith(absolute) else src


def decide_on_driver(raw, given: str) -> tuple[pa.RecordBatch, list[Quarantined]]:
    """(accepted canonical events, quarantined) for the rows of ``raw`` Spark could not prove clean.

    Each such row comes to the driver as JSON text (its ``raw`` in the
    quarantine) and goes through the reference normaliser; ``line`` is its
    1-based row in its Parquet file.
    """
    from pyspark.sql import functions as F

    _, ok, sources = plan(raw.schema)
    bad = raw.filter(~ok).select(
        F.col("_metadata.file_path").alias("_file"),
        (F.col("_metadata.row_index") + 1).alias("_line"),
        F.to_json(F.struct(*sources), {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}).alias("_raw"),
    )
    rows, quarantined = [], []
    for row in bad.toLocalIterator():
        text = row["_raw"] or "{}"
        try:
            rows.append(normalize(json.loads(text)))  # json, not orjson: Spark writes NaN as a bare NaN
        except Reject as rej:
            quarantined.append(Quarantined(_source_name(row["_file"], given), int(row["_line"]), rej.reason,
                                           truncate_raw(text), rej.detail))
    con = connect()
    try:
        events = fill_event_ids(con, rows_to_batch(rows)) if rows else None
    finally:
        con.close()
    return events, quarantined
