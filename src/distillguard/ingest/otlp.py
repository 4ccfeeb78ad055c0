"""OTLP traces and logs as SDKs and collectors send them: one event per model call.

Both encodings (protobuf, decoded with ``opentelemetry-proto``; OTLP/JSON)
become the same :class:`Item` list. :func:`model_records` then joins, by span
id, what producers spread over several places (docs/ingest.md, "OTLP"):

- the model-call span (OTel GenAI old and new names, OpenInference, openllmetry, LiteLLM ``litellm_request``);
- span events and log records carrying the content (``gen_ai.user.message``, ``gen_ai.choice``...,
  ``gen_ai.client.inference.operation.details``), matched on trace and span id;
- LiteLLM's ``raw_gen_ai_request`` child span, whose request parameters (n, logprobs...) fill its
  parent's: it is never an event of its own, so nothing is counted twice.

Spans that are not model calls (HTTP, database, framework) are skipped and not counted.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import ClassVar, Iterator

import orjson

from distillguard.errors import UsageError
from distillguard.ingest.base import ReadBatch
from distillguard.ingest.normalize import Reject, flatten_messages
from distillguard.ingest.records import _collect, _jsonish, iter_json_records
from distillguard.request_params import OPENAI_REQUEST_PARAMS
from distillguard.schema import FLOAT_FIELDS, INT_FIELDS

__all__ = ["Item", "decode", "decode_pb", "items_from_json", "model_records", "is_model_item", "OtlpSource", "IDENTITY_ATTRS",
           "OTLP_FIELDS", "CONTENT_EVENTS"]

TRACES, LOGS = "traces", "logs"
RAW_REQUEST_SPANS = frozenset({"raw_gen_ai_request"})  # LiteLLM: the provider request under litellm_request
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# older per-message events (span events or log records) -> (side, role)
CONTENT_EVENTS = {
    "gen_ai.system.message": ("input", "system"), "gen_ai.user.message": ("input", "user"),
    "gen_ai.assistant.message": ("input", "assistant"), "gen_ai.tool.message": ("input", "tool"),
    "gen_ai.choice": ("output", "assistant"), "gen_ai.content.prompt": ("input", None),
    "gen_ai.content.completion": ("output", None), DETAILS_EVENT: (None, None),
}


@dataclass(slots=True)
class Item:
    """One span or log record, whatever the encoding (ids as lowercase hex)."""

    kind: str  # "span" or "log"
    name: str
    span_id: str
    trace_id: str
    parent_id: str
    ts: object
    status: int
    attrs: dict
    res: dict
    events: list | tuple = ()  # [(name, attrs, body)]; () when none (immutable, shared: nothing for the GC to track)
    body: object = None


# --------------------------------------------------------------------------- protobuf
def _pb_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":  # by far the most common: tested first
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return None


def _pb_attrs(kvs) -> dict:
    out = {}
    ints, floats = _INT_ATTRS, _FLOAT_ATTRS
    for kv in kvs:
        k = kv.key
        v = kv.value
        # read first the member the attribute usually holds (a non-default value tells it is the one set);
        # the oneof is asked only when that read finds nothing
        if k in ints:
            x = v.int_value
            if x:
                out[k] = x
                continue
        elif k in floats:
            x = v.double_value
            if x:
                out[k] = x
                continue
        s = v.string_value
        out[k] = s if s else _pb_value(v)
    return out


def _pb_request(raw: bytes, signal: str):
    from google.protobuf.message import DecodeError

    if signal == TRACES:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as Req
    else:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest as Req
    msg = Req()
    try:
        msg.ParseFromString(raw)
    except DecodeError as exc:
        raise Reject("bad_otlp", f"not an OTLP protobuf Export{signal.title()}ServiceRequest ({exc})") from None
    return msg


def decode_pb(raw: bytes, signal: str) -> list[Item]:
    """An ``ExportTraceServiceRequest`` or ``ExportLogsServiceRequest`` (protobuf) -> items."""
    msg = _pb_request(raw, signal)
    out: list[Item] = []
    if signal == TRACES:
        for rs in msg.resource_spans:
            res = _pb_attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    ev = s.events
                    out.append(Item("span", s.name, s.span_id.hex(), s.trace_id.hex(), s.parent_span_id.hex(),
                                    s.start_time_unix_nano or None, s.status.code, _pb_attrs(s.attributes), res,
                                    [(e.name, _pb_attrs(e.attributes), None) for e in ev] if ev else ()))
        return out
    for rl in msg.resource_logs:
        res = _pb_attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                attrs = _pb_attrs(r.attributes)
                name = r.event_name or attrs.get("event.name") or ""
                out.append(Item("log", name, r.span_id.hex(), r.trace_id.hex(), "",
                                r.time_unix_nano or r.observed_time_unix_nano or None, 0, attrs, res,
                                body=_pb_value(r.body) if r.HasField("body") else None))
    return out


# --------------------------------------------------------------------------- OTLP/JSON
def _json_value(v):
    if not isinstance(v, dict):
        return v
    for k in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        iv = v["intValue"]
        try:
            return int(iv)
        except (TypeError, ValueError):
            return iv
    if "arrayValue" in v:
        return [_json_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return {kv.get("key"): _json_value(kv.get("value")) for kv in (v["kvlistValue"] or {}).get("values", [])}
    return None


def _json_attrs(lst) -> dict:
    if isinstance(lst, dict):
        return dict(lst)
    return {kv["key"]: _json_value(kv.get("value")) for kv in lst or [] if isinstance(kv, dict) and "key" in kv}


def _ns(v):
    return int(v) if isinstance(v, str) and v.isdigit() else v


def _status_code(status) -> int:
    code = status.get("code") if isinstance(status, dict) else None
    return 2 if code in (2, "2", "STATUS_CODE_ERROR") else 0


def items_from_json(doc) -> list[Item]:
    """An OTLP/JSON traces or logs document (``resourceSpans`` / ``resourceLogs``) -> items."""
    if not isinstance(doc, dict):
        raise Reject("not_an_object", f"record is a JSON {type(doc).__name__}, not an object")
    spans = doc.get("resourceSpans", doc.get("resource_spans"))
    logs = doc.get("resourceLogs", doc.get("resource_logs"))
    if not isinstance(spans, list) and not isinstance(logs, list):
        raise Reject("wrong_type", "an OTLP/JSON document needs a resourceSpans or resourceLogs list")
    out: list[Item] = []
    for rs in spans if isinstance(spans, list) else []:
        if not isinstance(rs, dict):
            continue
        res = _json_attrs((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans", rs.get("scope_spans", rs.get("instrumentationLibrarySpans"))) or []:
            for s in (ss or {}).get("spans") or []:
                if not isinstance(s, dict):
                    continue
                events = [(e.get("name") or "", _json_attrs(e.get("attributes")), None)
                          for e in s.get("events") or [] if isinstance(e, dict)]
                out.append(Item("span", s.get("name") or "", s.get("spanId") or "", s.get("traceId") or "",
                                s.get("parentSpanId") or "", _ns(s.get("startTimeUnixNano")),
                                _status_code(s.get("status")), _json_attrs(s.get("attributes")), res, events))
    for rl in logs if isinstance(logs, list) else []:
        if not isinstance(rl, dict):
            continue
        res = _json_attrs((rl.get("resource") or {}).get("attributes"))
        for sl in rl.get("scopeLogs", rl.get("scope_logs")) or []:
            for r in (sl or {}).get("logRecords", (sl or {}).get("log_records")) or []:
                if not isinstance(r, dict):
                    continue
                attrs = _json_attrs(r.get("attributes"))
                name = r.get("eventName") or attrs.get("event.name") or ""
                ts = _ns(r.get("timeUnixNano")) or _ns(r.get("observedTimeUnixNano"))
                body = _json_value(r["body"]) if isinstance(r.get("body"), dict) and r["body"] else None
                out.append(Item("log", name, r.get("spanId") or "", r.get("traceId") or "", "", ts or None, 0,
                                attrs, res, body=body))
    return out


def decode(raw: bytes, content_type: str, signal: str) -> list[Item]:
    """An OTLP/HTTP request body (``application/x-protobuf`` or ``application/json``) -> items."""
    if content_type == "application/x-protobuf":
        return decode_pb(raw, signal)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Reject("invalid_json", str(exc).splitlines()[0][:200]) from None
    return items_from_json(doc)


# --------------------------------------------------------------------------- mapping
OTLP_FIELDS: dict[str, list[str]] = {
    "model": ["litellm.model_group", "gen_ai.request.model", "llm.model_name", "gen_ai.response.model"],
    "input_tokens": ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"],
    "output_tokens": ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"],
    "reasoning_tokens": ["gen_ai.usage.reasoning_tokens", "gen_ai.usage.output_tokens.reasoning",
                         "llm.token_count.completion_details.reasoning"],
    "n": ["gen_ai.request.choice.count"],
    "max_output_tokens": ["gen_ai.request.max_tokens"],
    "temperature": ["gen_ai.request.temperature"],
    "top_p": ["gen_ai.request.top_p"],
    "conversation_id": ["gen_ai.conversation.id", "session.id"],
    "client_ip": ["client.address", "metadata.requester_ip_address"],
    "user_agent": ["user_agent.original", "http.user_agent", "metadata.user_agent"],
    "client_fingerprint": ["client_fingerprint", "tls.client.ja3"],
    "org_id": ["gen_ai.organization.id", "organization.id", "tenant.id", "metadata.user_api_key_team_id",
               "metadata.user_api_key_org_id"],
    "reasoning_effort": ["gen_ai.request.reasoning_effort", "gen_ai.openai.request.reasoning_effort"],
    "system_prompt": ["gen_ai.system_instructions"],
}
_INT_ATTRS = frozenset(a for f, names in OTLP_FIELDS.items() if f in INT_FIELDS for a in names)
_FLOAT_ATTRS = frozenset(a for f, names in OTLP_FIELDS.items() if f in FLOAT_FIELDS for a in names)
# the candidates of the subject rule (distillguard.subject)
IDENTITY: dict[str, list[str]] = {
    "end_user": ["enduser.id", "user.id", "gen_ai.user", "llm.user", "metadata.user_api_key_end_user_id"],
    "key_user": ["metadata.user_api_key_user_id"],
    "key": ["metadata.user_api_key_hash", "gen_ai.api_key.id", "api_key.id"],
}
IDENTITY_ATTRS = tuple(a for names in IDENTITY.values() for a in names)
TRACE_CLIENT_ATTRS = tuple(OTLP_FIELDS["client_fingerprint"])
"""Client attributes a model call takes from another span of its trace when it carries none: the server
span sees the TLS handshake (semantic conventions record ``tls.client.ja3`` there), the model
instrumentation does not."""
_NO_IDENTITY = dict.fromkeys(IDENTITY)
_MESSAGE_ATTRS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt", "gen_ai.completion",
                  "llm.invocation_parameters", "input.value", "output.value")
_KNOWN = ({a for names in (*OTLP_FIELDS.values(), *IDENTITY.values()) for a in names}
          | {"gen_ai.system", "gen_ai.provider.name", "llm.provider", "llm.system", "openinference.span.kind",
             *_MESSAGE_ATTRS})
_DROPPED_PREFIXES = ("metadata.", "hidden_params")  # LiteLLM's metadata.* repeats request headers: not kept


_MODEL_ATTRS = frozenset({"gen_ai.request.model", "gen_ai.operation.name", "llm.model_name", "gen_ai.response.model",
                          "litellm.model_group"})


def is_model_item(it: Item) -> bool:
    """A model call: a GenAI / OpenInference LLM span, or a log record with the whole call's attributes."""
    a = it.attrs
    if it.kind == "span" and it.name in RAW_REQUEST_SPANS:
        return False
    kind = a.get("openinference.span.kind")
    if kind is not None:
        return kind == "LLM"
    if it.kind == "log" and it.name != DETAILS_EVENT:
        return False
    return not _MODEL_ATTRS.isdisjoint(a)


