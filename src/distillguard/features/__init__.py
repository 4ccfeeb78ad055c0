"""Per-account features as Ibis expressions over the canonical ``events`` table.

The expressions are written against the canonical schema, not a connection, so
the same definitions run on DuckDB (default) and on Spark; the decision
service folds the same declaration one event at a time
(:mod:`distillguard.features.aggregators`).
"""
from distillguard.features.behaviour import BEHAVIOUR, FEATURE_COLUMNS, account_features, events_table, feature_table

__all__ = ["BEHAVIOUR", "FEATURE_COLUMNS", "account_features", "events_table", "feature_table"]
