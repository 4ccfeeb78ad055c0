"""Row expressions written once, evaluated two ways: as Ibis (batch) and as Python (stream).

A feature's per-event value (``col("n").fill_null(1) > 1``) and its final
formula over aggregates (``col("output_tokens").to_float() / greatest(col("input_tokens"), 1)``)
are one :class:`Expr` tree. :meth:`Expr.ibis` builds the Ibis expression the
scan runs on DuckDB and Spark; :meth:`Expr.py` compiles a Python function
``f(row, us)`` the decision service folds one event at a time, with SQL's
null rules (a null operand gives null; a null condition counts as false).
``us`` is the event's time in epoch microseconds (None for aggregate rows).

Examples
--------
>>> e = col("n").fill_null(1) > 1
>>> e.py()({"n": None}, None), e.py()({"n": 3}, None)
(False, True)
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

import ibis

__all__ = ["Expr", "Names", "col", "greatest", "TS", "DAY", "HOUR", "HOUR_BUCKET", "HOUR_US", "DAY_US", "from_us"]

HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def from_us(us: int | None) -> datetime | None:
    """Epoch microseconds -> an aware UTC datetime (what the batch query returns for ``ts``)."""
    return None if us is None else _EPOCH + timedelta(microseconds=us)


class Expr:
    """A node of a row expression (see the module docstring)."""

    decode = None
    """For time values: turns the stream's epoch microseconds into what the batch query returns."""

    nullable = True
    """Whether the value can be null: the generated Python checks for None only where it can."""

    def ibis(self, t):
        raise NotImplementedError

    def code(self, names: "Names") -> str:
        """Python source of this value over ``row`` and ``us``."""
        raise NotImplementedError

    def py(self):
        """This expression as one Python function ``f(row, us)`` (compiled once: the stream calls it per event)."""
        names = Names()
        return names.function("row, us", f"return {self.code(names)}")

    def _op(self, ib, template: str, *others, strict: str | None = None, nullable=None):
        """A node applying ``ib`` (Ibis) / ``template`` (Python, with SQL's null rules) to this and ``others``.

        ``strict``: the Python when no operand can be null (no None checks); ``nullable``: whether the
        result can be null, as a function of the operands [default: when some operand can].
        """
        return _Op((self, *map(_lit, others)), ib, template, strict, nullable)

    def __gt__(self, other):
        return self._op(lambda a, b: a > b, "(None if (x := {0}) is None or (y := {1}) is None else x > y)", other,
                        strict="({0} > {1})")

    def eq(self, other):
        """Equality (``==`` is left to Python so that expressions stay hashable)."""
        return self._op(lambda a, b: a == b, "(None if (x := {0}) is None or (y := {1}) is None else x == y)", other,
                        strict="({0} == {1})")

    def __add__(self, other):
        return self._op(lambda a, b: a + b, "(None if (x := {0}) is None or (y := {1}) is None else x + y)", other,
                        strict="({0} + {1})")

    def __truediv__(self, other):
        return self._op(lambda a, b: a / b, "(None if (x := {0}) is None or (y := {1}) is None or y == 0 else x / y)", other,
                        strict="(None if (y := {1}) == 0 else {0} / y)", nullable=lambda a, b: True)

    def __or__(self, other):
        return self._op(lambda a, b: a | b,
                        "(True if (x := {0}) is True or (y := {1}) is True else None if x is None or y is None else False)",
                        other, strict="({0} is True or {1} is True)")

    def fill_null(self, value):
        return self._op(lambda a, v: a.fill_null(v), "({1} if (x := {0}) is None else x)", value, strict="{0}",
                        nullable=lambda a, v: a.nullable and v.nullable)

    def isnull(self):
        return self._op(lambda a: a.isnull(), "({0} is None)", nullable=lambda a: False)

    def isin(self, values: tuple):
        return self._op(lambda a, v: a.isin(v), "(None if (x := {0}) is None else x in {1})", tuple(values),
                        strict="({0} in {1})")

    def lower(self):
        return self._op(lambda a: a.lower(), "(None if (x := {0}) is None else x.lower())", strict="{0}.lower()")

    def length(self):
        return self._op(lambda a: a.length(), "(None if (x := {0}) is None else len(x))", strict="len({0})")

    def to_float(self):
        return self._op(lambda a: a.cast("float64"), "(None if (x := {0}) is None else float(x))", strict="float({0})")

    def ifelse(self, yes, no):
        """``yes`` where this condition holds, else ``no`` (a null condition does not hold)."""
        return self._op(lambda a, y, n: a.ifelse(y, n), "({1} if {0} is True else {2})", yes, no,
                        nullable=lambda a, y, n: y.nullable or n.nullable)