def _indexed_messages(attrs: dict, prefix: str) -> list[dict]:
    """OpenInference ``llm.input_messages.N.message.role/content`` (and old ``gen_ai.prompt.N.*``)."""
    msgs: dict[int, dict] = {}
    for k, v in attrs.items():
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix):].split(".")
        if not rest or not rest[0].isdigit():
            continue
        i = int(rest[0])
        leaf = rest[-1]
        if leaf in ("role", "content"):
            msgs.setdefault(i, {})[leaf] = v
        elif leaf == "text" and "contents" in rest:
            m = msgs.setdefault(i, {})
            m["content"] = (m.get("content") + "\n" if m.get("content") else "") + str(v)
    return [msgs[i] for i in sorted(msgs)]


def _event_message(name: str, attrs: dict, body) -> tuple[str | None, object]:
    """(side, messages) that one content event or log record adds; side None for operation details."""
    side, role = CONTENT_EVENTS[name]
    if side is None:
        return None, None
    if role is None:  # gen_ai.content.prompt / .completion: the messages as an attribute
        return side, _jsonish(attrs.get("gen_ai.prompt" if side == "input" else "gen_ai.completion"))
    payload = body if isinstance(body, dict) else {}
    if name == "gen_ai.choice":
        msg = payload.get("message") if isinstance(payload.get("message"), dict) else payload
        return side, [{"role": "assistant", "content": msg.get("content")}]
    content = payload.get("content", attrs.get("content") if body is None else body)
    return side, [{"role": payload.get("role") or role, "content": content}]


