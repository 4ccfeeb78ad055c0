"""Per-account samples of distinct prompts and activity buckets.

Content detectors and template linkage read a bounded, deterministic sample of
each account's distinct prompts rather than every event, so a scan's text work
grows with the number of accounts, not with the volume of traffic.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir

__all__ = ["prompt_sample", "activity_buckets"]


def prompt_sample(events: ir.Table, per_account: int = 16, max_chars: int = 512) -> ir.Table:
    """Up to ``per_account`` distinct prompts per account (deterministic choice).

    Prompts are cut to their first ``max_chars`` characters: the instruction
    that reveals intent and template comes first; the payload after it would
    only cost time. Columns: ``account_id``, ``prompt``, ``uses`` (how often
    the account sent it).
    """
    t = events.filter(events.prompt.notnull() & (events.prompt.length() > 0))
    t = t.mutate(prompt=t.prompt.substr(0, max_chars))
    d = t.group_by(["account_id", "prompt"]).aggregate(uses=t.count())
    rank = ibis.row_number().over(ibis.window(group_by=d.account_id, order_by=d.prompt.hash()))
    d = d.mutate(_r=rank)
    return d.filter(d._r < per_account).drop("_r")


def activity_buckets(events: ir.Table, minutes: int = 10) -> ir.Table:
    """Distinct ``minutes``-wide time buckets in which each account was active."""
    secs = events.ts.epoch_seconds()
    bucket = (secs // (minutes * 60)).cast("int64")
    return events.select("account_id", bucket=bucket).distinct()
