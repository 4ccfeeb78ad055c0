"""Per-account features as Ibis expressions over the canonical ``events`` table.

The expressions are written against the canonical schema, not a connection, so
the same definitions run on DuckDB (default) and on Spark.
"""
from distillguard.features.behaviour import FEATURE_COLUMNS, account_features, events_table

__all__ = ["FEATURE_COLUMNS", "account_features", "events_table"]
