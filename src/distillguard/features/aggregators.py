"""Mergeable per-account aggregators: each declared once, run in batch (Ibis) and as a stream fold.

An :class:`Aggregator` is a small named unit (count, sum, mean, min/max,
distinct, request gaps, hour histogram, ...). From one declaration it gives

- the batch side: ``reduce(t)`` -> ``{column: Ibis reduction}`` for the
  per-account ``GROUP BY``, or, for a unit that needs its own ordering or a
  second grouping, ``table(t)`` -> a table of ``account_id`` + its columns;
- the stream side, in River's style: ``start()`` an empty partial,
  ``add(s, ev, us)`` one event, ``merge(a, b)`` two partials of one account
  (``a`` earlier than ``b``, as per-day partitions are), ``values(s, context)``
  its columns, and ``dump``/``load`` to keep a partial as JSON.

A :class:`FeatureSet` is an ordered declaration of aggregators and
:class:`Derived` columns (formulas over aggregates); it builds the whole batch
expression and the whole fold. Columns whose name starts with ``_`` are
intermediate: used by derived columns, not output.
"""
from __future__ import annotations

import hashlib
import heapq
import math
import random

import ibis
import ibis.expr.types as ir

from distillguard.features.expr import HOUR, HOUR_BUCKET, HOUR_US, Expr, Names as _Names

__all__ = ["Aggregator", "Count", "Sum", "Mean", "Share", "Min", "Max", "Distinct", "Gaps", "HourHistogram",
           "PeakHour", "ModelAdoption", "Derived", "FeatureSet", "DISTINCT_EXACT", "GAP_SAMPLE", "to_us"]

DISTINCT_EXACT = 16_384
"""Distinct values a stream counts exactly per account and column; beyond, a K-minimum-values sketch of that size."""
GAP_SAMPLE = 4096
"""Request gaps a stream keeps exactly per account for the median; beyond, a uniform reservoir of that size."""


def to_us(ts) -> int:
    """A datetime (aware, or naive UTC) or epoch microseconds -> epoch microseconds."""
    if isinstance(ts, int):
        return ts
    return int(ts.timestamp() * 1_000_000) if ts.tzinfo else int(ts.replace(tzinfo=None).timestamp() * 1e6)


class Aggregator:
    """Base of the units (see the module docstring). ``names``: the columns it gives."""

    names: tuple[str, ...] = ()

    def reduce(self, t: ir.Table) -> dict | None:
        return None

    def table(self, t: ir.Table) -> ir.Table | None:
        return None

    def source(self, slot: str, names) -> str | None:
        """Python lines that fold one event (``row``, ``us``) into ``slot``, inlined into the fold;
        None: the fold calls :meth:`add` (the stream's hot path, as ``dataclasses`` generates ``__init__``)."""
        return None

    def dump(self, s):
        return s

    def load(self, x):
        return x


class _Scalar(Aggregator):
    """A unit with one column and one per-event value ``x``."""

    def __init__(self, name: str, x: Expr | None = None):
        self.names = (name,)
        self.x = x
        self.f = x.py() if x is not None else None


class Count(_Scalar):
    """Number of events."""

    def reduce(self, t):
        return {self.names[0]: t.count()}

    def start(self):
        return 0

    def add(self, s, ev, us):
        return s + 1

    def source(self, slot, names):
        return f"{slot} += 1"

    def merge(self, a, b):
        return a + b

    def values(self, s, context):
        return {self.names[0]: s}


class Sum(_Scalar):
    """Sum of a per-event value, nulls skipped (a condition sums to the number of events where it holds)."""

    def reduce(self, t):
        return {self.names[0]: self.x.ibis(t).sum()}

    def start(self):
        return 0

    def add(self, s, ev, us):
        v = self.f(ev, us)
        return s if v is None else s + v

    def source(self, slot, names):
        return f"if (v := {self.x.code(names)}) is not None:\n    {slot} += v"

    def merge(self, a, b):
        return a + b

    def values(self, s, context):
        return {self.names[0]: s}


class Mean(_Scalar):
    """Mean of a per-event value over the events where it is not null (null when it never is)."""

    def reduce(self, t):
        return {self.names[0]: self.x.ibis(t).mean()}

    def start(self):
        return [0, 0]

    def add(self, s, ev, us):
        v = self.f(ev, us)
        if v is not None:
            s[0] += v
            s[1] += 1
        return s

    def source(self, slot, names):
        return f"if (v := {self.x.code(names)}) is not None:\n    {slot}[0] += v\n    {slot}[1] += 1"

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1]]

    def values(self, s, context):
        return {self.names[0]: s[0] / s[1] if s[1] else None}


def Share(name: str, cond: Expr) -> Mean:  # noqa: N802 - reads as a unit in declarations
    """Share of events where ``cond`` holds (a null condition does not)."""
    return Mean(name, cond.ifelse(1.0, 0.0))


