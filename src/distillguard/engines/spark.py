"""The scan's event-level stages on Apache Spark, through Ibis's PySpark backend.

``distillguard scan EVENTS... --engine spark [--spark-master URL]`` reads the
events with Spark, validates them there, and hands an Ibis table on the PySpark
backend to the same :func:`distillguard.scan.run_scan` the DuckDB engine uses:
per-account features, the prompt sample, infrastructure memberships, activity
buckets and campaign timelines are the same Ibis expressions, compiled to Spark
SQL. Only their small per-account results come back to the driver, where
signals, linkage and scoring run as with DuckDB.

What runs where (see ``docs/spark.md``):

- Parquet inputs (files, or lakes such as ``events/date=YYYY-MM-DD/*.parquet``,
  read recursively) are read by Spark. Column names and aliases map onto the
  canonical schema as in the DuckDB ingest; values are cast with ``try_cast``
  and rows that fail a check are quarantined on Spark (cheap: one pass).
- Any other format (JSONL, CSV, OTLP, LiteLLM, OpenAI logs) is first ingested
  with the normal ingest into a temporary DuckDB store, exported as a
  temporary canonical Parquet file, and read by Spark from there.
- ``prompt_sample`` orders each account's distinct prompts by DuckDB's
  ``hash()``; Spark's ``hash`` is a different function, so on Spark the Ibis
  ``Hash`` operation is compiled to a vectorised (Arrow) UDF that calls
  DuckDB's own ``hash`` on each batch: both engines choose the same prompts.

Requires the optional extra ``distillguard[spark]`` (PySpark 4.0.x) and Java 17.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
import warnings
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.ingest.base import RAW_LIMIT, Quarantined
from distillguard.ingest.normalize import _STATUS_SYNONYMS, _FALSE, _TRUE, FIELD_KEYS, KEY_TO_FIELD
from distillguard.schema import BOOL_FIELDS, EVENT_SCHEMA, FLOAT_FIELDS, INT_FIELDS

__all__ = [
    "HASH_UDF",
    "canonical_events",
    "events_table",
    "get_session",
    "read_events",
    "scan_inputs",
]

HASH_UDF = "distillguard_duckdb_hash"
"""Spark SQL name of the UDF that computes DuckDB's ``hash`` (as Ibis compiles it for DuckDB)."""

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_PARQUET_GLOB = "*.{parquet,pq,parq,PARQUET}"
_LOCAL_DEFAULTS = {
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
}


# -- session -----------------------------------------------------------------

def require_pyspark() -> None:
    """UsageError (one line, exit 2) unless PySpark 4.0.x and Java are available."""
    try:
        import pyspark
    except ImportError:
        raise UsageError(
            "--engine spark needs PySpark: pip install 'distillguard[spark]' (and Java 17)"
        ) from None
    major_minor = tuple(int(x) for x in pyspark.__version__.split(".")[:2])
    if not ((4, 0) <= major_minor < (4, 1)):
        raise UsageError(f"--engine spark needs PySpark 4.0.x (Ibis 12 supports < 4.1), found {pyspark.__version__}")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise UsageError("--engine spark needs Java 17 (e.g. apt-get install -y openjdk-17-jre-headless)")