def _fill(attrs: dict, more: dict) -> None:
    for k, v in more.items():
        if k not in attrs or attrs[k] in (None, ""):
            attrs[k] = v


def _merge(model: Item, parts: list[Item], caller: dict | None = None, client: dict | None = None) -> Item:
    """The model item with what its log records, span events, raw-request child and trace add (fills, never overrides).

    ``caller``: identity attributes another span of the trace carries (the application's request span
    names the end user where the model instrumentation cannot, as with openai-v2); ``client``: the
    :data:`TRACE_CLIENT_ATTRS` of the trace's other spans.
    """
    attrs = dict(model.attrs)
    for given, names in ((caller, IDENTITY_ATTRS), (client, TRACE_CLIENT_ATTRS)):
        if given and not any(attrs.get(a) not in (None, "") for a in names):
            _fill(attrs, given)
    inputs: list = []
    outputs: list = []
    for name, eattrs, body in [*model.events, *((p.name, p.attrs, p.body) for p in parts if p.kind == "log")]:
        if name not in CONTENT_EVENTS:
            continue
        side, msgs = _event_message(name, eattrs, body)
        if side is None:
            _fill(attrs, eattrs)
        elif msgs is not None:
            (inputs if side == "input" else outputs).extend(msgs if isinstance(msgs, list) else [msgs])
    for p in parts:
        if p.kind == "span":  # LiteLLM raw_gen_ai_request: llm.<provider>.<param>
            provider = p.attrs.get("gen_ai.system") or attrs.get("gen_ai.system") or "openai"
            pre = f"llm.{provider}."
            params = {k[len(pre):]: v for k, v in p.attrs.items() if k.startswith(pre)}
            _fill(attrs, {"llm.invocation_parameters": params})
    if inputs and "gen_ai.input.messages" not in attrs:
        attrs["gen_ai.input.messages"] = inputs
    if outputs and "gen_ai.output.messages" not in attrs:
        attrs["gen_ai.output.messages"] = outputs
    return Item(model.kind, model.name, model.span_id, model.trace_id, model.parent_id, model.ts, model.status,
                attrs, model.res)


