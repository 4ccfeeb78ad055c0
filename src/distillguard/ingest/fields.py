"""The canonical field rules, declared once (docs/ingest.md, "Canonical field rules").

Every engine's validation is generated from this table: the record-at-a-time
reference (:mod:`distillguard.ingest.normalize`), the DuckDB SQL fast path
(:mod:`distillguard.ingest.sqlfast`) and the Spark expressions
(:mod:`distillguard.engines.spark`). The fast paths accept only rows they can
prove clean under these rules and hand every other row to the reference, so
quarantine reasons are decided in one place; the content-derived event id is
one DuckDB expression (:data:`distillguard.ingest.sqlfast.EVENT_ID_SQL`) that
the Spark engine runs through DuckDB too.
"""
from __future__ import annotations

from datetime import datetime, timezone

from distillguard.schema import BOOL_FIELDS, EVENT_ALIASES, EVENT_SCHEMA, FLOAT_FIELDS, INT_FIELDS

__all__ = [
    "CANONICAL",
    "STRING_FIELDS",
    "CHECK_ORDER",
    "KIND",
    "EXTRA_ALIASES",
    "FIELD_KEYS",
    "KEY_TO_FIELD",
    "KEY_RANK",
    "EPOCH_UNITS",
    "TS_MIN",
    "TS_MAX",
    "TRUE_WORDS",
    "FALSE_WORDS",
    "STATUS_SYNONYMS",
    "RATE_LIMITED_HTTP",
    "OK_HTTP",
    "INT_LIMIT",
    "NUMBER_PATTERN",
    "ISO_TS_PATTERN",
    "ID_SEPARATOR",
    "ID_NULL",
    "ID_COLUMNS",
    "ID_ADDED",
    "epoch_scale",
]

CANONICAL: list[str] = [f.name for f in EVENT_SCHEMA if f.name != "extra"]
"""The canonical columns a record is checked for (``extra`` holds what is left)."""
STRING_FIELDS: list[str] = [f for f in CANONICAL if f not in INT_FIELDS | FLOAT_FIELDS | BOOL_FIELDS and f != "ts"]
CHECK_ORDER: list[str] = ["ts", *STRING_FIELDS, *(f for kinds in (INT_FIELDS, FLOAT_FIELDS, BOOL_FIELDS)
                                                   for f in CANONICAL if f in kinds)]
"""The order fields are checked in: the first bad field names the rejection."""

KIND: dict[str, str] = {
    f: ("ts" if f == "ts" else "int" if f in INT_FIELDS else "float" if f in FLOAT_FIELDS
        else "bool" if f in BOOL_FIELDS else f if f in ("status", "reasoning_effort") else "string")
    for f in CANONICAL
}
"""Field -> its rule: ``ts``, ``int`` (non-negative), ``float`` (finite), ``bool``, ``string``,
``status`` (synonyms and HTTP codes), ``reasoning_effort`` (text, or a thinking budget in tokens)."""

# -- names --------------------------------------------------------------------

EXTRA_ALIASES: dict[str, str] = {
    "messages": "prompt",
    "input_messages": "prompt",
    "instructions": "system_prompt",
    "system": "system_prompt",
    "max_tokens_to_sample": "max_output_tokens",
    "choice_count": "n",
    "batch": "is_batch",
}
"""Aliases the readers accept beyond the schema's table (lower-case keys)."""

FIELD_KEYS: dict[str, list[str]] = {f: [f] for f in CANONICAL}
"""Canonical field -> accepted lower-case keys in priority order (canonical name first)."""
for _alias, _field in {**EXTRA_ALIASES, **EVENT_ALIASES}.items():
    FIELD_KEYS[_field].append(_alias)
KEY_TO_FIELD: dict[str, str] = {k: f for f, ks in FIELD_KEYS.items() for k in ks}
KEY_RANK: dict[str, tuple[str, int]] = {k: (f, i * 2) for f, ks in FIELD_KEYS.items() for i, k in enumerate(ks)}
"""Lower-case key -> (field, rank): the canonical name first, then its aliases; the same key
in another case ranks just after it (rank + 1)."""

# -- values -------------------------------------------------------------------

EPOCH_UNITS: tuple[tuple[float, float], ...] = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
"""(magnitude cut-off, divisor): an epoch number at or above the cut-off is in ns, µs or ms; below
the last one it is in seconds."""
TS_MIN = datetime(1970, 1, 1, tzinfo=timezone.utc)
TS_MAX = datetime(2200, 1, 1, tzinfo=timezone.utc)
"""Accepted timestamps: ``TS_MIN <= ts < TS_MAX``."""

TRUE_WORDS: tuple[str, ...] = ("true", "t", "yes", "y", "1")
FALSE_WORDS: tuple[str, ...] = ("false", "f", "no", "n", "0")
"""Boolean text (matched trimmed and lower-cased)."""

STATUS_SYNONYMS: dict[str, str] = {
    "ok": "ok", "success": "ok", "succeeded": "ok", "completed": "ok", "unset": "ok",
    "error": "error", "failure": "error", "failed": "error", "fail": "error",
    "refused": "refused", "refusal": "refused", "content_filter": "refused", "blocked": "refused",
    "rate_limited": "rate_limited", "ratelimited": "rate_limited", "rate_limit": "rate_limited",
    "throttled": "rate_limited",
}
"""Status text (trimmed, lower-cased) -> canonical status; other text is kept lower-cased."""
RATE_LIMITED_HTTP = 429
OK_HTTP = range(200, 400)
"""HTTP status codes: 429 is ``rate_limited``, 2xx/3xx ``ok``, any other ``error``."""

INT_LIMIT = 2**63
"""Integers must be below this (they are stored as BIGINT)."""
NUMBER_PATTERN = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
"""Numeric text (a number given as a string; an epoch timestamp when the whole value matches)."""
ISO_TS_PATTERN = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?"
"""The ISO 8601 shape the fast paths may read themselves; other timestamp text goes to the reference."""

# -- the content-derived event id ----------------------------------------------

ID_SEPARATOR = chr(31)
ID_NULL = chr(0)
ID_ADDED: tuple[str, ...] = ("client_fingerprint",)
"""Columns added to the schema after content ids were first issued: they enter an id after
:data:`ID_COLUMNS` and only when present (NULL is skipped, not ``ID_NULL``), so an event without
them keeps the id it always had and re-ingesting an old log into an old store adds nothing."""
ID_COLUMNS: list[str] = [c for c in EVENT_SCHEMA.names if c != "event_id" and c not in ID_ADDED]
"""An event without an id gets the MD5 of these columns' text (``ts`` as epoch microseconds,
NULL as ``ID_NULL``), then of the present :data:`ID_ADDED` columns, joined by ``ID_SEPARATOR``:
see ``sqlfast.EVENT_ID_SQL``."""


def epoch_scale(x: float) -> float:
    """An epoch number -> seconds, by magnitude (:data:`EPOCH_UNITS`)."""
    a = abs(x)
    for cut, divisor in EPOCH_UNITS:
        if a >= cut:
            return x / divisor
    return x
