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

Units over a single per-event value are here; units over an account's
events in time order are in :mod:`distillguard.features.timing`; a
:class:`~distillguard.features.featureset.FeatureSet` puts units together.
"""
from __future__ import annotations

import hashlib
import heapq

import ibis.expr.types as ir

from distillguard.features.expr import Expr, Names

__all__ = ["Aggregator", "Count", "Sum", "Mean", "Share", "Min", "Max", "Distinct", "DISTINCT_EXACT", "to_us"]

DISTINCT_EXACT = 16_384
"""Distinct values a stream counts exactly per account and column; beyond, a K-minimum-values sketch of that size."""


def to_us(ts) -> int:
    """A datetime (aware, or naive UTC) or epoch microseconds -> epoch microseconds."""
    if isinstance(ts, int):
        return ts
    return int(ts.timestamp() * 1_000_000) if ts.tzinfo else int(ts.replace(tzinfo=None).timestamp() * 1e6)


class Aggregator:
    """Base of the units (see the module docstring). ``names``: the columns it gives."""

    names: tuple[str, ...] = ()
    width = 1
    """Items of a partial that is a list of ``width`` > 1 values: a feature set keeps them in place among the other
    partials (one list per account, not one per unit: fewer objects for the fold to touch)."""

    def reduce(self, t: ir.Table) -> dict | None:
        return None

    def table(self, t: ir.Table) -> ir.Table | None:
        return None

    def source(self, slot, names: Names) -> str:
        """Python lines that fold one event (``row``, ``us``) into the partial at ``slot`` (an expression; with
        ``width`` > 1, a tuple of one expression per item of the partial).

        Written once per unit: :meth:`add` is compiled from it, and the
        feature set inlines it into one fold function (the stream's hot path,
        as ``dataclasses`` generates ``__init__``).
        """
        raise NotImplementedError

    def slots(self, partial: str):
        """The ``slot`` argument of :meth:`source` for a partial held whole in ``partial``."""
        return partial if self.width == 1 else tuple(f"{partial}[{j}]" for j in range(self.width))

    def add(self, s, ev: dict, us: int):
        """Fold one event into the partial ``s``; returns the partial."""
        names = Names()
        # compiled on first use
        self.add = names.function("s, row, us", self.source(self.slots("s"), names) + "\nreturn s")
        return self.add(s, ev, us)

    def dump(self, s):
        return s

    def load(self, x):
        return x


class _Scalar(Aggregator):
    """A unit with one column and one per-event value ``x``."""

    def __init__(self, name: str, x: Expr | None = None):
        self.names = (name,)
        self.x = x

    def each(self, names: Names, body: str) -> str:
        """``body`` (lines over ``v``) run for the event's value when it is not null (no check when it cannot be)."""
        if not self.x.nullable:
            return f"v = {self.x.code(names)}\n{body}"
        return f"if (v := {self.x.code(names)}) is not None:\n" + "".join(f"    {line}\n" for line in body.splitlines())


class Sum(_Scalar):
    """Sum of a per-event value, nulls skipped (a condition sums to the number of events where it holds)."""

    def reduce(self, t):
        return {self.names[0]: self.x.ibis(t).sum()}

    def start(self):
        return 0

    def source(self, slot, names):
        return self.each(names, f"{slot} += v")

    def merge(self, a, b):
        return a + b

    def values(self, s, context):
        return {self.names[0]: s}


class Count(Sum):
    """Number of events."""

    def reduce(self, t):
        return {self.names[0]: t.count()}

    def source(self, slot, names):
        return f"{slot} += 1"


class Mean(_Scalar):
    """Mean of a per-event value over the events where it is not null (null when it never is)."""

    def reduce(self, t):
        return {self.names[0]: self.x.ibis(t).mean()}

    width = 2

    def start(self):
        return [0, 0]

    def source(self, slot, names):
        total, count = slot
        return self.each(names, f"{total} += v\n{count} += 1")

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

    def source(self, slot, names):
        return self.each(names, f"if {slot} is None or v {self.better} {slot}:\n    {slot} = v")

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

    width = 2

    def start(self):
        return [set(), None]  # values (or their hashes); once saturated, a max-heap (negated) of the k smallest hashes

    def add_value(self, s, v) -> None:
        if s[1] is None:
            s[0].add(_hash64(v) if self.hashed else v)
            if len(s[0]) > self.k:
                self._saturate(s, self._hashes(s))
        else:
            self._insert(s, _hash64(v))

    def source(self, slot, names):
        (kept, heap), me, h, s = slot, names.constant(self), names.constant(_hash64), names.temp()
        key = f"{h}(v)" if self.hashed else "v"
        return self.each(names, f"if {heap} is None and len({kept}) < {self.k}:\n    {kept}.add({key})\n"
                                f"else:\n    {s} = [{kept}, {heap}]\n    {me}.add_value({s}, v)\n"
                                f"    {kept}, {heap} = {s}")

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
