"""Aggregators over an account's events in time order: request gaps, hours of the day, bursts, model adoption.

Same contract as :mod:`distillguard.features.aggregators`; each needs its own
subquery in the batch (an ordering or a second grouping), so it gives
``table(t)`` rather than a reduction of the per-account ``GROUP BY``.
"""
from __future__ import annotations

import math
import random

import ibis

from distillguard.features.aggregators import Aggregator
from distillguard.features.expr import HOUR, HOUR_BUCKET, HOUR_US

__all__ = ["Gaps", "HourHistogram", "PeakHour", "ModelAdoption", "GAP_SAMPLE"]

GAP_SAMPLE = 4096
"""Request gaps a stream keeps exactly per account for the median; beyond, a uniform reservoir of that size."""


class Gaps(Aggregator):
    """Seconds between an account's consecutive requests: mean, sample standard deviation, median.

    The batch orders each account's events by time. The stream measures each
    gap from the latest time seen (an event arriving out of order counts a
    zero gap) and computes it as the batch does (difference of epoch
    seconds), so the two agree to the last bit on ordered input; the median
    is exact up to :data:`GAP_SAMPLE` gaps, then taken over a uniform
    reservoir of that many.
    """

    def __init__(self, mean: str, std: str, median: str, sample: int = GAP_SAMPLE):
        self.names = (mean, std, median)
        self.sample = sample

    def table(self, t):
        secs = t.ts.epoch_seconds()
        w = ibis.window(group_by=t.account_id, order_by=t.ts)
        g = t.mutate(gap=(secs - secs.lag().over(w)).cast("float64"))
        g = g.filter(g.gap.notnull())
        mean, std, median = self.names
        return g.group_by("account_id").aggregate(**{mean: g.gap.mean(), std: g.gap.std(), median: g.gap.median()})

    width = 6

    def start(self):
        return [0, 0.0, 0.0, None, None, []]  # n, mean, M2 (Welford), first us, last us, gaps kept

    def source(self, slot, names):
        (n, mean, m2, first, last, kept), me = slot, names.constant(self)
        return (f"if {last} is not None:\n"  # Welford's update with the gap since the latest request
                f"    gap = max(0.0, us / 1e6 - {last} / 1e6)\n"
                f"    {n} += 1\n    d = gap - {mean}\n    {mean} += d / {n}\n    {m2} += d * (gap - {mean})\n"
                f"    if len({kept}) < {self.sample}:\n        {kept}.append(gap)\n"  # keep(), inlined while under
                f"    else:\n        {me}.keep({kept}, {n}, gap)\n"
                f"if {first} is None or us < {first}:\n    {first} = us\n"
                f"if {last} is None or us > {last}:\n    {last} = us")

    def keep(self, kept: list, n: int, gap: float) -> None:
        """Keep the ``n``-th gap for the median: every one up to ``sample``, then a uniform reservoir (Algorithm R)."""
        if len(kept) < self.sample:
            kept.append(gap)
        elif (j := random.randrange(n)) < self.sample:
            kept[j] = gap

    def merge(self, a, b):
        if a[4] is None or b[3] is None:
            return b if a[4] is None else a
        out = self.add([a[0], a[1], a[2], a[3], a[4], list(a[5])], None, b[3])  # the gap between the two
        n, m, m2 = out[0] + b[0], out[1], out[2]
        if b[0]:  # Chan et al.: combine two (count, mean, M2)
            d = b[1] - m
            out[1] = m + d * b[0] / n
            out[2] = m2 + b[2] + d * d * out[0] * b[0] / n
        out[0], out[4] = n, max(out[4], b[4])
        kept = out[5] + b[5]
        out[5] = kept if len(kept) <= self.sample else random.sample(kept, self.sample)
        return out

    def values(self, s, context):
        n, mean, m2, kept = s[0], s[1], s[2], sorted(s[5])
        k = len(kept)
        median = None if not k else kept[k // 2] if k % 2 else 0.5 * (kept[k // 2 - 1] + kept[k // 2])
        return dict(zip(self.names, (mean if n else None, math.sqrt(m2 / (n - 1)) if n > 1 else None, median)))


class HourHistogram(Aggregator):
    """Requests per hour of the day (UTC): their entropy (0 = one hour, 1 = all 24 evenly) and the hours used."""

    def __init__(self, entropy: str, hours: str):
        self.names = (entropy, hours)

    def table(self, t):
        h = t.group_by([t.account_id, HOUR.ibis(t).name("hour")]).aggregate(c=t.count())
        p = h.c.cast("float64") / h.c.sum().over(ibis.window(group_by=h.account_id))
        h = h.mutate(plogp=p * p.ln())
        entropy, hours = self.names
        return h.group_by("account_id").aggregate(**{entropy: -h.plogp.sum() / ibis.literal(24.0).ln(), hours: h.count()})

    def start(self):
        return [0] * 24

    def source(self, slot, names):
        return f"{slot}[us // {HOUR_US} % 24] += 1"

    def merge(self, a, b):
        return [x + y for x, y in zip(a, b)]

    def values(self, s, context):
        total = sum(s)
        ent = -sum(c / total * math.log(c / total) for c in s if c)
        return dict(zip(self.names, (ent / math.log(24.0) if total else None, sum(1 for c in s if c))))


class PeakHour(Aggregator):
    """Most requests in any one clock hour (a burst). The stream counts the latest ``keep`` hours."""

    def __init__(self, name: str, keep: int = 48):
        self.names = (name,)
        self.keep = keep

    def table(self, t):
        b = t.group_by([t.account_id, HOUR_BUCKET.ibis(t).name("bucket")]).aggregate(c=t.count())
        return b.group_by("account_id").aggregate(**{self.names[0]: b.c.max()})

    width = 2

    def start(self):
        return [{}, 0]  # hour bucket -> requests, peak

    def _trim(self, buckets: dict) -> dict:
        """Only the latest ``keep`` hours (in place)."""
        if len(buckets) > self.keep:
            for old in sorted(buckets)[: len(buckets) - self.keep]:
                del buckets[old]
        return buckets

    def source(self, slot, names):
        (buckets, peak), me = slot, names.constant(self)
        return (f"b = {buckets}\nc = b[k] = b.get(k := us // {HOUR_US}, 0) + 1\n"
                f"if c > {peak}:\n    {peak} = c\nif len(b) > {self.keep}:\n    {me}._trim(b)")

    def merge(self, a, b):
        buckets = dict(a[0])
        for k, c in b[0].items():
            buckets[k] = buckets.get(k, 0) + c
        return [self._trim(buckets), max(a[1], b[1], *buckets.values(), 0)]

    def values(self, s, context):
        return {self.names[0]: s[1]}

    def dump(self, s):
        return [list(s[0].items()), s[1]]

    def load(self, x):
        return [{int(k): v for k, v in x[0]}, x[1]]


class ModelAdoption(Aggregator):
    """Requests on models the account took up within ``grace_hours`` of their release.

    A model's release is its first appearance in the traffic; one present from
    the start of the data (within the grace) is not new. The stream reads the
    release times from ``context``: ``released`` (model -> first epoch us) and
    ``start_us`` (the earliest event).
    """

    def __init__(self, name: str, grace_hours: int):
        self.names = (name,)
        self.grace_hours = grace_hours

    def table(self, t):
        grace = ibis.interval(hours=self.grace_hours)
        models = t.filter(t.model.notnull()).group_by("model").aggregate(released=t.ts.min())
        models = models.filter(models.released > t.ts.min().as_scalar() + grace)
        per = t.group_by(["account_id", "model"]).aggregate(first_use=t.ts.min(), c=t.count())
        j = per.join(models, "model")
        quick = j.first_use < j.released + grace
        return j.group_by("account_id").aggregate(**{self.names[0]: quick.ifelse(j.c, 0).sum()})

    def start(self):
        return {}  # model -> [first use us, requests]

    def source(self, slot, names):
        return (f"if (m := {names.column('model')}) is not None:\n"
                f"    if (u := {slot}.get(m)) is None:\n        {slot}[m] = [us, 1]\n"
                f"    else:\n        u[1] += 1\n        if us < u[0]:\n            u[0] = us")

    def merge(self, a, b):
        out = {k: list(v) for k, v in a.items()}
        for k, (first, c) in b.items():
            m = out.setdefault(k, [first, 0])
            m[0], m[1] = min(m[0], first), m[1] + c
        return out

    def values(self, s, context):
        released, start = (context or {}).get("released"), (context or {}).get("start_us")
        if not released or start is None:
            return {self.names[0]: 0}
        grace = self.grace_hours * HOUR_US
        return {self.names[0]: sum(c for model, (first, c) in s.items()
                                   if (rel := released.get(model)) is not None and rel > start + grace and first < rel + grace)}
