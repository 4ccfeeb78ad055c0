"""The checks of canonical JSONL records, shared by the block-by-block reader
(:mod:`distillguard.ingest.jsonl`) and the whole-file path (:mod:`distillguard.ingest.jsonl_stream`):
the normalisation SQL for a set of top-level keys, and the reference for one line."""
from __future__ import annotations

import json
from functools import lru_cache

import orjson

from distillguard.ingest.base import Quarantined, truncate_raw
from distillguard.ingest.fields import FIELD_KEYS, KEY_TO_FIELD
from distillguard.ingest.normalize import Reject, normalize
from distillguard.ingest.sqlfast import Col, lit, normalize_sql, q

__all__ = ["chunk_sql", "python_record"]


@lru_cache(maxsize=64)
def chunk_sql(keys: tuple[str, ...], source: str = "_lines", parsed: bool = False) -> str | None:
    """The normalisation SQL for lines that use exactly these top-level keys.

    Keys map case-insensitively onto canonical fields (exact canonical spelling
    first); ``None`` when two keys differ only in case (DuckDB struct names are
    case-insensitive), in which case the lines go through Python. ``source``
    has the text of each line as ``line``; or, when ``parsed``, the line
    already parsed into a struct ``_t`` of VARCHAR values (DuckDB's
    ``read_json`` with these columns), and ``None`` is returned when the keys
    need the line itself (unknown keys are cut out of it into ``extra``).
    """
    lowered = [k.lower() for k in keys]
    if len(set(lowered)) != len(lowered):
        return None
    known = [k for k in keys if k.lower() in KEY_TO_FIELD]
    unknown = [k for k in keys if k.lower() not in KEY_TO_FIELD]
    carried = [k for k in unknown if k.lower() == "extra"]
    raw = "NULL" if parsed else "line"
    cols: dict[str, list[Col]] = {}
    for k in sorted(known, key=lambda k: (FIELD_KEYS[KEY_TO_FIELD[k.lower()]].index(k.lower()), k != k.lower())):
        cols.setdefault(KEY_TO_FIELD[k.lower()], []).append(Col(f"_t.{q(k)}", "json"))
    if carried and len(unknown) == 1:
        # only an exported ``extra`` (JSON object text or object): keep it, normalised, on the fast path
        e = f"_t.{q(carried[0])}"
        pre = _parse(known + carried, parsed)
        extra = (f"CASE WHEN {e} IS NULL THEN NULL ELSE "
                 f"nullif(CAST(TRY(json_merge_patch('{{}}', json({e}))) AS VARCHAR), '{{}}') END")
        extra_ok = (f"_t IS NOT NULL AND ({e} IS NULL OR (starts_with(ltrim({e}), '{{') "
                    f"AND TRY(json_valid({e})) AND NOT contains({e}, ':null')))")
        return normalize_sql(source, cols, extra_sql=extra, extra_ok=extra_ok, pre=pre, raw=raw)
    pre = _parse(known, parsed)
    if not unknown:
        extra, extra_ok = "NULL", "_t IS NOT NULL"
    elif parsed:
        return None
    else:
        klist = "[" + ", ".join(lit(k) for k in known) + "]"
        patch = json.dumps({k: None for k in known})
        pre += ", TRY(json_keys(line)) AS _k"
        extra = f"CASE WHEN list_has_all({klist}, _k) THEN NULL ELSE TRY(json_merge_patch(line, {lit(patch)})) END"
        extra_ok = "_t IS NOT NULL AND _k IS NOT NULL"
        if any(k.lower() == "extra" for k in unknown):
            extra_ok += " AND NOT list_contains(list_transform(_k, lambda x: lower(x)), 'extra')"
    return normalize_sql(source, cols, extra_sql=extra, extra_ok=extra_ok, pre=pre, raw=raw)


def _parse(keys: list[str], parsed: bool) -> str:
    """The select item parsing ``line`` into the struct ``_t`` (nothing when the source did it)."""
    if parsed:
        return ""
    struct = json.dumps({k: "VARCHAR" for k in keys} or {"__none__": "VARCHAR"})
    return f"TRY(json_transform(line, {lit(struct)})) AS _t"


def python_record(source: str, line_no: int, raw: bytes | str | None):
    """Normalise one JSON line in Python: a canonical dict or a :class:`Quarantined`."""
    try:
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Reject("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
        if int(line_no) == 1 and isinstance(raw, str) and raw.startswith("\ufeff"):
            raw = raw[1:]  # a UTF-8 byte order mark some editors and exporters put before the first record
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Reject("invalid_json", str(exc).splitlines()[0][:200]) from None
        return normalize(obj)
    except Reject as rej:
        return Quarantined(source, int(line_no), rej.reason, truncate_raw(raw), rej.detail)