def _under_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_session(master: str | None = None, app_name: str = "distillguard", conf: dict | None = None):
    """A SparkSession set up for distillguard (UTC session time zone, Arrow transfers).

    ``master`` is a Spark master URL (``local[2]``, ``spark://host:7077``,
    ``yarn``...). Without one, a session started by ``spark-submit`` keeps the
    master it was given and a plain ``python``/``distillguard`` run uses
    ``local[*]``. An already running session is reused (its static settings,
    such as the master, stay as they are).
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    if master is None and not _under_spark_submit():
        master = "local[*]"
    local = master is not None and master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Local Python workers run this interpreter (the one distillguard is installed in).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    settings = dict(_LOCAL_DEFAULTS) if local else {}
    settings.update(
        {
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.caseSensitive": "true",
            "spark.ui.showConsoleProgress": "false",
        }
    )
    settings.update(conf or {})
    for k, v in settings.items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # JVM failed to start, master unreachable...
        raise UsageError(f"cannot start Spark ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    spark.sparkContext.setLogLevel(os.environ.get("DISTILLGUARD_SPARK_LOG_LEVEL", "ERROR"))
    for k in ("spark.sql.session.timeZone", "spark.sql.caseSensitive"):
        spark.conf.set(k, settings[k])
    _register_duckdb_udf(spark, HASH_UDF, HASH_SQL, "long")
    _register_duckdb_udf(spark, MERGE_UDF, MERGE_SQL, "string")
    return spark


HASH_SQL = "SELECT CAST(CAST(hash(a) AS BIT) AS BIGINT) AS r FROM _v"
"""DuckDB's ``hash`` as Ibis's DuckDB compiler orders by it (``x.hash()``: a signed 64-bit integer)."""
MERGE_UDF = "distillguard_extra_merge"
MERGE_SQL = "SELECT nullif(CAST(TRY(json_merge_patch(a, b)) AS VARCHAR), '{}') AS r FROM _v"
"""An exported ``extra`` object patched with the unknown columns, as the DuckDB ingest merges them."""


def _register_duckdb_udf(spark, name: str, sql: str, returns: str) -> None:
    """Register a vectorised (Arrow batches) Spark UDF that runs ``sql`` in DuckDB over its string arguments.

    ``sql`` reads ``_v`` (columns ``a``, ``b``, ... for the arguments) and
    returns one column ``r``. Defined here as a closure so that it is shipped
    to the executors by value: they need duckdb, pyarrow and pandas, not
    distillguard. Using DuckDB's own functions keeps both engines identical.
    """
    from pyspark.sql.functions import pandas_udf
    from pyspark.util import PythonEvalType

    def run(*series):
        import duckdb
        import pandas as pd
        import pyarrow as pa

        con = duckdb.connect(":memory:")
        try:
            con.register("_v", pa.table({chr(97 + i): pa.array(s, from_pandas=True, type=pa.string())
                                         for i, s in enumerate(series)}))
            r = con.sql(sql).to_arrow_table().column("r").to_pandas()
        finally:
            con.close()
        return pd.Series(r.to_numpy(), index=series[0].index)

    with warnings.catch_warnings():  # the explicit UDF type (no type hints: they would need pandas here) warns
        warnings.simplefilter("ignore", UserWarning)
        udf = pandas_udf(run, returns, PythonEvalType.SQL_SCALAR_PANDAS_UDF)
    spark.udf.register(name, udf)


def _ibis_backend(spark):
    """An Ibis PySpark backend that compiles three operations the way Ibis's DuckDB compiler does.

    The feature expressions are shared; where Ibis's two compilers give the same
    operation different semantics, this connection's compiler follows DuckDB's so
    that both engines compute the same numbers:

    - float literals: Spark SQL reads ``1.0`` as a DECIMAL, so
      ``avg(IF(cond, 1.0, 0.0))`` (every ``*_share`` feature) was rounded to
      5 decimals; they are emitted as ``CAST(1.0 AS DOUBLE)``;
    - ``epoch_seconds()``: DuckDB's ``epoch(ts)`` keeps the microseconds,
      Spark's ``unix_timestamp`` drops them (request gaps, ``gap_cv``); here it
      is ``unix_micros(ts) / 1e6``;
    - ``hash()``: DuckDB's hash, through :data:`HASH_UDF` (the prompt sample's order).
    """
    import ibis
    import ibis.expr.datatypes as dt
    import sqlglot.expressions as sge
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    class _Compiler(PySparkCompiler):
        def visit_NonNullLiteral(self, op, *, value, dtype):
            result = super().visit_NonNullLiteral(op, value=value, dtype=dtype)
            if dtype.is_floating():
                return self.cast(result, dtype)
            return result

        def visit_ExtractEpochSeconds(self, op, *, arg):
            micros = self.f.unix_micros(self.cast(arg, dt.timestamp))
            return sge.Div(this=self.cast(micros, dt.float64), expression=self.cast(sge.convert(1_000_000), dt.float64))

    # Set after class creation: Ibis regenerates visit_* of SIMPLE_OPS in __init_subclass__.
    def visit_Hash(self, op, *, arg):  # noqa: N802 - Ibis naming
        return self.f[HASH_UDF](arg)

    _Compiler.visit_Hash = visit_Hash
    con = ibis.pyspark.connect(spark)
    con.compiler = _Compiler()
    return con


# -- reading and validating ---------------------------------------------------

def _is_parquet_input(path: Path, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt.lower() == "parquet"
    if path.is_dir():
        return any(p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES for p in path.rglob("*"))
    return path.suffix.lower() in PARQUET_SUFFIXES


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(/+)")


def _spark_path(p) -> str:
    """A path or URI as Spark should read it.

    ``pathlib.Path`` (the CLI's argument type) folds ``s3a://bucket/key`` into
    ``s3a:/bucket/key``: the ``//`` of a URI with an authority is restored
    (``file:`` URIs are left as they are).
    """
    s = str(p)
    m = _SCHEME.match(s)
    if m and m.group(1).lower() != "file" and len(m.group(2)) == 1:
        s = f"{m.group(1)}://{s[m.end():]}"
    return s


def _is_remote(name: str) -> bool:
    m = _SCHEME.match(name)
    return bool(m) and m.group(1).lower() != "file" and len(m.group(1)) > 1


def _read_parquet(spark, path: str):
    try:
        return (
            spark.read.option("recursiveFileLookup", "true")
            .option("pathGlobFilter", _PARQUET_GLOB)
            .option("mergeSchema", "true")
            .parquet(path)
        )
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not a readable Parquet input ({msg[:200]})") from None


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
    if isinstance(dtype, (T.ArrayType, T.StructType, T.MapType)):
        return "nested"
    return "other"


def _epoch_seconds(x):
    from pyspark.sql import functions as F

    a = F.abs(x)
    return (
        F.when(a >= 1e17, x / 1e9).when(a >= 1e14, x / 1e6).when(a >= 1e11, x / 1e3).otherwise(x)
    )


def _convert(field: str, col, kind: str):
    """(value, bad) Spark expressions for one source column feeding ``field``.

    ``bad`` is true when the column holds a value that is not acceptable for the
    field (the row is quarantined with ``wrong_type``/``negative_value``/``bad_ts``).
    """
    from pyspark.sql import functions as F

    lit_null = F.lit(None)
    present = col.isNotNull() & (F.trim(col.cast("string")) != "") if kind == "text" else col.isNotNull()
    if kind == "nested":
        return lit_null, present
    if field == "ts":
        if kind == "time":
            v = col.cast("timestamp")
        elif kind in ("int", "num"):
            v = F.timestamp_micros(F.round(_epoch_seconds(col.cast("double")) * 1e6).cast("long"))
        elif kind == "text":
            num = F.trim(col).try_cast("double")
            v = F.when(num.isNotNull(), F.timestamp_micros(F.round(_epoch_seconds(num) * 1e6).cast("long"))).otherwise(
                F.trim(col).try_cast("timestamp")
            )
        else:
            return lit_null, present
        return v, present & v.isNull()
    if field in INT_FIELDS:
        if kind == "int":
            v = col.cast("long")
        elif kind == "num":
            d = col.cast("double")
            v = F.when((d == F.floor(d)) & (F.abs(d) < 9.2e18), d.cast("long"))
        elif kind == "text":
            v = F.trim(col).try_cast("long")
        else:
            return lit_null, present
        return v, present & v.isNull()
    if field in FLOAT_FIELDS:
        if kind in ("int", "num"):
            v = col.cast("double")
        elif kind == "text":
            v = F.trim(col).try_cast("double")
        else:
            return lit_null, present
        v = F.when(~F.isnan(v) & (F.abs(v) != float("inf")), v)
        return v, present & v.isNull()
    if field in BOOL_FIELDS:
        if kind == "bool":
            v = col
        elif kind == "int":
            v = F.when(col == 1, F.lit(True)).when(col == 0, F.lit(False))
        elif kind == "text":
            s = F.lower(F.trim(col))
            v = F.when(s.isin(*sorted(_TRUE)), F.lit(True)).when(s.isin(*sorted(_FALSE)), F.lit(False))
        else:
            return lit_null, present
        return v, present & v.isNull()
    # string fields
    if field == "status":
        if kind != "text":
            return lit_null, present
        s = F.lower(F.trim(col))
        m = F.create_map(*[F.lit(x) for kv in _STATUS_SYNONYMS.items() for x in kv])
        v = F.when(present, F.coalesce(m[s], s))
        return v, F.lit(False)
    if kind == "text":
        return F.when(col != "", col), F.lit(False)
    if kind in ("int", "num", "time"):
        return col.cast("string"), F.lit(False)
    return lit_null, present  # booleans and others in a text field


def _plan(schema):
    """(canonical column expressions, reason expression, source column names) over a raw schema.

    The expressions name raw columns only, so they can be evaluated in any
    ``select`` over the raw DataFrame (the canonical rows, the quarantined ones).
    """
    from pyspark.sql import functions as F

    fields = {f.name: f for f in schema.fields}
    by_field: dict[str, list[tuple[int, str]]] = {}
    unknown: list[str] = []
    extra_col = None
    for name in fields:
        low = name.lower()
        target = KEY_TO_FIELD.get(low)
        if target is None:
            if low == "extra":
                extra_col = name
            else:
                unknown.append(name)
            continue
        rank = FIELD_KEYS[target].index(low) * 2 + (0 if name == low else 1)
        by_field.setdefault(target, []).append((rank, name))
    if not by_field:
        raise UsageError("Parquet columns name no known event field")

    def col(n):
        return F.col("`" + n.replace("`", "``") + "`")

    cols, bads = {}, {}
    for field in EVENT_SCHEMA.names:
        if field == "extra":
            continue
        sources = [n for _, n in sorted(by_field.get(field, []))]
        if not sources:
            cols[field], bads[field] = F.lit(None), F.lit(False)
            continue
        conv = [_convert(field, col(n), _kind(fields[n].dataType)) for n in sources]
        cols[field] = F.coalesce(*[v for v, _ in conv]) if len(conv) > 1 else conv[0][0]
        bad = F.lit(False)
        for _, b in conv:
            bad = bad | b
        bads[field] = bad
    subject = F.coalesce(cols["account_id"], cols["api_key_id"])
    ts = cols["ts"]
    in_range = (ts >= F.lit("1970-01-01 00:00:00").cast("timestamp")) & (
        ts < F.lit("2200-01-01 00:00:00").cast("timestamp"))
    ts_present = F.lit(False)
    for _, n in by_field.get("ts", []):
        c = col(n)
        text = _kind(fields[n].dataType) == "text"
        ts_present = ts_present | ((c.isNotNull() & (F.trim(c) != "")) if text else c.isNotNull())
    type_bad, neg = F.lit(False), F.lit(False)
    for f in EVENT_SCHEMA.names:
        if f in ("ts", "extra"):
            continue
        type_bad = type_bad | bads[f]
        if f in INT_FIELDS:
            neg = neg | F.coalesce(cols[f] < 0, F.lit(False))
    reason = (
        F.when(~ts_present, F.lit("missing_ts"))
        .when(ts.isNull() | ~in_range, F.lit("bad_ts"))
        .when(type_bad, F.lit("wrong_type"))
        .when(neg, F.lit("negative_value"))
        .when(subject.isNull(), F.lit("missing_subject"))
    )
    extra = F.lit(None).cast("string")
    if unknown:
        extra = F.to_json(F.struct(*[col(n) for n in unknown]))
        extra = F.when(extra != "{}", extra)
    if extra_col is not None:  # an exported extra object: its keys come back, unknown columns win
        carried = col(extra_col).cast("string")
        merged = F.call_udf(MERGE_UDF, carried, F.coalesce(extra, F.lit("{}")))
        extra = F.when(carried.isNull() | (F.trim(carried) == ""), extra).otherwise(F.coalesce(merged, extra))
    types = {"ts": "timestamp", **{f: "long" for f in INT_FIELDS}, **{f: "double" for f in FLOAT_FIELDS},
             **{f: "boolean" for f in BOOL_FIELDS}}
    exprs = {}
    for f in EVENT_SCHEMA.names:
        e = extra if f == "extra" else subject if f == "account_id" else cols[f]
        exprs[f] = e.cast(types.get(f, "string"))
    # Events without an id get one derived from their content (the idea of the DuckDB ingest's
    # EVENT_ID_SQL; the text of floats may differ, so generated ids are engine-specific).
    content = [F.unix_micros(exprs["ts"]).cast("string")] + [
        F.coalesce(exprs[c].cast("string"), F.lit("\x00")) for c in EVENT_SCHEMA.names if c not in ("event_id", "ts")
    ]
    exprs["event_id"] = F.coalesce(exprs["event_id"], F.md5(F.concat_ws("\x1f", *content)))
    return exprs, reason, [col(n) for n in fields]


def canonical_events(raw):
    """The canonical columns of a raw Parquet DataFrame, plus ``_reason``.

    ``_reason`` is null for an accepted row, else the quarantine reason:
    ``missing_ts``, ``bad_ts``, ``wrong_type``, ``negative_value`` or
    ``missing_subject``. Unknown columns go to ``extra`` as a JSON object
    (null members left out), merged into an ``extra`` column the input
    already has (unknown columns win, as in the DuckDB ingest).
    """
    exprs, reason, _ = _plan(raw.schema)
    return raw.select(*[e.alias(f) for f, e in exprs.items()], reason.alias("_reason"))


_DETAIL = {
    "missing_ts": "no timestamp",
    "bad_ts": "unparseable or out-of-range timestamp",
    "missing_subject": "no account_id and no api_key_id",
    "wrong_type": "a value does not fit its canonical type (the Spark reader does not flatten nested values)",
    "negative_value": "a count is negative",
}


def _write_quarantine(raw, quarantine_path, given: str) -> None:
    from urllib.parse import unquote

    import orjson
    from pyspark.sql import functions as F

    _, reason, sources = _plan(raw.schema)
    bad = raw.select(
        F.col("_metadata.file_path").alias("_file"),
        (F.col("_metadata.row_index") + 1).alias("_line"),
        reason.alias("_reason"),
        F.to_json(F.struct(*sources), {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}).alias("_raw"),
    ).filter(F.col("_reason").isNotNull())
    absolute = str(Path(given).resolve())
    qp = Path(quarantine_path)
    qp.parent.mkdir(parents=True, exist_ok=True)
    with open(qp, "ab") as fh:
        for row in bad.toLocalIterator():
            src = unquote(row["_file"] or "")
            for prefix in ("file://", "file:"):
                if src.startswith(prefix):
                    src = src[len(prefix):]
                    break
            if src.startswith(absolute):  # name the file as the user named its input
                src = given + src[len(absolute):]
            text = row["_raw"] or ""
            if len(text) > RAW_LIMIT:
                text = text[:RAW_LIMIT] + "\u2026"
            fh.write(orjson.dumps(Quarantined(src, int(row["_line"]), row["_reason"], text,
                                              _DETAIL.get(row["_reason"], "")).to_dict()) + b"\n")


def read_events(spark, paths: Iterable[str], quarantine_path=None):
    """(accepted canonical DataFrame, IngestResult) of Parquet inputs, validated on Spark.

    Quarantined rows are appended to ``quarantine_path`` (JSONL, one
    ``{source, line, reason, raw, detail}`` object each). Duplicate
    ``event_id`` values are counted and dropped (one row kept per id).
    """
    from pyspark.sql import functions as F

    from distillguard.ingest import IngestResult

    result = IngestResult()
    paths = [str(p) for p in paths]
    raws, frames = [], []
    for i, path in enumerate(paths):
        raw = _read_parquet(spark, path)
        try:
            canon = canonical_events(raw)
        except UsageError as exc:
            raise UsageError(f"{path}: {exc}") from None
        raws.append(raw)
        frames.append(canon.withColumn("_input", F.lit(i)))
    union = frames[0]
    for f in frames[1:]:
        union = union.unionByName(f)
    # One job: rows and quarantined rows per input, distinct ids of accepted rows over all inputs.
    aggs = []
    for i in range(len(paths)):
        mine = F.col("_input") == i
        aggs += [F.sum(F.when(mine, 1).otherwise(0)).alias(f"n{i}"),
                 F.sum(F.when(mine & F.col("_reason").isNotNull(), 1).otherwise(0)).alias(f"bad{i}")]
    aggs.append(F.count_distinct(F.when(F.col("_reason").isNull(), F.col("event_id"))).alias("distinct"))
    try:
        row = union.agg(*aggs).collect()[0]
    except Exception as exc:  # a corrupt file, an unreachable bucket...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{', '.join(paths)}: unreadable ({msg[:300]})") from None
    for i, path in enumerate(paths):
        n, bad = int(row[f"n{i}"] or 0), int(row[f"bad{i}"] or 0)
        result.read += n
        result.quarantined += bad
        if bad and quarantine_path is not None:
            _write_quarantine(raws[i], quarantine_path, path)
        result.files.append({"path": path, "format": "parquet", "read": n, "quarantined": bad})
    events = union.filter(F.col("_reason").isNull()).drop("_reason", "_input")
    ok = result.read - result.quarantined
    result.accepted = int(row["distinct"] or 0)
    result.duplicates = ok - result.accepted
    if result.duplicates:
        events = events.dropDuplicates(["event_id"])
    return events, result


def persisted(events):
    """``events`` cached (memory, spilling to disk): the scan queries it 6-8 times.

    Without it every query re-reads the Parquet files and re-evaluates the
    validation; the columnar cache is filled by the first query.
    """
    from pyspark import StorageLevel

    return events.persist(StorageLevel.MEMORY_AND_DISK)


def _ingest_other(paths: list[str], tmp: Path, quarantine_path, fmt, progress: bool):
    """Non-Parquet inputs: the normal ingest into a temporary store, exported as canonical Parquet."""
    from distillguard.ingest import ingest_files
    from distillguard.store import EventStore

    target = tmp / "ingested-events.parquet"
    with EventStore(tmp / "spark-ingest.duckdb") as store:
        counts = ingest_files(paths, store, quarantine_path=quarantine_path, fmt=fmt, progress=progress)
        store.con.execute(f"COPY events TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    return target, counts


def events_table(con, df, name: str | None = None):
    """An Ibis table (PySpark backend) over canonical events, ``ts`` typed as UTC like the DuckDB store."""
    import ibis.expr.datatypes as dt

    name = name or f"distillguard_events_{uuid.uuid4().hex[:8]}"
    df.createOrReplaceTempView(name)
    t = con.table(name)
    return t.mutate(ts=t.ts.cast(dt.Timestamp(timezone="UTC", scale=6))).select(*EVENT_SCHEMA.names)


def _metadata(accounts) -> pa.Table:
    """Account metadata exactly as the DuckDB path gets it (through an in-memory store)."""
    from distillguard.ingest.accounts import read_accounts
    from distillguard.store import EventStore

    with EventStore(":memory:") as store:
        if accounts is not None:
            table, bad = read_accounts(accounts)
            store.append_accounts(table)
        else:
            bad = []
        return store.con.sql("SELECT * FROM accounts").to_arrow_table(), bad


def scan_inputs(paths, quarantine_path, accounts=None, fmt: str | None = None, master: str | None = None,
                tmp: str | Path | None = None, progress: bool = False, spark=None, persist: bool = True):
    """``((events, meta), IngestResult)`` for :func:`distillguard.scan.run_scan` on Spark.

    ``events`` is an Ibis table on the PySpark backend with the canonical
    schema; ``meta`` the account metadata (PyArrow). Parquet inputs are read
    and validated by Spark; other inputs go through the normal ingest first
    (into a temporary canonical Parquet under ``tmp``, which must outlive the scan).
    With ``persist`` the validated events are cached (:func:`persisted`).
    """
    import orjson

    from distillguard.ingest import IngestResult

    if accounts is not None and not Path(accounts).exists():
        raise UsageError(f"{accounts}: no such file or directory")
    if fmt is not None and fmt.lower() not in ("parquet",):
        from distillguard.ingest import FORMATS

        if fmt.lower() not in FORMATS:
            raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    spark = spark or get_session(master)
    local = spark.sparkContext.master.startswith("local")
    names = [_spark_path(p) for p in paths]
    parquet, others = [], []
    for name in names:
        if _is_remote(name) or (not local and not Path(name).exists()):
            # Read by the cluster (s3a://, hdfs://, abfss://..., or a path on its default file system).
            if fmt is not None and fmt.lower() != "parquet":
                raise UsageError(f"{name}: only Parquet can be read from the cluster's storage (--format {fmt})")
            parquet.append(name)
        elif not Path(name).exists():
            raise UsageError(f"{name}: no such file or directory")
        elif _is_parquet_input(Path(name), fmt):
            parquet.append(name)
        else:
            others.append(name)
    if others and not local:
        raise UsageError(f"{others[0]}: on a cluster the Spark engine reads Parquet only; convert other formats "
                         "first (docs/spark.md)")
    if quarantine_path is not None:  # always written, as by the DuckDB ingest (empty when nothing failed)
        Path(quarantine_path).parent.mkdir(parents=True, exist_ok=True)
        open(quarantine_path, "ab").close()
    meta, bad_accounts = _metadata(accounts)
    total = IngestResult()
    if others:
        if tmp is None:
            raise UsageError("non-Parquet inputs need a temporary folder on the Spark engine")
        target, counts = _ingest_other(others, Path(tmp), quarantine_path, fmt, progress)
        total.read += counts.read
        total.quarantined += counts.quarantined
        total.files.extend(counts.files)
        parquet.append(str(target))
    events, counts = read_events(spark, parquet, quarantine_path)
    # The temporary Parquet of ingested inputs holds their accepted, distinct events, which the
    # ingest already counted as read: count those rows once.
    total.read += counts.read - (counts.files[-1]["read"] if others else 0)
    total.quarantined += counts.quarantined
    total.accepted = counts.accepted
    total.duplicates = total.read - total.accepted - total.quarantined
    total.files.extend(counts.files[:-1] if others else counts.files)
    total.accounts = meta.num_rows
    total.accounts_quarantined = len(bad_accounts)
    if bad_accounts and quarantine_path is not None:
        with open(quarantine_path, "ab") as fh:
            fh.write(b"".join(orjson.dumps(q.to_dict()) + b"\n" for q in bad_accounts))
    con = _ibis_backend(spark)
    if persist:
        events = persisted(events)
    return (events_table(con, events), meta), total