class Names:
    """Fresh temporaries, named constants and the row's columns for generated source.

    A column is read from ``row`` once, at the top of the function, however many
    expressions use it (a fold over many aggregators reads some columns several times).
    """

    def __init__(self):
        self.constants: dict = {}
        self.columns: dict[str, str] = {}
        self.n = 0

    def temp(self) -> str:
        self.n += 1
        return f"_t{self.n}"

    def constant(self, value) -> str:
        """``value`` in the source: as a literal when it is one (no name to look up per call), else a named constant."""
        if _literal(value):
            return repr(value)
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def column(self, name: str) -> str:
        """The local holding ``row.get(name)``."""
        if name not in self.columns:
            self.columns[name] = f"_r{len(self.columns)}"
        return self.columns[name]

    def function(self, args: str, body: str):
        """Compile ``def f(args): body`` with these constants in scope (source built from this package's templates only)."""
        scope = dict(self.constants)
        lines = [f"{var} = row.get({name!r})" for name, var in self.columns.items()] + body.splitlines()
        exec(f"def f({args}):\n" + "".join(f"    {line}\n" for line in lines), scope)  # noqa: S102
        return scope["f"]


def _literal(v) -> bool:
    """Whether ``repr(v)`` is a Python literal equal to ``v``."""
    if isinstance(v, tuple):
        return all(map(_literal, v))
    return v is None or type(v) in (bool, int, str) or (type(v) is float and math.isfinite(v))


class _Lit(Expr):
    def __init__(self, value):
        self.value = value
        self.nullable = value is None

    def ibis(self, t):
        return self.value  # a plain Python value: Ibis writes it as the same SQL literal as before

    def code(self, names):
        return names.constant(self.value)


def _lit(v) -> Expr:
    return v if isinstance(v, Expr) else _Lit(v)


class _Col(Expr):
    def __init__(self, name: str):
        self.name = name

    def ibis(self, t):
        return t[self.name]

    def code(self, names):
        return names.column(self.name)


class _Op(Expr):
    def __init__(self, args: tuple, ib, template: str, strict: str | None = None, nullable=None):
        self.args, self._ib = args, ib
        some_null = any(a.nullable for a in args)
        self.template = template if strict is None or some_null else strict
        self.nullable = some_null if nullable is None else nullable(*args)

    def ibis(self, t):
        return self._ib(*(a.ibis(t) for a in self.args))

    def code(self, names):
        x, y = names.temp(), names.temp()
        body = re.sub(r"\b([xy])\b", lambda m: x if m.group(1) == "x" else y, self.template)
        return body.format(*(a.code(names) for a in self.args))


class _Time(Expr):
    """The event's timestamp, or a calendar key of it (UTC, as the store's session time zone)."""

    nullable = False  # every event has a time

    def __init__(self, ib, source: str, decode=None):
        self._ib, self.source, self.decode = ib, source, decode

    def ibis(self, t):
        return self._ib(t.ts)

    def code(self, names):
        return self.source


def col(name: str) -> Expr:
    """A column of the row: an event's field, or an aggregate of the account."""
    return _Col(name)


def greatest(a, b) -> Expr:
    """The larger of two values, nulls ignored (as SQL ``greatest``)."""
    return _lit(a)._op(lambda x, y: ibis.greatest(x, y),
                       "(y if ((x := {0}), (y := {1}))[0] is None else x if y is None else max(x, y))", b,
                       strict="max({0}, {1})", nullable=lambda x, y: x.nullable and y.nullable)


TS = _Time(lambda ts: ts, "us", decode=from_us)
DAY = _Time(lambda ts: ts.date(), f"(us // {DAY_US})")
HOUR = _Time(lambda ts: ts.hour(), f"(us // {HOUR_US} % 24)")
HOUR_BUCKET = _Time(lambda ts: ts.truncate("h"), f"(us // {HOUR_US})")
