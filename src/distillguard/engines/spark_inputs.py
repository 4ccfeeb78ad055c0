"""The scan's inputs on Spark: Parquet files and lakes read and validated by Spark, other formats
through the normal ingest, account metadata on the driver (docs/spark.md, "Inputs")."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from distillguard.engines.spark_compiler import events_table, ibis_backend
from distillguard.engines.spark_session import get_session
from distillguard.engines.spark_validation import canonical_events, decide_on_driver
from distillguard.errors import UsageError

__all__ = ["PARQUET_SUFFIXES", "read_events", "persisted", "scan_inputs"]

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_PARQUET_GLOB = "*.{parquet,pq,parq,PARQUET}"
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
    con = ibis_backend(spark)
    if persist:
        events = persisted(events)
    return (events_table(con, events), meta), total
