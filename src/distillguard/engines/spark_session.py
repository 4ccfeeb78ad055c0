"""The SparkSession distillguard runs on, and the DuckDB functions it registers as Spark UDFs.

Local sessions get small defaults; a session started by ``spark-submit``
keeps its master. Every session runs in UTC with Arrow transfers and
registers vectorised UDFs that call DuckDB's own functions on the executors
(the prompt sample's ``hash``, the ``extra`` merge and the text of floats of
:mod:`distillguard.engines.spark_validation`), so both engines compute the same values.
"""
from __future__ import annotations

import os
import shutil
import sys
import warnings

from distillguard.engines.spark_validation import DOUBLE_TEXT_SQL, DOUBLE_TEXT_UDF, MERGE_SQL, MERGE_UDF
from distillguard.errors import UsageError

__all__ = ["HASH_UDF", "HASH_SQL", "get_session", "require_pyspark"]

HASH_UDF = "distillguard_duckdb_hash"
"""Spark SQL name of the UDF that computes DuckDB's ``hash`` (as Ibis compiles it for DuckDB)."""

_LOCAL_DEFAULTS = {
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
}


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
