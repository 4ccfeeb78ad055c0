"""A feature set: an ordered declaration of aggregators and derived columns, run in batch or as a stream fold.

Columns whose name starts with ``_`` are intermediate: used by
:class:`Derived` columns, not output.
"""
from __future__ import annotations

import ibis.expr.types as ir

from distillguard.features.aggregators import Aggregator, to_us
from distillguard.features.expr import Expr, Names

__all__ = ["Derived", "FeatureSet"]


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
        self._place = []  # (aggregator, where its partial starts in the parts list, its width)
        for a in self.aggregators:
            self._place.append((a, sum(w for _, _, w in self._place), a.width))
        self.fold = self._compile_fold()  # fold(parts, row, us): add() with the time given (the service's hot path)
        self.dump, self.load = self._compile_codec()
        self._at = {n: place for place in self._place for n in place[0].names}

    def _compile_fold(self):
        """One Python function folding an event into every aggregator: their :meth:`Aggregator.source` inlined."""
        names = Names()
        slots = (f"p[{i}]" if w == 1 else tuple(f"p[{i + j}]" for j in range(w)) for _, i, w in self._place)
        return names.function("p, row, us", "\n".join(a.source(s, names) for a, s in zip(self.aggregators, slots)))

    def _compile_codec(self):
        """``dump(parts)``: JSON-ready, one entry per aggregator (the form other processes and the warmed state
        share); ``load(raw)``: its inverse. Generated, as the fold: an aggregator whose partial is its own JSON
        form is read in place, the others call their :meth:`~Aggregator.dump` / :meth:`~Aggregator.load` (the
        Redis state dumps and loads an account per update)."""
        names, dumped, loaded = Names(), [], []
        for k, (a, i, w) in enumerate(self._place):
            items = f"p[{i}]" if w == 1 else f"p[{i}:{i + w}]"
            as_is = type(a).dump is Aggregator.dump and type(a).load is Aggregator.load
            dumped.append(items if as_is else f"{names.constant(a)}.dump({items})")
            got = f"x[{k}]" if as_is else f"{names.constant(a)}.load(x[{k}])"
            loaded.append(got if w == 1 else f"*{got}")
        return (names.function("p", f"return [{', '.join(dumped)}]"),
                names.function("x", f"return [{', '.join(loaded)}]"))

    @staticmethod
    def _of(parts: list, i: int, w: int):
        """One aggregator's partial in ``parts`` (a list of ``w`` items copied out when it is kept in place)."""
        return parts[i] if w == 1 else parts[i:i + w]

    def _flat(self, partials) -> list:
        """Each aggregator's partial, in order -> the parts list (partials of width > 1 in place)."""
        out: list = []
        for (_, _, w), s in zip(self._place, partials):
            if w == 1:
                out.append(s)
            else:
                out.extend(s)
        return out

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
        """The empty partial of one account (each aggregator's, those of width > 1 in place)."""
        return self._flat(a.start() for a in self.aggregators)

    def add(self, parts: list, ev: dict, us: int | None = None) -> None:
        """Fold one canonical event (a dict as the ingest normaliser returns; ``us``: its time in epoch
        microseconds when the caller has it) into ``parts``."""
        self.fold(parts, ev, to_us(ev["ts"]) if us is None else us)

    def merge(self, a: list, b: list) -> list:
        """Two partials of one account (``a`` earlier than ``b``) -> the partial of both."""
        of = self._of
        return self._flat(agg.merge(of(a, i, w), of(b, i, w)) for agg, i, w in self._place)

    def value(self, parts: list, name: str):
        """One aggregate column of a partial (one that needs no context)."""
        agg, i, w = self._at[name]
        return agg.values(self._of(parts, i, w), None)[name]

    def row(self, account_id: str, parts: list, context: dict | None = None) -> dict:
        """The feature row of a partial: the same columns and values as :meth:`expression`."""
        values: dict = {}
        for agg, i, w in self._place:
            values.update(agg.values(self._of(parts, i, w), context))
        out = {"account_id": account_id}
        for u in self.units:
            for n in u.names:
                if not n.startswith("_"):
                    out[n] = u.f(values, None) if isinstance(u, Derived) else values[n]
        return out