# attribute -> (field, rank, identity source or None): one pass over a span's attributes finds every
# field and subject candidate (lowest rank wins); identity entries are ranked under "identity.<source>"
_ROUTE: dict[str, tuple[str, int, str | None]] = {
    **{n: (f, r, None) for f, names in OTLP_FIELDS.items() for r, n in enumerate(names)},
    **{n: ("identity." + src, r, src) for src, names in IDENTITY.items() for r, n in enumerate(names)},
}
_INDEXED = ("llm.input_messages.", "gen_ai.prompt.", "llm.output_messages.", "gen_ai.completion.")


def _pick(d: dict, rec: dict, identity: dict, extra: dict | None = None) -> bool:
    """Fields of ``d`` (span or resource attributes) into ``rec``, subject candidates into ``identity``,
    unknown attributes into ``extra``; whether ``d`` has indexed message attributes (OpenInference, old GenAI)."""
    indexed = False
    ranks: dict = {}
    route = _ROUTE.get
    for k, v in d.items():
        hit = route(k)
        if hit is None:
            if extra is not None and k not in _KNOWN:
                if k.startswith(_INDEXED):
                    indexed = True
                elif not k.startswith(_DROPPED_PREFIXES):
                    extra[k] = v
            continue
        if v is None or v == "":
            continue
        f, r, src = hit
        prev = ranks.get(f)
        if prev is None or r < prev:
            ranks[f] = r
            if src is None:
                rec[f] = v
            else:
                identity[src] = v
    return indexed


