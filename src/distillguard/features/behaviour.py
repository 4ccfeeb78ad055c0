"""Behaviour features per account: volume, tokens, parameters, timing, sessions.

One Ibis expression, one row per ``account_id``. Everything is a ratio or a
count so that detectors can compare accounts of different sizes.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir

from distillguard.schema import EVENT_SCHEMA

__all__ = ["account_features", "events_table", "FEATURE_COLUMNS"]

HIGH_EFFORT = ("high", "xhigh", "max", "maximum")
RELEASE_GRACE_HOURS = 24
"""A model first seen this long after the data starts counts as newly released."""


def events_table(name: str = "events") -> ir.Table:
    """An unbound table with the canonical schema (for compiling and tests)."""
    return ibis.table(ibis.schema(EVENT_SCHEMA), name=name)


def _share(cond: ir.BooleanValue) -> ir.FloatingScalar:
    return cond.ifelse(1.0, 0.0).mean()


def _volume_and_parameters(t: ir.Table) -> ir.Table:
    inp = t.input_tokens.fill_null(0)
    out = t.output_tokens.fill_null(0)
    return t.group_by("account_id").aggregate(
        n_events=t.count(),
        first_ts=t.ts.min(),
        last_ts=t.ts.max(),
        active_days=t.ts.date().nunique(),
        input_tokens=inp.sum(),
        output_tokens=out.sum(),
        reasoning_tokens=t.reasoning_tokens.fill_null(0).sum(),
        output_tokens_mean=out.mean(),
        max_output_tokens_mean=t.max_output_tokens.mean(),
        fanout_share=_share(t.n.fill_null(1) > 1),
        n_mean=t.n.fill_null(1).mean(),
        logprobs_share=_share(t.logprobs.fill_null(False) | (t.top_logprobs.fill_null(0) > 0)),
        temperature_zero_share=_share(t.temperature.fill_null(1.0) == 0),
        temperature_distinct=t.temperature.nunique(),
        high_effort_share=_share(t.reasoning_effort.lower().isin(HIGH_EFFORT)),
        batch_share=_share(t.is_batch.fill_null(False)),
        error_share=_share(t.status.isin(("error", "refused"))),
        conversations=t.conversation_id.nunique(),
        unthreaded=t.conversation_id.isnull().sum(),
        ip_distinct=t.client_ip.nunique(),
        user_agent_distinct=t.user_agent.nunique(),
        model_distinct=t.model.nunique(),
        org_id=t.org_id.max(),
        prompt_chars_mean=t.prompt.length().mean(),
        prompt_distinct=t.prompt.nunique(),
    )


def _timing(t: ir.Table) -> ir.Table:
    secs = t.ts.epoch_seconds()
    w = ibis.window(group_by=t.account_id, order_by=t.ts)
    gaps = t.mutate(gap=(secs - secs.lag().over(w)).cast("float64"))
    gaps = gaps.filter(gaps.gap.notnull())
    per_gap = gaps.group_by("account_id").aggregate(
        gap_mean=gaps.gap.mean(),
        gap_std=gaps.gap.std(),
        gap_median=gaps.gap.approx_median(),
    )
    hourly = t.group_by([t.account_id, t.ts.hour().name("hour")]).aggregate(c=t.count())
    total = hourly.c.sum().over(ibis.window(group_by=hourly.account_id))
    p = hourly.c.cast("float64") / total
    hourly = hourly.mutate(plogp=p * p.ln())
    hours = hourly.group_by("account_id").aggregate(
        hour_entropy=-hourly.plogp.sum() / ibis.literal(24.0).ln(),
        active_hours=hourly.count(),
    )
    buckets = t.group_by([t.account_id, t.ts.truncate("h").name("bucket")]).aggregate(c=t.count())
    bursts = buckets.group_by("account_id").aggregate(peak_hour_events=buckets.c.max())
    return per_gap.join(hours, "account_id", how="outer").join(bursts, "account_id", how="outer")


def _model_pivot(t: ir.Table) -> ir.Table:
    """Share of an account's traffic on a model it adopted within a day of its release.

    A model's release is approximated by its first appearance in the data; a
    model present from the start of the data is not "new".
    """
    grace = ibis.interval(hours=RELEASE_GRACE_HOURS)
    models = t.filter(t.model.notnull()).group_by("model").aggregate(released=t.ts.min())
    models = models.filter(models.released > t.ts.min().as_scalar() + grace)
    per = t.group_by(["account_id", "model"]).aggregate(first_use=t.ts.min(), c=t.count())
    j = per.join(models, "model")
    quick = j.first_use < j.released + grace
    return j.group_by("account_id").aggregate(pivot_events=quick.ifelse(j.c, 0).sum())


def account_features(events: ir.Table) -> ir.Table:
    """One row per account with behaviour features (see :data:`FEATURE_COLUMNS`)."""
    base = _volume_and_parameters(events)
    out = base.join(_timing(events), "account_id", how="left").join(
        _model_pivot(events), "account_id", how="left"
    )
    n = out.n_events.cast("float64")
    return out.select(
        "account_id",
        "n_events",
        "first_ts",
        "last_ts",
        "org_id",
        "active_days",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "output_tokens_mean",
        "max_output_tokens_mean",
        output_ratio=out.output_tokens.cast("float64") / ibis.greatest(out.input_tokens, 1),
        fanout_share="fanout_share",
        n_mean="n_mean",
        logprobs_share="logprobs_share",
        temperature_zero_share="temperature_zero_share",
        temperature_distinct="temperature_distinct",
        high_effort_share="high_effort_share",
        batch_share="batch_share",
        error_share="error_share",
        conversation_share=(out.conversations + out.unthreaded).cast("float64") / n,
        ip_distinct="ip_distinct",
        user_agent_distinct="user_agent_distinct",
        model_distinct="model_distinct",
        prompt_chars_mean="prompt_chars_mean",
        prompt_distinct_share=out.prompt_distinct.cast("float64") / n,
        gap_median="gap_median",
        gap_cv=out.gap_std / ibis.greatest(out.gap_mean, 1e-9),
        hour_entropy=out.hour_entropy.fill_null(0.0),
        active_hours=out.active_hours.fill_null(0),
        peak_hour_share=out.peak_hour_events.cast("float64") / n,
        pivot_share=out.pivot_events.fill_null(0).cast("float64") / n,
    )


FEATURE_COLUMNS = tuple(account_features(events_table()).columns)
