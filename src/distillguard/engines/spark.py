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

Modules: :mod:`~distillguard.engines.spark_session` (the session and its DuckDB
UDFs), :mod:`~distillguard.engines.spark_compiler` (the Ibis backend),
:mod:`~distillguard.engines.spark_validation` (the field rules as Spark
expressions), :mod:`~distillguard.engines.spark_inputs` (reading, counting,
quarantine). This module is their public face.

Requires the optional extra ``distillguard[spark]`` (PySpark 4.0.x) and Java 17.
"""
from __future__ import annotations

from distillguard.engines.spark_compiler import events_table
from distillguard.engines.spark_inputs import persisted, read_events, scan_inputs
from distillguard.engines.spark_session import HASH_UDF, get_session
from distillguard.engines.spark_validation import canonical_events

__all__ = [
    "HASH_UDF",
    "canonical_events",
    "events_table",
    "get_session",
    "persisted",
    "read_events",
    "scan_inputs",
]