def _messages(attrs: dict, indexed: bool, current: str, old: str, openinference: str):
    """One side's messages: the current GenAI attribute, the old one, or indexed attributes."""
    msgs = attrs.get(current)
    if msgs is not None:
        msgs = _jsonish(msgs)
    else:
        msgs = attrs.get(old)
        if msgs is not None:
            msgs = _jsonish(msgs)
    if msgs is None and indexed:
        msgs = _indexed_messages(attrs, openinference) or _indexed_messages(attrs, old + ".") or None
    return msgs


_last_resource: tuple[dict, dict, dict] = ({}, {}, {})  # (resource attributes, fields, identity): a batch's spans share one


def _resource_fields(res: dict) -> tuple[dict, dict]:
    """The fields and subject candidates a resource's attributes give, picked once for all the spans it carries."""
    global _last_resource
    last = _last_resource
    if last[0] is res:
        return last[1], last[2]
    fields: dict = {}
    identity: dict = {}
    _pick(res, fields, identity)
    _last_resource = (res, fields, identity)
    return fields, identity


def map_item(it: Item) -> tuple[dict, dict]:
    """One (merged) model item -> (record, extra) for :func:`~distillguard.ingest.normalize.normalize`.

    Span attributes win over resource attributes; within each, the order of OTLP_FIELDS / IDENTITY.
    """
    attrs, res = it.attrs, it.res
    rec: dict = {"event_id": it.span_id or None, "ts": it.ts}
    identity = _NO_IDENTITY.copy()
    attr_extra: dict = {}
    indexed = _pick(attrs, rec, identity, attr_extra)
    if res:
        res_fields, res_identity = _resource_fields(res)
        for f, v in res_fields.items():
            rec.setdefault(f, v)
        for src, v in res_identity.items():
            if identity[src] is None:
                identity[src] = v
    get = attrs.get
    inv = get("llm.invocation_parameters")
    if inv is not None:
        inv = _jsonish(inv)
    if isinstance(inv, dict):
        for k, fld in OPENAI_REQUEST_PARAMS.items():
            if inv.get(k) is not None and fld not in rec:
                rec[fld] = inv[k]
        if identity["end_user"] is None and inv.get("user"):
            identity["end_user"] = inv["user"]
    rec["identity"] = identity
    msgs = _messages(attrs, indexed, "gen_ai.input.messages", "gen_ai.prompt", "llm.input_messages.")
    if msgs is not None:
        rec["prompt"] = flatten_messages(msgs, roles=("user", "tool")) if not isinstance(msgs, str) else msgs
        if "system_prompt" not in rec and not isinstance(msgs, str):
            rec["system_prompt"] = flatten_messages(msgs, roles=("system", "developer"))
    sysi = rec.get("system_prompt")
    if isinstance(sysi, str):
        sysi = _jsonish(sysi)
    if isinstance(sysi, (list, dict)):
        rec["system_prompt"] = flatten_messages(sysi, roles=("system", "developer", "user"))
    out = _messages(attrs, indexed, "gen_ai.output.messages", "gen_ai.completion", "llm.output_messages.")
    if out is not None:
        rec["response"] = out if isinstance(out, str) else flatten_messages(out, roles=("assistant", "model"))
    rec["status"] = "error" if it.status == 2 or get("error.type") else "ok"
    extra = {}
    provider = get("gen_ai.provider.name") or get("gen_ai.system") or get("llm.provider") or get("llm.system")
    if provider:
        extra["provider"] = provider
    if it.trace_id:
        extra["trace_id"] = it.trace_id
    if it.name:
        extra["span_name"] = it.name
    service = res.get("service.name")
    if service:
        extra["service.name"] = service
    if attr_extra:
        extra.update(attr_extra)
    return rec, extra


def call_of(it: Item) -> str | None:
    """The span id of the model call a piece belongs to: a raw-request child span's parent, a content
    record's span; None for anything else."""
    if it.kind == "span" and it.name in RAW_REQUEST_SPANS:
        return it.parent_id or None
    if it.kind == "log" and it.name in CONTENT_EVENTS:
        return it.span_id or None
    return None


def caller_identity(it: Item, names: tuple[str, ...] = IDENTITY_ATTRS) -> dict:
    """The caller a (non-model) span names, e.g. an app's request span with ``enduser.id`` (or, with
    ``names``, other attributes of the caller, e.g. its TLS fingerprint)."""
    return {a: it.attrs[a] for a in names if it.attrs.get(a) not in (None, "")}


