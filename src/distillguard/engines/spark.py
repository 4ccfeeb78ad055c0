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
from distillguard.engines.spark_validation import (
    DOUBLE_TEXT_SQL, DOUBLE_TEXT_UDF, MERGE_SQL, MERGE_UDF, canonical_events, decide_on_driver,
)
from distillguard.schema import EVENT_SCHEMA

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
    _register_duckdb_udf(spark, DOUBLE_TEXT_UDF, DOUBLE_TEXT_SQL, "string")
    return spark


HASH_SQL = "SELECT CAST(CAST(hash(a) AS BIT) AS BIGINT) AS r FROM _v"
"""DuckDB's ``hash`` as Ibis's DuckDB compiler orders by it (``x.hash()``: a signed 64-bit integer)."""


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


def read_events(spark, paths: Iterable[str], quarantine_path=None):
    """(accepted canonical DataFrame, IngestResult) of Parquet inputs, validated on Spark.

    Rows Spark cannot prove clean go through the reference normaliser on the
    driver (:func:`~distillguard.engines.spark_validation.decide_on_driver`):
    accepted ones join the events, the rest are appended to ``quarantine_path``
    (JSONL, one ``{source, line, reason, raw, detail}`` object each). Duplicate
    ``event_id`` values are counted and dropped (one row kept per id).
    """
    import orjson
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
    # One job: rows and rows for the reference per input, distinct ids of accepted rows over all inputs.
    aggs = []
    for i in range(len(paths)):
        mine = F.col("_input") == i
        aggs += [F.sum(F.when(mine, 1).otherwise(0)).alias(f"n{i}"),
                 F.sum(F.when(mine & ~F.col("_ok"), 1).otherwise(0)).alias(f"bad{i}")]
    aggs.append(F.count_distinct(F.when(F.col("_ok"), F.col("event_id"))).alias("distinct"))
    try:
        row = union.agg(*aggs).collect()[0]
    except Exception as exc:  # a corrupt file, an unreachable bucket...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{', '.join(paths)}: unreadable ({msg[:300]})") from None
    events = union.filter(F.col("_ok")).drop("_ok", "_input")
    rescued = []
    for i, path in enumerate(paths):
        n, quarantined = int(row[f"n{i}"] or 0), []
        if row[f"bad{i}"]:
            accepted, quarantined = decide_on_driver(raws[i], path)
            if accepted is not None:
                rescued.append(accepted)
            if quarantine_path is not None:
                with open(quarantine_path, "ab") as fh:
                    fh.write(b"".join(orjson.dumps(q.to_dict()) + b"\n" for q in quarantined))
        result.read += n
        result.quarantined += len(quarantined)
        result.files.append({"path": path, "format": "parquet", "read": n, "quarantined": len(quarantined)})
    result.accepted = int(row["distinct"] or 0)
    if rescued:
        events = events.unionByName(spark.createDataFrame(pa.Table.from_batches(rescued)).select(*events.columns))
        result.accepted = events.select(F.count_distinct("event_id")).collect()[0][0]
    result.duplicates = result.read - result.quarantined - result.accepted
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
