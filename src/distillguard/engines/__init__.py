"""Execution engines for the event-level stages of a scan.

The default engine is the embedded DuckDB store (:mod:`distillguard.store`);
:mod:`distillguard.engines.spark` runs the same Ibis feature definitions on
Apache Spark (optional extra ``distillguard[spark]``). Both hand an Ibis table
with the canonical event schema to :func:`distillguard.scan.run_scan`.
"""

ENGINES = ("duckdb", "spark")

__all__ = ["ENGINES"]
