"""Behaviour features per account: volume, tokens, parameters, timing, sessions.

Declared once, in :data:`BEHAVIOUR`: each column is one mergeable aggregator
(:mod:`distillguard.features.aggregators`, :mod:`~distillguard.features.timing`) over a per-event value, or a
formula over aggregates. The scan runs :func:`account_features` (Ibis, on
DuckDB or Spark); the decision service folds the same declaration one event
at a time (:class:`distillguard.serve.state.AccountState`). Everything is a
ratio or a count so that detectors can compare accounts of different sizes.
Adding a feature is one line here; a name starting with ``_`` is an
intermediate aggregate, not an output column.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from distillguard.features.aggregators import Count, Distinct, Max, Mean, Min, Share, Sum
from distillguard.features.featureset import Derived, FeatureSet
from distillguard.features.timing import Gaps, HourHistogram, ModelAdoption, PeakHour
from distillguard.features.expr import DAY, TS, col, greatest
from distillguard.schema import EVENT_SCHEMA

__all__ = ["BEHAVIOUR", "account_features", "feature_table", "events_table", "FEATURE_COLUMNS"]

HIGH_EFFORT = ("high", "xhigh", "max", "maximum")
RELEASE_GRACE_HOURS = 24
"""A model first seen this long after the data starts counts as newly released."""

_N = col("n_events").to_float()

BEHAVIOUR = FeatureSet(
    Count("n_events"),
    Min("first_ts", TS),
    Max("last_ts", TS),
    Max("org_id", col("org_id")),
    Distinct("active_days", DAY),
    Sum("input_tokens", col("input_tokens").fill_null(0)),
    Sum("output_tokens", col("output_tokens").fill_null(0)),
    Sum("reasoning_tokens", col("reasoning_tokens").fill_null(0)),
    Mean("output_tokens_mean", col("output_tokens").fill_null(0)),
    Mean("max_output_tokens_mean", col("max_output_tokens")),
    Derived("output_ratio", col("output_tokens").to_float() / greatest(col("input_tokens"), 1)),
    Share("fanout_share", col("n").fill_null(1) > 1),
    Mean("n_mean", col("n").fill_null(1)),
    Share("logprobs_share", col("logprobs").fill_null(False) | (col("top_logprobs").fill_null(0) > 0)),
    Share("temperature_zero_share", col("temperature").fill_null(1.0).eq(0)),
    Distinct("temperature_distinct", col("temperature")),
    Share("high_effort_share", col("reasoning_effort").lower().isin(HIGH_EFFORT)),
    Share("batch_share", col("is_batch").fill_null(False)),
    Share("error_share", col("status").isin(("error", "refused"))),
    Distinct("_conversations", col("conversation_id")),
    Sum("_unthreaded", col("conversation_id").isnull()),
    Derived("conversation_share", (col("_conversations") + col("_unthreaded")).to_float() / _N),
    Distinct("ip_distinct", col("client_ip")),
    Distinct("user_agent_distinct", col("user_agent")),
    Distinct("model_distinct", col("model")),
    Mean("prompt_chars_mean", col("prompt").length()),
    Distinct("_prompt_distinct", col("prompt"), hashed=True),
    Derived("prompt_distinct_share", col("_prompt_distinct").to_float() / _N),
    Gaps(mean="_gap_mean", std="_gap_std", median="gap_median"),
    Derived("gap_cv", col("_gap_std") / greatest(col("_gap_mean"), 1e-9)),
    HourHistogram(entropy="hour_entropy", hours="active_hours"),
    PeakHour("_peak_hour_events"),
    Derived("peak_hour_share", col("_peak_hour_events").to_float() / _N),
    ModelAdoption("_pivot_events", grace_hours=RELEASE_GRACE_HOURS),
    Derived("pivot_share", col("_pivot_events").fill_null(0).to_float() / _N),
)
"""The behaviour features, in output order (see the module docstring)."""


def events_table(name: str = "events") -> ir.Table:
    """An unbound table with the canonical schema (for compiling and tests)."""
    return ibis.table(ibis.schema(EVENT_SCHEMA), name=name)


def account_features(events: ir.Table) -> ir.Table:
    """One row per account with behaviour features (see :data:`FEATURE_COLUMNS`)."""
    return BEHAVIOUR.expression(events)


def feature_table(events: ir.Table, meta: pa.Table | None = None) -> pa.Table:
    """Every account's feature row, in ``account_id`` order: what the scan and ``distillguard features`` compute.

    Accounts known from metadata (``meta``) but without events get a row with
    ``n_events`` 0 and nulls: every account in the input appears, and a silent
    account that shares a campaign's card is still linked to it. Engines
    return group-by rows in any order, and fitted signals subsample by
    position: the canonical order makes the result the same on every run and engine.
    """
    features = account_features(events).to_pyarrow()
    if meta is not None:
        silent = sorted(set(meta.column("account_id").to_pylist()) - set(features.column("account_id").to_pylist()))
        if silent:
            extra = pa.table({"account_id": pa.array(silent, pa.string()), "n_events": pa.array([0] * len(silent), pa.int64())})
            features = pa.concat_tables([features, extra], promote_options="default")
    return features.sort_by("account_id")


FEATURE_COLUMNS = BEHAVIOUR.columns
