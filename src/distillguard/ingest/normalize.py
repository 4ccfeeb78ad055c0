"""Record-at-a-time validation and normalisation onto the canonical event.

This is the reference implementation of the field rules declared in
:mod:`distillguard.ingest.fields` (docs/ingest.md). The
vectorised SQL path (:mod:`distillguard.ingest.sqlfast`) accepts only rows it
can prove clean under the same rules and hands every other row here, so
quarantine reasons are decided in one place. The OTLP, LiteLLM and OpenAI
readers map their records to flat dicts and call :func:`normalize` too.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import orjson
import pyarrow as pa

from distillguard.ingest.fields import (
    CHECK_ORDER, FALSE_WORDS, INT_LIMIT, KEY_RANK, KIND, NUMBER_PATTERN, OK_HTTP, RATE_LIMITED_HTTP,
    STATUS_SYNONYMS, TRUE_WORDS, TS_MAX, TS_MIN, epoch_scale,
)
from distillguard.schema import EVENT_SCHEMA
from distillguard.subject import SOURCES, choose

__all__ = [
    "Reject",
    "normalize",
    "normalize_fields",
    "parse_ts",
    "flatten_messages",
    "content_text",
    "rows_to_batch",
]

_NUMERIC = re.compile(NUMBER_PATTERN)
_TRUE, _FALSE = frozenset(TRUE_WORDS), frozenset(FALSE_WORDS)


class Reject(Exception):
    """A record that cannot be ingested: ``reason`` code and a human ``detail``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def epoch_to_datetime(x: float) -> datetime:
    """Epoch number -> UTC datetime; seconds, milliseconds, micro- or nanoseconds by magnitude."""
    return datetime.fromtimestamp(epoch_scale(x), tz=timezone.utc)


def parse_ts(value) -> datetime:
    """A timestamp value -> aware UTC datetime, or :class:`Reject`.

    ISO 8601 with any offset (naive means UTC), or epoch seconds/milliseconds
    (microseconds and nanoseconds too, told apart by magnitude).
    """
    if value is None or value == "":
        raise Reject("missing_ts", "no timestamp")
    try:
        if type(value) is int:  # epoch numbers (OTLP's nanoseconds), the common case: finite, not a boolean
            dt = epoch_to_datetime(value)
        elif isinstance(value, bool):
            raise Reject("bad_ts", f"timestamp is a boolean: {value!r}")
        elif isinstance(value, datetime):
            dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        elif isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise Reject("bad_ts", f"timestamp is not finite: {value!r}")
            dt = epoch_to_datetime(value)
        elif isinstance(value, str):
            s = value.strip()
            if _NUMERIC.fullmatch(s):
                dt = epoch_to_datetime(float(s))
            else:
                if s.endswith(("z", "Z")):
                    s = s[:-1] + "+00:00"
                s = s.replace(" UTC", "+00:00")
                dt = datetime.fromisoformat(s)
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=timezone.utc)
        else:
            raise Reject("bad_ts", f"timestamp has type {type(value).__name__}")
        dt = dt.astimezone(timezone.utc)
    except Reject:
        raise
    except (ValueError, OverflowError, OSError) as exc:
        raise Reject("bad_ts", f"unparseable timestamp {str(value)[:80]!r}") from exc
    if not (TS_MIN <= dt < TS_MAX):
        raise Reject("bad_ts", f"timestamp out of range: {str(value)[:80]!r}")
    return dt


