#!/usr/bin/env python3.11
"""Capture the OTLP telemetry real GenAI instrumentation emits, as test fixtures.

Run from the repository root: ``python3.11 scripts/capture_otel_fixtures.py``.
It builds its own virtual environment (``bench-data/otel-capture-venv``) with
the OTel SDK and the instrumentation packages pinned below, then, one
producer per process, drives the real ``openai`` client against a mock
OpenAI-compatible server on loopback and lets the real OTLP/HTTP exporters
post to a receiver on loopback. The bytes the exporters sent are written to
``tests/data/otel/<producer>.traces.pb`` / ``.logs.pb`` (protobuf, as sent)
and ``.traces.json`` / ``.logs.json`` (the same request in OTLP/JSON).
With ``.venv-litellm`` present it also runs the LiteLLM proxy with
``callbacks: ["otel"]`` (``litellm-otel.traces.pb``).

Rerun it to regenerate the fixtures on new versions; tests/test_otlp_producers.py
checks every mapping row of docs/ingest.md against them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "otel"
VENV = ROOT / "bench-data" / "otel-capture-venv"
PINS = [
    "openai==2.54.0",
    "opentelemetry-api==1.45.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
    "opentelemetry-instrumentation-openai-v2==2.4b0",
    "opentelemetry-util-genai==1.1b0",  # the last release with the module openai-v2 2.4b0 imports
    "openinference-instrumentation-openai==0.1.66",
    "opentelemetry-instrumentation-openai==0.62.4",  # openllmetry (Traceloop)
]
# the last openai-v2 release that emits the older per-message events (gen_ai.user.message, gen_ai.choice)
# needs the Events API, which OTel Python 1.39 removed: it runs in a venv of its own on the 1.33 line.
LEGACY_VENV = ROOT / "bench-data" / "otel-capture-venv-legacy"
LEGACY_PINS = [
    "openai==2.54.0",
    "opentelemetry-api==1.33.1",
    "opentelemetry-sdk==1.33.1",
    "opentelemetry-exporter-otlp-proto-http==1.33.1",
    "opentelemetry-instrumentation-openai-v2==2.1b0",
]
# producer -> environment for its run (content capture switched on as an operator would)
PRODUCERS = {
    "openai-v2-latest-span": {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                              "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"},
    "openai-v2-latest-event": {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                               "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"},
    "openai-v2-legacy": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
    "openinference": {},
    "openllmetry": {"TRACELOOP_TRACE_CONTENT": "true"},
}
USER = "acct-capture-1"


# --------------------------------------------------------------------------- loopback servers
class _Receiver(BaseHTTPRequestHandler):
    """Keeps the raw bodies OTLP/HTTP exporters post (``server.bodies[path]``)."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            import gzip
            raw = gzip.decompress(raw)
        self.server.bodies.setdefault(self.path, []).append((self.headers.get("content-type"), raw))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


def _serve(handler) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.bodies = {}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


sys.path.insert(0, str(ROOT / "tests"))
from mock_openai import MockOpenAI as _MockOpenAI  # noqa: E402  (stdlib only: runs in the capture venvs too)


# --------------------------------------------------------------------------- one producer (inside the venv)
def _instrument(producer: str, tracer_provider, logger_provider) -> None:
    if producer == "openai-v2-legacy":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        from opentelemetry.sdk._events import EventLoggerProvider
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider,
                                        event_logger_provider=EventLoggerProvider(logger_provider))
    elif producer.startswith("openai-v2"):
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    elif producer == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif producer == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)


def run_producer(producer: str, receiver: str, mock: str) -> None:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry import trace

    res = Resource.create({"service.name": "capture-app"})
    tp = TracerProvider(resource=res)
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver + "/v1/traces")))
    trace.set_tracer_provider(tp)
    lp = LoggerProvider(resource=res)
    lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=receiver + "/v1/logs")))
    set_logger_provider(lp)
    _instrument(producer, tp, lp)

    import openai

    client = openai.OpenAI(base_url=mock + "/v1", api_key="sk-capture")
    # the application's own request span; openai-v2 never records the caller, so the app names it there
    # (enduser.id), as an operator using that instrumentation has to
    parent_attrs = {"enduser.id": USER} if producer.startswith("openai-v2") else {}
    with trace.get_tracer("capture-app").start_as_current_span("handle_request", attributes=parent_attrs):
        client.chat.completions.create(
            model="gpt-4o-mini", user=USER, max_tokens=300, temperature=0.7, n=2, logprobs=True, top_logprobs=3,
            messages=[{"role": "system", "content": "You are a helpful tutor."},
                      {"role": "user", "content": "Explain step by step why the sky is blue."}])
    tp.force_flush()
    lp.force_flush()
    tp.shutdown()
    lp.shutdown()


