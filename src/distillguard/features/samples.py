"""Per-account samples of distinct prompts and activity buckets.

Content detectors and template linkage read a bounded, deterministic sample of
each account's distinct prompts rather than every event, so a scan's text work
grows with the number of accounts, not with the volume of traffic.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir

__all__ = ["prompt_sample", "end_user_sample", "activity_buckets", "END_USER_KEYS"]


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


END_USER_KEYS = ("end_user", "end_user_id", "user", "safety_identifier")
"""Keys of ``extra`` that carry the end user behind a router or reseller account
(LiteLLM's ``end_user``, OpenAI's ``user`` / ``safety_identifier``) when the
account itself is the subject."""

_END_USER = r'"(?:' + "|".join(END_USER_KEYS) + r')"\s*:\s*"([^"]+)"'


def end_user_sample(events: ir.Table, top_end_users: int = 5, per_end_user: int = 40, max_chars: int = 512) -> ir.Table:
    """Distinct prompts of the busiest end users behind each router account, and of the others pooled.

    A reseller's harvest can come from a handful of its end users while the
    rest are real customers; per account its prompts are diluted, per end
    user they are not. Only accounts with at least two end users are routers.
    Up to ``per_end_user`` prompts of each of the ``top_end_users`` busiest end
    users (``busiest`` true), and as many of all its other end users together
    (``busiest`` false): what the key's ordinary customers ask, the reference
    its busiest end users are compared with. Columns: ``account_id``,
    ``end_user``, ``prompt``, ``uses``, ``busiest``, ``eu_events`` (requests of
    that end user), ``account_eu_events`` (requests of the account that name an
    end user).
    """
    t = events.filter(events.extra.notnull() & events.prompt.notnull() & (events.prompt.length() > 0))
    t = t.mutate(end_user=t.extra.re_extract(_END_USER, 1))
    t = t.filter(t.end_user.notnull() & (t.end_user != ""))
    eu = t.group_by(["account_id", "end_user"]).aggregate(eu_events=t.count())
    per_account = ibis.window(group_by=eu.account_id)
    busiest = ibis.window(group_by=eu.account_id, order_by=[ibis.desc(eu.eu_events), eu.end_user])
    eu = eu.mutate(busiest=ibis.row_number().over(busiest) < top_end_users, _n=eu.end_user.count().over(per_account),
                   account_eu_events=eu.eu_events.sum().over(per_account))
    eu = eu.filter(eu._n >= 2).drop("_n")
    p = t.mutate(prompt=t.prompt.substr(0, max_chars))
    p = p.group_by(["account_id", "end_user", "prompt"]).aggregate(uses=p.count())
    p = p.join(eu, ["account_id", "end_user"])
    slot = p.busiest.ifelse(p.end_user, "")  # each busiest end user alone, the others pooled
    rank = ibis.row_number().over(ibis.window(group_by=[p.account_id, slot], order_by=[p.prompt.hash(), p.end_user]))
    p = p.mutate(_r=rank)
    return p.filter(p._r < per_end_user).drop("_r")


def activity_buckets(events: ir.Table, minutes: int = 10) -> ir.Table:
    """Distinct ``minutes``-wide time buckets in which each account was active."""
    secs = events.ts.epoch_seconds()
    bucket = (secs // (minutes * 60)).cast("int64")
    return events.select("account_id", bucket=bucket).distinct()