class _Extreme(_Scalar):
    pick = staticmethod(min)
    sql = "min"
    better = "<"

    def reduce(self, t):
        return {self.names[0]: getattr(self.x.ibis(t), self.sql)()}

    def start(self):
        return None

    def add(self, s, ev, us):
        v = self.f(ev, us)
        return s if v is None else v if s is None else self.pick(s, v)

    def source(self, slot, names):
        return f"if (v := {self.x.code(names)}) is not None and ({slot} is None or v {self.better} {slot}):\n    {slot} = v"

    def merge(self, a, b):
        return a if b is None else b if a is None else self.pick(a, b)

    def values(self, s, context):
        return {self.names[0]: self.x.decode(s) if self.x.decode else s}


class Min(_Extreme):
    """Smallest value (nulls skipped)."""


class Max(_Extreme):
    """Largest value (nulls skipped)."""

    pick = staticmethod(max)
    sql = "max"
    better = ">"


def _hash64(v) -> int:
    """A 64-bit hash that is the same in every process (Python's ``hash`` is salted)."""
    b = v.encode("utf-8", "surrogatepass") if isinstance(v, str) else repr(v).encode()
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little")


class Distinct(_Scalar):
    """Number of distinct non-null values.

    The batch counts exactly (``COUNT(DISTINCT)``). The stream keeps the
    values themselves (``hashed``: a 64-bit hash of each, for long text) and
    is exact up to ``k`` distinct values; beyond, it keeps the ``k`` smallest
    64-bit hashes, a K-minimum-values sketch whose estimate is off by about
    ``1/sqrt(k)`` (0.8%) and which merges by union. A hash collision among
    16,384 values is a 1-in-10^11 event.
    """

    def __init__(self, name: str, x: Expr, hashed: bool = False, k: int = DISTINCT_EXACT):
        super().__init__(name, x)
        self.hashed, self.k = hashed, k

    def reduce(self, t):
        return {self.names[0]: self.x.ibis(t).nunique()}

    def start(self):
        return [set(), None]  # values (or their hashes); once saturated, a max-heap (negated) of the k smallest hashes

    def add(self, s, ev, us):
        v = self.f(ev, us)
        if v is not None:
            self.add_value(s, v)
        return s

    def add_value(self, s, v) -> None:
        if s[1] is None:
            s[0].add(_hash64(v) if self.hashed else v)
            if len(s[0]) > self.k:
                self._saturate(s, self._hashes(s))
        else:
            self._insert(s, _hash64(v))

    def source(self, slot, names):
        me, h = names.constant(self), names.constant(_hash64)
        key = f"{h}(v)" if self.hashed else "v"
        return (f"if (v := {self.x.code(names)}) is not None:\n"
                f"    if {slot}[1] is None and len({slot}[0]) < {self.k}:\n        {slot}[0].add({key})\n"
                f"    else:\n        {me}.add_value({slot}, v)")

    def _hashes(self, s) -> set:
        return s[0] if self.hashed or s[1] is not None else {_hash64(v) for v in s[0]}

    def _saturate(self, s, hashes) -> None:
        smallest = heapq.nsmallest(self.k, hashes)
        s[0], s[1] = set(smallest), [-h for h in smallest]
        heapq.heapify(s[1])

    @staticmethod
    def _insert(s, h: int) -> None:
        kept, heap = s
        if h < -heap[0] and h not in kept:
            kept.discard(-heapq.heapreplace(heap, -h))
            kept.add(h)

    def merge(self, a, b):
        if a[1] is None and b[1] is None and len(a[0] | b[0]) <= self.k:
            return [a[0] | b[0], None]
        out = [set(), None]
        self._saturate(out, self._hashes(a) | self._hashes(b))
        return out

    def values(self, s, context):
        kept, heap = s
        if heap is None:
            return {self.names[0]: len(kept)}
        return {self.names[0]: round((self.k - 1) * 2.0 ** 64 / (-heap[0] + 1))}

    def dump(self, s):
        return [sorted(s[0], key=repr) if s[1] is None else sorted(s[0]), s[1] is not None]

    def load(self, x):
        s = [set(x[0]), None]
        if x[1]:
            self._saturate(s, s[0])
        return s


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

    def start(self):
        return [0, 0.0, 0.0, None, None, []]  # n, mean, M2 (Welford), first us, last us, gaps kept

    def _gap(self, s, gap: float) -> None:
        s[0] += 1
        d = gap - s[1]
        s[1] += d / s[0]
        s[2] += d * (gap - s[1])
        kept = s[5]
        if len(kept) < self.sample:
            kept.append(gap)
        else:
            j = random.randrange(s[0])
            if j < self.sample:
                kept[j] = gap

    def add(self, s, ev, us):
        if s[4] is not None:
            self._gap(s, max(0.0, us / 1e6 - s[4] / 1e6))
        s[3] = us if s[3] is None else min(s[3], us)
        s[4] = us if s[4] is None else max(s[4], us)
        return s

    def merge(self, a, b):
        if a[4] is None or b[3] is None:
            return b if a[4] is None else a
        out = [a[0], a[1], a[2], a[3], max(a[4], b[4]), list(a[5])]
        self._gap(out, max(0.0, b[3] / 1e6 - a[4] / 1e6))
        n, m, m2 = out[0] + b[0], out[1], out[2]
        if b[0]:  # Chan et al.: combine two (count, mean, M2)
            d = b[1] - m
            out[1] = m + d * b[0] / n
            out[2] = m2 + b[2] + d * d * out[0] * b[0] / n
        out[0] = n
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

    def add(self, s, ev, us):
        s[(us // HOUR_US) % 24] += 1
        return s

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

    def start(self):
        return [{}, 0]  # hour bucket -> requests, peak

    def _trim(self, s):
        buckets = s[0]
        if len(buckets) > self.keep:
            for old in sorted(buckets)[: len(buckets) - self.keep]:
                del buckets[old]
        return s

    def add(self, s, ev, us):
        b = us // HOUR_US
        c = s[0][b] = s[0].get(b, 0) + 1
        if c > s[1]:
            s[1] = c
        return self._trim(s)

    def merge(self, a, b):
        buckets = dict(a[0])
        for k, c in b[0].items():
            buckets[k] = buckets.get(k, 0) + c
        return self._trim([buckets, max(a[1], b[1], *buckets.values(), 0)])

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

    def add(self, s, ev, us):
        model = ev.get("model")
        if model is not None:
            m = s.get(model)
            if m is None:
                s[model] = [us, 1]
            else:
                m[0] = min(m[0], us)
                m[1] += 1
        return s

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


class Derived:
    """A column computed from the account's aggregates (a formula over their names)."""

    def __init__(self, name: str, expr: Expr):
        self.names = (name,)
        self.expr = expr
        self.f = expr.py()


class FeatureSet:
    """An ordered declaration of aggregators and derived columns; the batch expression and the stream fold."""

    def __init__(self, *units):
        self.units = units
        self.aggregators = [u for u in units if isinstance(u, Aggregator)]
        self.columns = ("account_id", *(n for u in units for n in u.names if not n.startswith("_")))
        self._fold = self._compile_fold()
        self._at = {n: i for i, a in enumerate(self.aggregators) for n in a.names}

    def _compile_fold(self):
        """One Python function folding an event into every aggregator: their :meth:`Aggregator.source` inlined."""
        names = _Names()
        lines = []
        for i, a in enumerate(self.aggregators):
            src = a.source(f"p[{i}]", names)
            if src is None:
                src = f"p[{i}] = {names.constant(a.add)}(p[{i}], row, us)"
            lines += src.splitlines()
        scope = dict(names.constants)
        exec("def fold(p, row, us):\n" + "".join(f"    {x}\n" for x in lines), scope)  # noqa: S102 - built from the units' templates
        return scope["fold"]

    # -- batch ---------------------------------------------------------------------
    def expression(self, events: ir.Table) -> ir.Table:
        """One row per ``account_id`` with :attr:`columns`, for any Ibis backend."""
        grouped: dict = {}
        for a in self.aggregators:
            grouped.update(a.reduce(events) or {})
        out = events.group_by("account_id").aggregate(**grouped)
        for a in self.aggregators:
            extra = a.table(events)
            if extra is not None:
                out = out.join(extra, "account_id", how="left")
        return out.select("account_id", **{n: u.expr.ibis(out) if isinstance(u, Derived) else out[n]
                                           for u in self.units for n in u.names if not n.startswith("_")})

    # -- stream --------------------------------------------------------------------
    def start(self) -> list:
        """The empty partial of one account (one entry per aggregator)."""
        return [a.start() for a in self.aggregators]

    def add(self, parts: list, ev: dict) -> None:
        """Fold one canonical event (a dict as the ingest normaliser returns) into ``parts``."""
        self._fold(parts, ev, to_us(ev["ts"]))

    def merge(self, a: list, b: list) -> list:
        """Two partials of one account (``a`` earlier than ``b``) -> the partial of both."""
        return [agg.merge(x, y) for agg, x, y in zip(self.aggregators, a, b)]

    def value(self, parts: list, name: str):
        """One aggregate column of a partial (one that needs no context)."""
        agg = self.aggregators[self._at[name]]
        return agg.values(parts[self._at[name]], None)[name]

    def row(self, account_id: str, parts: list, context: dict | None = None) -> dict:
        """The feature row of a partial: the same columns and values as :meth:`expression`."""
        values: dict = {}
        for agg, s in zip(self.aggregators, parts):
            values.update(agg.values(s, context))
        out = {"account_id": account_id}
        for u in self.units:
            for n in u.names:
                if not n.startswith("_"):
                    out[n] = u.f(values, None) if isinstance(u, Derived) else values[n]
        return out

    def dump(self, parts: list) -> list:
        return [a.dump(s) for a, s in zip(self.aggregators, parts)]

    def load(self, raw: list) -> list:
        return [a.load(x) for a, x in zip(self.aggregators, raw)]
