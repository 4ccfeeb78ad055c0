"""OTLP/HTTP intake: ``POST /v1/traces`` and ``POST /v1/logs`` as the OTLP/HTTP spec has them.

- ``application/x-protobuf`` (what SDK exporters, LiteLLM and every Collector
  ``otlphttp`` exporter send by default) is answered in protobuf,
  ``application/json`` in JSON; any other type gets 415;
- ``Content-Encoding: gzip`` or ``deflate``; the body-size limit holds for
  the decompressed size too (decompression stops at the limit: 413);
- the answer's ``partialSuccess`` counts the request's own rejected spans / log
  records; every rejection, a held call's released later too, is counted in
  ``distillguard_otlp_rejected_total`` and a batch rejected whole is logged as
  an error, since exporters ignore partialSuccess.

Producers spread one call over several exports (the span in a trace export,
its content in a log export, the caller on the parent span). :class:`JoinBuffer`
keeps content records until their span comes (SDKs export logs every 1 s,
spans every 5 s, so content usually comes first) and holds a call without a
subject for up to ``serve.otlp_join_seconds`` (policy YAML, default 10 s)
while the span naming the caller may still come.
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import OrderedDict
from typing import NamedTuple

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from distillguard.ingest.normalize import Reject
from distillguard.ingest.otlp import (IDENTITY_ATTRS, LOGS, TRACE_CLIENT_ATTRS, TRACES, Item, call_of, caller_identity,
                                      decode, is_model_item, map_item, model_records)
from distillguard.serve.recent import Recent

__all__ = ["register_otlp", "JoinBuffer", "Released", "decompress"]

log = logging.getLogger("distillguard.otlp")
PROTOBUF, JSON = "application/x-protobuf", "application/json"



class BodyTooLarge(Exception):
    pass


def decompress(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded per ``Content-Encoding``, never more than ``limit`` bytes (BodyTooLarge)."""
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)")
    # gzip: 16+; deflate is zlib-wrapped per HTTP, but some clients send it raw (-15)
    wbits = [31] if encoding == "gzip" else [15, -15]
    for i, wb in enumerate(wbits):
        d = zlib.decompressobj(wb)
        try:
            out = d.decompress(raw, limit + 1)
        except zlib.error as exc:
            if i + 1 < len(wbits):
                continue
            raise ValueError(f"corrupt {encoding} body ({exc})") from None
        if len(out) > limit or d.unconsumed_tail:
            raise BodyTooLarge()
        return out
    raise AssertionError("unreachable")