def content_text(content) -> str | None:
    """The text of a message ``content``: a string, or a list of parts."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                t = part.get("text", part.get("content"))
                if isinstance(t, str):
                    texts.append(t)
                elif isinstance(t, list):
                    sub = content_text(t)
                    if sub:
                        texts.append(sub)
        return "\n".join(texts) if texts else None
    if isinstance(content, dict):
        return content_text([content])
    return str(content)


def flatten_messages(messages, roles=("user",)) -> str | None:
    """The text of the messages with the given roles, joined by newlines.

    Accepts OpenAI-style ``{role, content}`` messages and OTel GenAI
    ``{role, parts: [{type, content}]}`` messages; a message without a role
    counts as a user turn.
    """
    if messages is None:
        return None
    if isinstance(messages, str):
        return messages if "user" in roles else None
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list):
        return None
    out = []
    for m in messages:
        if isinstance(m, str):
            if "user" in roles:
                out.append(m)
            continue
        if not isinstance(m, dict):
            continue
        role = m.get("role") or "user"
        if role not in roles and str(role).lower() not in roles:  # the role as sent is usually lower case already
            continue
        text = content_text(m.get("content"))
        if text is None and "parts" in m:
            text = content_text(m.get("parts"))
        if text is None and "message" in m and isinstance(m["message"], dict):
            text = content_text(m["message"].get("content"))
        if text:
            out.append(text)
    return "\n".join(out) if out else None


def _as_string(field: str, v):
    if v is None:
        return None
    if isinstance(v, str):
        return v if v != "" else None
    if isinstance(v, bool):
        raise Reject("wrong_type", f"{field} must be a string, got a boolean")
    if isinstance(v, (int, float)):
        return str(v)
    if field in ("prompt", "system_prompt", "response") and isinstance(v, (list, dict)):
        roles = ("system", "developer") if field == "system_prompt" else (
            ("assistant",) if field == "response" else ("user",))
        text = flatten_messages(v, roles=roles)
        if text is None and field == "response":
            text = flatten_messages(v, roles=("assistant", "user"))
        return text
    raise Reject("wrong_type", f"{field} must be a string, got {type(v).__name__}")


def _as_int(field: str, v):
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise Reject("wrong_type", f"{field} must be a non-negative integer, got a boolean")
    if isinstance(v, int):
        i = v
    elif isinstance(v, float):
        if not math.isfinite(v) or v != int(v):
            raise Reject("wrong_type", f"{field} must be a non-negative integer, got {v!r}")
        i = int(v)
    elif isinstance(v, str):
        s = v.strip()
        try:
            i = int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                raise Reject("wrong_type", f"{field} must be a non-negative integer, got {v[:40]!r}") from None
            if not math.isfinite(f) or f != int(f):
                raise Reject("wrong_type", f"{field} must be a non-negative integer, got {v[:40]!r}") from None
            i = int(f)
    else:
        raise Reject("wrong_type", f"{field} must be a non-negative integer, got {type(v).__name__}")
    if i < 0:
        raise Reject("negative_value", f"{field} must be >= 0, got {i}")
    if i >= INT_LIMIT:
        raise Reject("wrong_type", f"{field} is too large: {i}")
    return i


def _as_float(field: str, v):
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise Reject("wrong_type", f"{field} must be a number, got a boolean")
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            raise Reject("wrong_type", f"{field} must be a number, got {v[:40]!r}") from None
    else:
        raise Reject("wrong_type", f"{field} must be a number, got {type(v).__name__}")
    if not math.isfinite(f):
        raise Reject("wrong_type", f"{field} must be a finite number, got {v!r}")
    return f


def _as_bool(field: str, v):
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise Reject("wrong_type", f"{field} must be a boolean, got {str(v)[:40]!r}")


def _status(v):
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise Reject("wrong_type", "status must be a string, got a boolean")
    if isinstance(v, float) and not math.isfinite(v):
        raise Reject("wrong_type", f"status must be a string or an HTTP status code, got {v!r}")
    if isinstance(v, (int, float)) or (isinstance(v, str) and v.strip().isdigit()):
        code = int(float(v))
        if code == RATE_LIMITED_HTTP:
            return "rate_limited"
        return "ok" if code in OK_HTTP else "error"
    if not isinstance(v, str):
        raise Reject("wrong_type", f"status must be a string, got {type(v).__name__}")
    s = v.strip().lower()
    return STATUS_SYNONYMS.get(s, s)


def _reasoning_effort(field: str, v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):  # a thinking budget in tokens
        return str(_as_int("thinking_budget", v))
    return _as_string(field, v)


_ORDER = {f: i for i, f in enumerate(CHECK_ORDER)}
_COERCE_BY_KIND = {"string": _as_string, "status": lambda _f, v: _status(v), "reasoning_effort": _reasoning_effort,
                   "int": _as_int, "float": _as_float, "bool": _as_bool}
_COERCE = {f: _COERCE_BY_KIND[k] for f, k in KIND.items() if k != "ts"}
_ABSENT = dict.fromkeys(CHECK_ORDER)
# The values each rule above returns as they are (a clean mapper's output): the Python type, plus the range
# of ``int`` and ``float`` and the canonical status words. A record whose fields all are such values skips
# the coercions (same result, no call per field); any other value sends the record through them.
_KEPT_TYPE = {f: {"int": int, "float": float, "bool": bool, "ts": None}.get(k, str) for f, k in KIND.items()}
_KEPT_TYPE["identity"] = None  # normalize_fields' subject candidates: not a field (checked by the subject rule)
_KEPT_STATUS = frozenset(s for s in STATUS_SYNONYMS.values() if STATUS_SYNONYMS.get(s) == s)


def _kept_as_is(raw: dict) -> bool:
    """Whether every field of ``raw`` but ``ts`` is absent (None) or a value its rule returns unchanged."""
    for f, v in raw.items():
        t = _KEPT_TYPE[f]
        if type(v) is not t:
            if t is None or v is None:
                continue
            return False
        if t is str:
            if not v or (f == "status" and v not in _KEPT_STATUS):
                return False
        elif t is int:
            if not 0 <= v < INT_LIMIT:
                return False
        elif t is float and not math.isfinite(v):
            return False
    return True


def normalize(record, extra: dict | None = None) -> dict:
    """One input record (a dict) -> a canonical event dict, or :class:`Reject`.

    Keys match case-insensitively onto canonical names and their aliases
    (canonical spelling first); unknown keys are kept in ``extra`` (a JSON
    object text). ``event_id`` is left ``None`` when absent: it is derived
    from the content later, in one place (:data:`~distillguard.ingest.sqlfast.EVENT_ID_SQL`).
    """
    if not isinstance(record, dict):
        raise Reject("not_an_object", f"record is a JSON {type(record).__name__}, not an object")
    found: dict[str, tuple[int, object]] = {}
    unknown: dict = dict(extra) if extra else {}
    carried: dict = {}
    identity = None
    for key, value in record.items():
        hit = KEY_RANK.get(key)  # canonical names and lower-case aliases, the common case: no lower()
        if hit is None:
            k = key.lower() if isinstance(key, str) else str(key)
            hit = KEY_RANK.get(k)
            if hit is not None:
                hit = (hit[0], hit[1] + 1)  # the same key in another case ranks after it
        else:
            k = key
        if hit is None:
            if k == "identity" and isinstance(value, dict):  # gateway identities: the subject rule picks
                identity = {s: value[s] for s in SOURCES if value.get(s) not in (None, "")}
                continue
            if k == "extra" and value is not None:
                ex = value
                if isinstance(ex, str):
                    try:
                        ex = orjson.loads(ex)
                    except orjson.JSONDecodeError:
                        ex = value
                if isinstance(ex, dict):  # an exported ``extra`` column: its keys come back as unknown fields
                    carried.update(ex)
                    continue
            elif k == "extra":
                continue
            unknown[key] = value
            continue
        if value is None or (isinstance(value, str) and value == ""):
            continue
        field, rank = hit
        prev = found.get(field)
        if prev is None or rank < prev[0]:
            found[field] = (rank, value)
    if carried:
        unknown = {**carried, **unknown}  # top-level unknown fields win over carried ones
    return _canonical({f: v for f, (_, v) in found.items()}, identity, unknown)


def normalize_fields(fields: dict, extra: dict | None = None) -> dict:
    """:func:`normalize` for a record keyed by canonical field names only, plus an ``identity`` dict (what
    the OTLP mapping builds): no key matching, the same checks and result."""
    ident = fields.get("identity")
    identity = {s: ident[s] for s in SOURCES if ident.get(s) not in (None, "")} if isinstance(ident, dict) else None
    unknown = dict(extra) if extra else {}
    if _kept_as_is(fields):  # the mapper's usual output: the fields as they are
        out = dict(_ABSENT)
        out.update(fields)
        if len(out) > len(_ABSENT):  # "identity", the one key not a field, came last: popped without a hole
            out.popitem()
        out["ts"] = parse_ts(fields.get("ts"))
        return _subject(out, identity, unknown)
    raw = {f: v for f, v in fields.items() if v is not None and not (isinstance(v, str) and v == "")}
    raw.pop("identity", None)
    return _canonical(raw, identity, unknown)


def _canonical(raw: dict, identity: dict | None, unknown: dict) -> dict:
    """Matched fields -> the canonical event: each given field checked, the subject chosen, ``extra`` written."""
    out = dict(_ABSENT)  # a field not given is None: only the given ones are checked, in the order of _ORDER
    ts = parse_ts(raw.get("ts"))
    if _kept_as_is(raw):
        out.update(raw)
    else:
        for f in sorted(raw, key=_ORDER.__getitem__) if len(raw) > 1 else raw:
            if f != "ts":
                out[f] = _COERCE[f](f, raw[f])
    out["ts"] = ts
    if "system_prompt" not in raw and isinstance(raw.get("prompt"), list):
        out["system_prompt"] = flatten_messages(raw["prompt"], roles=("system", "developer"))
    return _subject(out, identity, unknown)


def _subject(out: dict, identity: dict | None, unknown: dict) -> dict:
    """The checked event with its subject chosen (the rule of :mod:`distillguard.subject`) and ``extra`` written."""
    if identity:
        if not out.get("account_id"):
            out["account_id"] = choose(identity)
        if not out.get("api_key_id") and identity.get("key") is not None:
            out["api_key_id"] = str(identity["key"])
        unknown["identity"] = identity
    if not out.get("account_id"):
        out["account_id"] = out.get("api_key_id")
    if not out.get("account_id"):
        raise Reject("missing_subject", "no account_id and no api_key_id")
    out["extra"] = orjson.dumps(unknown, default=str).decode() if unknown else None
    return out


def rows_to_batch(rows: list[dict]) -> pa.RecordBatch:
    """Canonical dicts -> an Arrow batch in :data:`EVENT_SCHEMA` (event_id may be null)."""
    cols = {f.name: [r.get(f.name) for r in rows] for f in EVENT_SCHEMA}
    arrays = []
    for f in EVENT_SCHEMA:
        t = pa.string() if f.name == "event_id" else f.type
        arrays.append(pa.array(cols[f.name], type=t))
    fields = [pa.field(f.name, f.type, nullable=f.name != "event_id" and f.nullable) if f.name != "event_id"
              else pa.field("event_id", pa.string()) for f in EVENT_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
