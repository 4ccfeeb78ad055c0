"""Record-at-a-time readers (smaller-volume formats): LiteLLM spend logs, OpenAI logs (OTLP: :mod:`.otlp`).

Each maps one source record onto a flat dict of canonical names (plus an
``extra`` dict of unknown fields) and hands it to
:func:`~distillguard.ingest.normalize.normalize`, so validation and quarantine
reasons are the same as for canonical events. Records are parsed with orjson.
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Callable, ClassVar, Iterator

import orjson

from distillguard.errors import UsageError
from distillguard.ingest.base import Quarantined, ReadBatch, truncate_raw
from distillguard.ingest.normalize import Reject, flatten_messages, normalize, rows_to_batch
from distillguard.ingest.sqlfast import connect, fill_event_ids
from distillguard.request_params import OPENAI_REQUEST_PARAMS

__all__ = ["LiteLLMSource", "OpenAILogSource", "iter_json_records", "map_litellm", "map_openai"]

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
_LITELLM = {
    "request_id": "event_id", "starttime": "ts", "api_key": "api_key_id", "model": "model",
    "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens", "requester_ip_address": "client_ip",
    "team_id": "org_id", "organization_id": "org_id", "session_id": "conversation_id", "status": "status",
}


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


def map_litellm(row: dict):
    """One ``LiteLLM_SpendLogs`` row -> (record, extra). Missing columns are fine."""
    if not isinstance(row, dict):
        raise Reject("not_an_object", f"record is a JSON {type(row).__name__}, not an object")
    low = {str(k).lower(): (None if v == "" else v) for k, v in row.items()}
    rec: dict = {}
    extra: dict = {}
    for k, v in low.items():
        if k in _LITELLM:
            rec[_LITELLM[k]] = v
    if low.get("model_group"):  # the name callers ask for; ``model`` is the deployment
        rec["model"] = low["model_group"]
        if low.get("model"):
            extra["deployment_model"] = low["model"]
    meta = _jsonish(low.get("metadata"))
    meta = meta if isinstance(meta, dict) else {}
    body = _jsonish(low.get("proxy_server_request"))
    if isinstance(body, dict):
        body = body.get("body", body) if isinstance(body.get("body"), dict) else body
    else:
        body = {}
    # the candidates of the one subject rule (distillguard.subject); the key is also api_key_id
    rec["identity"] = {"end_user": low.get("end_user") or meta.get("user_api_key_end_user_id") or body.get("user"),
                       "key_user": low.get("user") or meta.get("user_api_key_user_id"),
                       "key": low.get("api_key") or meta.get("user_api_key_hash")}
    if meta:
        if not rec.get("org_id"):
            rec["org_id"] = meta.get("user_api_key_team_id") or meta.get("user_api_key_org_id")
        headers = meta.get("headers") if isinstance(meta.get("headers"), dict) else {}
        ua = meta.get("user_agent") or headers.get("user-agent") or headers.get("User-Agent")
        if ua:
            rec["user_agent"] = ua
        for k in ("user_api_key_alias", "user_api_key_user_id", "status", "error_information"):
            if meta.get(k) not in (None, "", {}):
                extra[f"metadata.{k}"] = meta[k]
    for k, field in OPENAI_REQUEST_PARAMS.items():
        if body.get(k) is not None and rec.get(field) is None:
            rec[field] = body[k]
    msgs = _jsonish(low.get("messages"))
    if msgs in (None, "", [], {}):  # LiteLLM 1.106 stores '{}' here: the prompt is in the request body
        msgs = body.get("messages", body.get("input", body.get("prompt")))
    if msgs not in (None, "", [], {}):
        if isinstance(msgs, dict) and "messages" in msgs:
            msgs = msgs["messages"]
        rec["prompt"] = msgs if isinstance(msgs, str) else flatten_messages(msgs, roles=("user", "tool"))
        if not isinstance(msgs, str):
            rec["system_prompt"] = flatten_messages(msgs, roles=("system", "developer"))
    rec["response"] = _response_text(low.get("response"))
    st = rec.get("status")
    if st is None and meta.get("status"):
        rec["status"] = meta["status"]
    skip = set(_LITELLM) | {"end_user", "user", "metadata", "proxy_server_request", "messages", "response",
                            "model_group"}
    for k, v in row.items():
        if str(k).lower() not in skip and v not in (None, ""):
            extra[k] = v
    return [(rec, extra)]


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


class LiteLLMSource:
    """LiteLLM proxy spend logs (``LiteLLM_SpendLogs`` rows) as CSV, JSON or JSONL.

    The subject follows the subject rule over ``end_user``, ``user`` (the key's user) and the
    hashed ``api_key`` (:mod:`distillguard.subject`).
    """

    name: ClassVar[str] = "litellm"

    def read(self, path: str) -> Iterator[ReadBatch]:
        p = str(path)
        items = _csv_records(p) if p.lower().endswith((".csv", ".csv.gz")) else iter_json_records(p)
        yield from _collect(p, items, map_litellm)


# --------------------------------------------------------------------------- OpenAI
_TOP = {
    "request_id": "event_id", "id": "event_id", "event_id": "event_id", "custom_id": "event_id",
    "timestamp": "ts", "ts": "ts", "time": "ts", "created_at": "ts", "start_time": "ts",
    "account_id": "account_id", "user_id": "account_id", "end_user_id": "account_id", "user": "account_id",
    "api_key_id": "api_key_id", "api_key": "api_key_id", "key_id": "api_key_id",
    "org_id": "org_id", "organization": "org_id", "organization_id": "org_id", "project_id": "org_id",
    "client_ip": "client_ip", "ip": "client_ip", "user_agent": "user_agent",
    "conversation_id": "conversation_id", "session_id": "conversation_id",
    "is_batch": "is_batch", "status": "status", "status_code": "status",
}
_BODY = {"model": "model", **OPENAI_REQUEST_PARAMS}
_BODY_SKIP = set(_BODY) | {"messages", "input", "prompt", "instructions", "user", "safety_identifier", "reasoning",
                           "metadata"}


def map_openai(rec: dict):
    """One ``{request, response}`` log record -> (record, extra)."""
    if not isinstance(rec, dict):
        raise Reject("not_an_object", f"record is a JSON {type(rec).__name__}, not an object")
    req = rec.get("request")
    if not isinstance(req, dict):
        raise Reject("wrong_type", "request must be an object")
    body = req.get("body") if isinstance(req.get("body"), dict) else req
    resp = rec.get("response")
    if resp is not None and not isinstance(resp, dict):
        raise Reject("wrong_type", "response must be an object")
    resp = resp or {}
    rbody = resp.get("body") if isinstance(resp.get("body"), dict) else resp
    out: dict = {}
    extra: dict = {}
    for k, v in rec.items():
        field = _TOP.get(str(k).lower())
        if field and v not in (None, ""):
            out.setdefault(field, v)
        elif k not in ("request", "response", "batch_id", "batch"):
            extra[k] = v
    if rec.get("batch_id") or rec.get("batch"):
        out.setdefault("is_batch", True)
        if rec.get("batch_id"):
            extra["batch_id"] = rec["batch_id"]
    out.setdefault("event_id", rbody.get("id"))
    if "ts" not in out and rbody.get("created") is not None:
        out["ts"] = rbody.get("created")
    if "ts" not in out and rbody.get("created_at") is not None:
        out["ts"] = rbody.get("created_at")
    if not out.get("account_id"):
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        out["account_id"] = body.get("safety_identifier") or body.get("user") or meta.get("user_id") or None
    for k, field in _BODY.items():
        if body.get(k) is not None:
            out.setdefault(field, body[k])
    if "model" not in out and rbody.get("model"):
        out["model"] = rbody["model"]
    if isinstance(body.get("reasoning"), dict) and body["reasoning"].get("effort"):
        out.setdefault("reasoning_effort", body["reasoning"]["effort"])
    msgs = body.get("messages", body.get("input", body.get("prompt")))
    if msgs is not None:
        out["prompt"] = msgs if isinstance(msgs, str) else flatten_messages(msgs, roles=("user", "tool"))
        sys = None if isinstance(msgs, str) else flatten_messages(msgs, roles=("system", "developer"))
        if body.get("instructions"):
            sys = body["instructions"] + ("\n" + sys if sys else "")
        out["system_prompt"] = sys
    elif body.get("instructions"):
        out["system_prompt"] = body["instructions"]
    for k, v in body.items():
        if k not in _BODY_SKIP and isinstance(v, (str, int, float, bool)):
            extra[f"request.{k}"] = v
    out["response"] = _response_text(rbody)
    usage = rbody.get("usage") if isinstance(rbody.get("usage"), dict) else {}
    for src, field in (("prompt_tokens", "input_tokens"), ("input_tokens", "input_tokens"),
                       ("completion_tokens", "output_tokens"), ("output_tokens", "output_tokens")):
        if usage.get(src) is not None:
            out.setdefault(field, usage[src])
    for det in ("completion_tokens_details", "output_tokens_details"):
        d = usage.get(det)
        if isinstance(d, dict) and d.get("reasoning_tokens") is not None:
            out.setdefault("reasoning_tokens", d["reasoning_tokens"])
    if "status" not in out:
        code = resp.get("status_code")
        if rbody.get("error") or resp.get("error"):
            err = rbody.get("error") or resp.get("error")
            etype = err.get("type", "") if isinstance(err, dict) else str(err)
            out["status"] = "rate_limited" if code == 429 or "rate_limit" in str(etype) else "error"
        elif code is not None:
            out["status"] = code
        else:
            choices = rbody.get("choices") if isinstance(rbody.get("choices"), list) else []
            refused = any(isinstance(c, dict) and (c.get("finish_reason") == "content_filter" or (
                isinstance(c.get("message"), dict) and c["message"].get("refusal"))) for c in choices)
            out["status"] = "refused" if refused else ("ok" if rbody else None)
    return [(out, extra)]


class OpenAILogSource:
    """OpenAI-style request/response logs: JSONL records ``{request: {...}, response: {...}}``.

    Chat Completions and Responses API bodies both map; top-level fields
    (``timestamp``, ``account_id``, ``api_key_id``, ``client_ip``...) win over
    the ones in the bodies.
    """

    name: ClassVar[str] = "openai"

    def read(self, path: str) -> Iterator[ReadBatch]:
        yield from _collect(str(path), iter_json_records(str(path)), map_openai)