def _status_pb(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (fields 1 code, 2 message): the OTLP error body, without a dependency for two fields."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    msg = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(msg)) + msg


class Released(NamedTuple):
    """A model call the buffer let go: its mapped record, and which export brought its span or record."""

    record: dict
    extra: dict
    origin: object  # the ``origin`` its model item came with (a request), None when not given
    signal: str  # TRACES or LOGS: what its model item was


class JoinBuffer:
    """Joins one call's pieces across exports: content kept until its span comes, calls without a
    subject held at most ``window`` s for the span naming the caller."""

    def __init__(self, window: float = 10.0, max_items: int = 100_000):
        self.window = window
        self.max_items = max_items
        self.waiting: OrderedDict[str, tuple[float, Item, object]] = OrderedDict()  # span id -> (deadline, model item, origin)
        self.by_span: dict[str, list[Item]] = {}  # content logs / details records by span id; raw spans by parent
        self.by_trace: dict[str, dict] = {}  # identity attributes seen on other spans of the trace
        self.trace_waiting: dict[str, set[str]] = {}  # trace id -> keys of its waiting calls
        self.expiry: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.released = Recent(max_items)  # span ids whose call went in (the latest max_items at least)
        self.unjoined = 0  # content records whose call never came
        self.late = 0  # content or details records that came after their call went in
        self._lock = threading.Lock()

    def _keep(self, key: tuple[str, str], now: float) -> None:
        self.expiry[key] = now + max(self.window, 60.0)
        self.expiry.move_to_end(key)

    def _expire(self, now: float) -> None:
        while self.expiry and (next(iter(self.expiry.values())) < now or len(self.expiry) > self.max_items):
            (kind, key), _ = self.expiry.popitem(last=False)
            if kind == "span":
                self.unjoined += len(self.by_span.pop(key, ()))
            else:
                self.by_trace.pop(key, None)

    def add(self, items: list[Item], now: float | None = None, origin: object = None) -> list[Released]:
        """Take one export's items (``origin``: what brought them, handed back with each of its calls);
        returns the model calls now complete or out of time, this export's and earlier ones'."""
        now = time.monotonic() if now is None else now
        with self._lock:
            touched: set[str] = set()
            fresh: list[Item] = []
            for it in items:
                if is_model_item(it):
                    fresh.append(it)
                    continue
                call = call_of(it)
                if call and call in self.released:
                    self.late += 1
                elif call:
                    self.by_span.setdefault(call, []).append(it)
                    self._keep(("span", call), now)
                    touched.add(call)
                elif it.kind == "span" and it.trace_id:
                    ident = caller_identity(it, IDENTITY_ATTRS + TRACE_CLIENT_ATTRS)  # split again by model_records
                    if ident:
                        self.by_trace.setdefault(it.trace_id, {}).update(ident)
                        self._keep(("trace", it.trace_id), now)
                        touched.update(self.trace_waiting.get(it.trace_id, ()))
            out = []
            for it in fresh:
                key = it.span_id or f"#{id(it)}"
                if key in self.released:  # its call went in already (a details record after its span)
                    self.late += 1
                    continue
                prev = self.waiting.pop(key, None)
                came = origin
                if prev is not None:  # the span and its details record: one call, the span leads
                    lead, other = (it, prev[1]) if it.kind == "span" else (prev[1], it)
                    self.by_span.setdefault(key, []).append(other)
                    came = origin if lead is it else prev[2]
                    it = lead
                    self._untrack(key, it.trace_id)
                got = self._try(key, it, now, False, came)
                if got is None:
                    self.waiting[key] = (prev[0] if prev else now + self.window, it, came)
                    self.trace_waiting.setdefault(it.trace_id, set()).add(key)
                else:
                    out.append(got)
            for key in touched:  # waiting calls whose missing piece may have come
                if key in self.waiting:
                    _, model, came = self.waiting[key]
                    got = self._try(key, model, now, False, came)
                    if got is not None:
                        del self.waiting[key]
                        self._untrack(key, model.trace_id)
                        out.append(got)
            while self.waiting:
                key, (deadline, model, came) = next(iter(self.waiting.items()))
                if deadline > now and len(self.waiting) <= self.max_items:
                    break
                del self.waiting[key]
                self._untrack(key, model.trace_id)
                out.append(self._try(key, model, now, True, came))
            self._expire(now)
            return out

    def sweep(self, now: float | None = None) -> list[Released]:
        """The model calls whose wait is over (called periodically)."""
        return self.add([], now)

    def _untrack(self, key: str, trace_id: str | None) -> None:
        waiting = self.trace_waiting.get(trace_id)
        if waiting is not None:
            waiting.discard(key)
            if not waiting:
                del self.trace_waiting[trace_id]

    def _try(self, key: str, model: Item, now: float, force: bool, origin: object) -> Released | None:
        """The call's record once it has a subject, can get none, or its time is up (else None)."""
        parts = self.by_span.get(key)
        ident = self.by_trace.get(model.trace_id)
        if parts or ident or model.events:
            parts = list(parts or ())
            if ident:  # the caller, named on another span of the trace (the app's request span)
                parts.append(Item("span", "", "", model.trace_id, "", None, 0, ident, {}))
            rec, extra = model_records([model, *parts])[0][0]
        else:  # the common case: everything is on the span
            rec, extra = map_item(model)
        # only a call without a subject waits: a span while its parent (the app's, naming the caller) may come,
        # a details log record until its span does; content that comes first is already in by_span
        if not force and not any(rec["identity"].values()) and (model.kind == "log" or model.parent_id):
            return None
        if parts is not None:
            self.by_span.pop(key, None)
        self.released.add(key)
        return Released(rec, extra, origin, TRACES if model.kind == "span" else LOGS)


def register_otlp(app, engine, met, max_body_bytes: int) -> JoinBuffer:
    """Add ``POST /v1/traces`` and ``POST /v1/logs`` to ``app``; returns the join buffer."""
    from prometheus_client import Counter, Gauge

    buf = JoinBuffer(float(engine.serve_settings.get("otlp_join_seconds", 10.0)))
    rejected = Counter("distillguard_otlp_rejected_total", "OTLP spans / log records rejected (partialSuccess)",
                       ["signal"], registry=met["registry"])
    Gauge("distillguard_otlp_waiting", "Model calls waiting for the span that names their caller", registry=met["registry"]
          ).set_function(lambda: len(buf.waiting))
    Gauge("distillguard_otlp_unjoined", "Content records dropped: their model call never came",
          registry=met["registry"]).set_function(lambda: buf.unjoined)
    Gauge("distillguard_otlp_late", "Content / raw-request records dropped: they came after their call went in",
          registry=met["registry"]).set_function(lambda: buf.late)

    def accept(calls: list[Released], peer: str = "join buffer (calls held for their caller)") -> dict:
        """Calls into the engine; every rejection counted (by its model item's signal), a batch rejected whole logged."""
        out = engine.ingest_pairs([(c.record, c.extra) for c in calls], source="otlp")
        met["events"].labels("accepted").inc(out["accepted"])
        met["events"].labels("quarantined").inc(out["quarantined"])
        met["events"].labels("duplicate").inc(out["duplicates"])
        for e in out["errors"]:
            rejected.labels(calls[e["index"]].signal).inc()
        if out["quarantined"] and out["accepted"] + out["duplicates"] == 0:
            reasons = sorted({e["reason"] for e in out["errors"]})
            log.error("OTLP %s: all %d model calls rejected (%s); the exporter reports success and ignores this: "
                      "check which attribute names the caller (docs/ingest.md, Subject)",
                      peer, out["quarantined"], ", ".join(reasons))
        return out

    engine.add_periodic(lambda: accept(buf.sweep()), 1.0)

    def process(raw: bytes, ctype: str, signal: str, peer: str) -> tuple[int, str]:
        """The export's calls that went in now; the rejections among its own (not earlier exports' held calls)."""
        with engine.journal.turns.turn():  # exports in turn (Turns: less CPU each); bodies are read meanwhile
            try:
                items = decode(raw, ctype, signal)
            except Reject as rej:
                raise ValueError(rej.detail or rej.reason) from None
            request = object()
            calls = buf.add(items, origin=request)
            out = accept(calls, f"{signal} export from {peer}")
        own = [e for e in out["errors"] if calls[e["index"]].origin is request]
        msg = "; ".join(f"{calls[e['index']].signal[:-1]} {calls[e['index']].record.get('event_id') or '?'}: {e['reason']}"
                        for e in own[:5])
        return len(own), msg

    def answer(signal: str, ctype: str, n_rejected: int, msg: str) -> Response:
        key = "rejectedSpans" if signal == TRACES else "rejectedLogRecords"
        if ctype == PROTOBUF:
            if signal == TRACES:
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse as R
                body = R(partial_success={"rejected_spans": n_rejected, "error_message": msg} if n_rejected else None)
            else:
                from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse as R
                body = R(partial_success={"rejected_log_records": n_rejected, "error_message": msg} if n_rejected else None)
            return Response(body.SerializeToString(), media_type=PROTOBUF)
        import orjson
        return Response(orjson.dumps({"partialSuccess": {key: n_rejected, "errorMessage": msg}}), media_type=JSON)

    def error(status: int, ctype: str, message: str) -> Response:
        if ctype == PROTOBUF:
            code = 8 if status == 413 else 3  # gRPC RESOURCE_EXHAUSTED, INVALID_ARGUMENT
            return Response(_status_pb(code, message), status_code=status, media_type=PROTOBUF)
        import orjson
        return Response(orjson.dumps({"detail": message}), status_code=status, media_type=JSON)

    async def handle(request: Request, signal: str) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in (PROTOBUF, JSON):
            return error(415, JSON, f"unsupported Content-Type {ctype or '(none)'!r}: send {PROTOBUF} or {JSON}")
        raw = await request.body()
        encoding = request.headers.get("content-encoding", "").strip().lower()
        peer = request.client.host if request.client else "?"
        try:
            body = decompress(raw, encoding, max_body_bytes)
        except BodyTooLarge:
            return error(413, ctype, f"request body too large once decompressed (limit {max_body_bytes} bytes)")
        except ValueError as exc:
            return error(415 if "unsupported" in str(exc) else 400, ctype, str(exc))
        try:
            n, msg = await run_in_threadpool(process, body, ctype, signal, peer)
        except ValueError as exc:
            return error(400, ctype, f"cannot decode the OTLP {signal} request: {exc}")
        return answer(signal, ctype, n, msg)

    body_doc = {"requestBody": {"required": True, "content": {
        PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
        JSON: {"schema": {"type": "object", "additionalProperties": True}}}}}

    @app.post("/v1/traces", tags=["intake"], openapi_extra=body_doc, response_class=Response, responses={
        200: {"description": "ExportTraceServiceResponse (partialSuccess.rejectedSpans)",
              "content": {PROTOBUF: {}, JSON: {}}}, 400: {}, 413: {}, 415: {}})
    async def traces(request: Request) -> Response:
        """OTLP/HTTP traces (GenAI / OpenInference / LiteLLM spans): one event per model call."""
        return await handle(request, TRACES)

    @app.post("/v1/logs", tags=["intake"], openapi_extra=body_doc, response_class=Response, responses={
        200: {"description": "ExportLogsServiceResponse (partialSuccess.rejectedLogRecords)",
              "content": {PROTOBUF: {}, JSON: {}}}, 400: {}, 413: {}, 415: {}})
    async def logs(request: Request) -> Response:
        """OTLP/HTTP logs: GenAI content events and inference-details records, joined to their spans."""
        return await handle(request, LOGS)

    return buf
