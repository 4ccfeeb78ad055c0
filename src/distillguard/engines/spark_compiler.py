"""The Ibis PySpark backend the Spark engine compiles the shared feature expressions with.

Where Ibis's DuckDB and PySpark compilers give one operation different
semantics, this backend follows DuckDB's (docs/spark.md, "Agreement with DuckDB").
"""
from __future__ import annotations

import uuid

from distillguard.engines.spark_session import HASH_UDF
from distillguard.schema import EVENT_SCHEMA

__all__ = ["ibis_backend", "events_table"]


def ibis_backend(spark):
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


def events_table(con, df, name: str | None = None):
    """An Ibis table (PySpark backend) over canonical events, ``ts`` typed as UTC like the DuckDB store."""
    import ibis.expr.datatypes as dt

    name = name or f"distillguard_events_{uuid.uuid4().hex[:8]}"
    df.createOrReplaceTempView(name)
    t = con.table(name)
    return t.mutate(ts=t.ts.cast(dt.Timestamp(timezone="UTC", scale=6))).select(*EVENT_SCHEMA.names)