def model_records(items: list[Item]) -> tuple[list[tuple[dict, dict]], list[Item]]:
    """Join items by span id: ``([(record, extra)] per model call, parts whose model call is not here)``.

    A span and a log record with the same span id are one call (the span leads,
    the record fills); content events and raw-request children attach to their
    call. Parts left over are returned for a later join (the service holds them a while).
    """
    models: dict[str, Item] = {}
    parts: dict[str, list[Item]] = {}
    order: list[Item] = []
    callers: dict[str, dict] = {}  # trace id -> identity attributes on its other spans
    clients: dict[str, dict] = {}  # trace id -> TRACE_CLIENT_ATTRS on its other spans
    for it in items:
        if is_model_item(it):
            key = it.span_id or f"#{len(order)}"
            prev = models.get(key)
            if prev is None:
                models[key] = it
                order.append(it)
            elif prev.kind == "log" and it.kind == "span":  # the span leads; its details record fills
                models[key] = it
                order[order.index(prev)] = it
                parts.setdefault(key, []).append(prev)
            else:
                parts.setdefault(key, []).append(it)
        elif call := call_of(it):
            parts.setdefault(call, []).append(it)
        elif it.kind == "span":
            for found, names in ((callers, IDENTITY_ATTRS), (clients, TRACE_CLIENT_ATTRS)):
                attrs = caller_identity(it, names)
                if attrs:
                    found.setdefault(it.trace_id, {}).update(attrs)
    out = [map_item(_merge(m, parts.pop(m.span_id, []) if m.span_id else [], callers.get(m.trace_id),
                           clients.get(m.trace_id))) for m in order]
    return out, [p for ps in parts.values() for p in ps]


# --------------------------------------------------------------------------- files
def _file_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _pb_file_items(raw: bytes) -> list[Item]:
    """A protobuf export: one request as an exporter posts it, or a Collector file exporter's
    length-prefixed stream; traces or logs, told apart by what parses."""
    chunks = []
    pos = 0
    while pos + 4 <= len(raw):
        n = int.from_bytes(raw[pos:pos + 4], "big")
        if n == 0 or pos + 4 + n > len(raw):
            break
        chunks.append(raw[pos + 4:pos + 4 + n])
        pos += 4 + n
    if pos != len(raw) or not chunks:
        chunks = [raw]
    out: list[Item] = []
    for chunk in chunks:
        try:
            spans = decode_pb(chunk, TRACES)
        except Reject:
            spans = []
        if spans and all(len(s.span_id) == 16 for s in spans):
            out.extend(spans)
            continue
        out.extend(decode_pb(chunk, LOGS))
    return out


def is_protobuf_file(path: str) -> bool:
    return path.lower().endswith((".pb", ".pb.gz", ".binpb", ".binpb.gz", ".protobuf", ".protobuf.gz"))


class OtlpSource:
    """OTLP trace and log exports, protobuf (``.pb``) or OTLP/JSON: one event per model call.

    Several files given to one ``ingest`` are joined together (a trace export and the
    log export with its content). Spans that are not model calls are skipped and not
    counted; content records whose call is in none of the files are quarantined
    (``unjoined_content``).
    """

    name: ClassVar[str] = "otlp"

    def read(self, path: str) -> Iterator[ReadBatch]:
        return self.read_paths([str(path)])

    def read_paths(self, paths: list[str]) -> Iterator[ReadBatch]:
        items: list[Item] = []
        bad: list = []
        for p in paths:
            if is_protobuf_file(p):
                try:
                    items.extend(_pb_file_items(_file_bytes(p)))
                except (Reject, OSError, EOFError) as exc:
                    raise UsageError(f"{p}: not an OTLP protobuf export ({getattr(exc, 'detail', None) or exc})") from None
                continue
            for line, obj, raw in iter_json_records(p):
                got = obj if isinstance(obj, Reject) else _safe_items(obj)
                if isinstance(got, Reject):
                    bad.append((line, got, raw))
                else:
                    items.extend(got)
        yield from _collect(", ".join(paths), iter([*bad, (1, items, "")]), _mapper)


def _safe_items(doc):
    try:
        return items_from_json(doc)
    except Reject as rej:
        return rej


def _mapper(items):
    if isinstance(items, Reject):
        raise items
    mapped, left = model_records(items)
    yield from mapped
    for p in left:
        yield (Reject("unjoined_content", f"{p.name} for span {p.span_id or '?'} with no model-call span here"),
               {"name": p.name, "trace_id": p.trace_id, "span_id": p.span_id, "attributes": p.attrs})