def _to_json(kind: str, raw: bytes) -> dict:
    """The OTLP/JSON form of a protobuf request (ids as hex, as the OTLP/JSON encoding requires)."""
    from google.protobuf.json_format import MessageToDict
    if kind == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as Req
    else:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest as Req
    msg = Req()
    msg.ParseFromString(raw)
    doc = MessageToDict(msg)

    def hexify(o):
        if isinstance(o, dict):
            for k in ("traceId", "spanId", "parentSpanId"):
                if isinstance(o.get(k), str) and o[k]:
                    import base64
                    o[k] = base64.b64decode(o[k]).hex()
            for v in o.values():
                hexify(v)
        elif isinstance(o, list):
            for v in o:
                hexify(v)
    hexify(doc)
    return doc


def _merge(kind: str, bodies: list[bytes]) -> bytes:
    """One export request holding every batch the exporter sent (SimpleSpanProcessor sends one per span)."""
    if kind == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as Req
        field = "resource_spans"
    else:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest as Req
        field = "resource_logs"
    out = Req()
    for raw in bodies:
        part = Req()
        part.ParseFromString(raw)
        getattr(out, field).extend(getattr(part, field))
    return out.SerializeToString()


def save(name: str, bodies: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for path, kind in (("/v1/traces", "traces"), ("/v1/logs", "logs")):
        got = [raw for ctype, raw in bodies.get(path, []) if ctype == "application/x-protobuf"]
        if not got:
            continue
        raw = _merge(kind, got)
        (OUT / f"{name}.{kind}.pb").write_bytes(raw)
        (OUT / f"{name}.{kind}.json").write_text(json.dumps(_to_json(kind, raw), indent=1) + "\n")
        print(f"  {name}.{kind}: {len(got)} export(s), {len(raw)} bytes")


def inner(producer: str) -> None:
    mock, recv = _serve(_MockOpenAI), _serve(_Receiver)
    os.environ.update(PRODUCERS[producer])
    run_producer(producer, f"http://127.0.0.1:{recv.server_port}", f"http://127.0.0.1:{mock.server_port}")
    save(producer, recv.bodies)


# --------------------------------------------------------------------------- LiteLLM's otel callback
LITELLM_CONFIG = """\
model_list:
  - model_name: mock-model
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-none, api_base: "{mock}/v1"}}
litellm_settings:
  callbacks: ["otel"]
"""


def capture_litellm() -> None:
    litellm = ROOT / ".venv-litellm" / "bin" / "litellm"
    if not litellm.exists():
        print("  .venv-litellm missing: LiteLLM fixture not captured")
        return
    import socket
    import tempfile
    import urllib.request

    mock, recv = _serve(_MockOpenAI), _serve(_Receiver)
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(LITELLM_CONFIG.format(mock=f"http://127.0.0.1:{mock.server_port}"))
        env = {**os.environ, "LITELLM_MASTER_KEY": "sk-capture-master", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": f"http://127.0.0.1:{recv.server_port}/v1/traces",
               "OTEL_SERVICE_NAME": "litellm-proxy"}
        proc = subprocess.Popen([str(litellm), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    urllib.request.urlopen(base + "/health/liveliness", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            req = urllib.request.Request(base + "/v1/chat/completions", method="POST", data=json.dumps({
                "model": "mock-model", "user": USER, "max_tokens": 300, "temperature": 0.7, "n": 2,
                "logprobs": True, "top_logprobs": 3,
                "messages": [{"role": "system", "content": "You are a helpful tutor."},
                             {"role": "user", "content": "Explain step by step why the sky is blue."}]}).encode(),
                headers={"Authorization": "Bearer sk-capture-master", "content-type": "application/json",
                         "User-Agent": "capture-client/1.0", "X-Forwarded-For": "198.51.100.9"})
            urllib.request.urlopen(req, timeout=60).read()
            for _ in range(60):  # the otel callback exports in batches
                if recv.bodies.get("/v1/traces"):
                    time.sleep(3)
                    break
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    save("litellm-otel", recv.bodies)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        inner(sys.argv[2])
        return
    if sys.argv[1:] == ["--litellm"]:
        capture_litellm()
        return
    for venv, pins in ((VENV, PINS), (LEGACY_VENV, LEGACY_PINS)):
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pins], check=True)
    for producer in PRODUCERS:
        print(producer)
        py = (LEGACY_VENV if producer == "openai-v2-legacy" else VENV) / "bin" / "python"
        subprocess.run([str(py), __file__, "--inner", producer], check=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))})
    py = VENV / "bin" / "python"
    print("litellm-otel")
    subprocess.run([str(py), __file__, "--litellm"], check=True)  # the venv has protobuf for save()


if __name__ == "__main__":
    main()
