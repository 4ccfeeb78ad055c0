"""What the record-at-a-time readers share (smaller-volume formats: :mod:`.litellm`, :mod:`.openai_log`, :mod:`.otlp`).

Each reader maps one source record onto a flat dict of canonical names (plus an
``extra`` dict of unknown fields) and hands it to
:func:`~distillguard.ingest.normalize.normalize`, so validation and quarantine
reasons are the same as for canonical events. Here: JSON records of a file
(JSON lines, a JSON array, one document), CSV rows, the batching of mapped
records, and a model response's text. Records are parsed with orjson.
"""
from __future__ import annotations

import csv
import gzip
import io
from typing import Callable, Iterator

import orjson

from distillguard.ingest.base import Quarantined, ReadBatch, truncate_raw
from distillguard.ingest.normalize import Reject, flatten_messages, normalize, rows_to_batch
from distillguard.ingest.sqlfast import connect, fill_event_ids

__all__ = ["iter_json_records"]

BATCH = 5000


def _open_text(path: str):
    if path.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _loads(text: str):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if any("\udc80" <= ch <= "\udcff" for ch in text):
            raise Reject("invalid_utf8", "the record is not valid UTF-8") from None
        raise Reject("invalid_json", str(exc).splitlines()[0][:200]) from None
    except TypeError:
        raise Reject("invalid_utf8", "the record is not valid UTF-8") from None


def _surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def iter_json_records(path: str) -> Iterator[tuple[int, object, str]]:
    """(line, parsed value or Reject, raw text) for each record of a JSON file.

    The file is JSON lines, or one JSON document (an object, or an array of
    records) spread over several lines, as exporters write them.
    """
    with _open_text(path) as fh:
        text = fh.read()
    stripped = text.lstrip()
    if not stripped:
        return
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), 0)
    whole = None
    try:
        orjson.loads(lines[first])
    except orjson.JSONDecodeError:
        try:
            whole = orjson.loads(text)
        except orjson.JSONDecodeError:
            whole = None
    if whole is None and stripped[0] == "[":
        try:
            whole = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    if whole is not None:
        line0 = first + 1
        if isinstance(whole, list):
            for i, rec in enumerate(whole):
                yield line0 + i, rec, ""
        else:
            yield line0, whole, ""
        return
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        if _surrogates(ln):
            yield i + 1, Reject("invalid_utf8", "the line is not valid UTF-8"), ln.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            continue
        try:
            yield i + 1, _loads(ln), ln
        except Reject as rej:
            yield i + 1, rej, ln


def _collect(source: str, items: Iterator[tuple[int, object, str]], mapper: Callable) -> Iterator[ReadBatch]:
    """Map and normalise records in batches of :data:`BATCH`."""
    con = connect()
    rows: list[dict] = []
    bad: list[Quarantined] = []

    def flush():
        events = fill_event_ids(con, rows_to_batch(rows)) if rows else ReadBatch().events
        out = ReadBatch(events=events, quarantined=list(bad))
        rows.clear()
        bad.clear()
        return out

    try:
        for line, obj, raw in items:
            try:
                if isinstance(obj, Reject):
                    raise obj
                for rec, extra in mapper(obj):
                    if isinstance(rec, Reject):  # a mapper's verdict on one part of a document
                        bad.append(Quarantined(source, line, rec.reason, truncate_raw(extra), rec.detail))
                        continue
                    try:
                        rows.append(normalize(rec, extra))
                    except Reject as rej:
                        bad.append(Quarantined(source, line, rej.reason, truncate_raw(raw or rec), rej.detail))
            except Reject as rej:
                bad.append(Quarantined(source, line, rej.reason, truncate_raw(raw or obj), rej.detail))
            if len(rows) + len(bad) >= BATCH:
                yield flush()
        if rows or bad:
            yield flush()
    finally:
        con.close()


def _jsonish(v):
    """Parse a JSON text value (CSV cells, OTLP string attributes); other values unchanged."""
    if isinstance(v, str) and v[:1] in ("{", "["):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


# --------------------------------------------------------------------------- LiteLLM
def _response_text(resp):
    resp = _jsonish(resp)
    if resp is None or isinstance(resp, str):
        return resp or None
    if isinstance(resp, dict):
        if isinstance(resp.get("choices"), list):
            texts = []
            for ch in resp["choices"]:
                if not isinstance(ch, dict):
                    continue
                msg = ch.get("message") or ch.get("delta") or {}
                t = flatten_messages([{"role": "assistant", **msg}], roles=("assistant",)) if isinstance(msg, dict) else None
                t = t or ch.get("text")
                if t:
                    texts.append(t)
            return "\n".join(texts) or None
        if isinstance(resp.get("output"), list):
            texts = []
            for item in resp["output"]:
                if isinstance(item, dict) and item.get("type", "message") == "message":
                    t = flatten_messages([{"role": "assistant", "content": item.get("content")}], roles=("assistant",))
                    if t:
                        texts.append(t)
            return "\n".join(texts) or resp.get("output_text") or None
        if isinstance(resp.get("output_text"), str):
            return resp["output_text"]
        if isinstance(resp.get("content"), (str, list)):
            return flatten_messages([{"role": "assistant", "content": resp["content"]}], roles=("assistant",))
        return None
    if isinstance(resp, list):
        return flatten_messages(resp, roles=("assistant",))
    return str(resp)


def _csv_records(path: str) -> Iterator[tuple[int, object, str]]:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    yield line, Reject("bad_csv_row", "more values than header columns"), str(row)
                    continue
                if any(_surrogates(v) for v in row.values() if isinstance(v, str)):
                    yield line, Reject("invalid_utf8", "a value is not valid UTF-8"), str(row)
                    continue
                yield line, row, ""
        except csv.Error as exc:
            yield reader.line_num, Reject("bad_csv_row", str(exc)), ""
