"""OTLP/HTTP intake (/v1/traces, /v1/logs) on a real server on loopback, fed what real exporters sent.

The bodies are tests/data/otel/ (captured from the real instrumentation by
scripts/capture_otel_fixtures.py); the last test runs the real OTel SDK
OTLP/HTTP exporters (LiteLLM's venv has them) against the server.
"""
from __future__ import annotations

import gzip
import logging
import os
import subprocess
import time
import zlib
from pathlib import Path

import duckdb
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import RoleAuth, fixture_store, serving

from test_serve import enforce_policy

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "otel"
PB, JSON = "application/x-protobuf", "application/json"
GATEWAY_TOKEN = "dg_otlp-test-gateway-0123456789abcdef"  # handed to the app by code, as tests may
TOKENS = {GATEWAY_TOKEN: ("otlp-test", "gateway")}
AUTH = {"Authorization": f"Bearer {GATEWAY_TOKEN}"}  # what every exporter and client here sends


def client(url: str, db=None) -> httpx.Client:
    """Gateway token on intake; with ``db``, each request a token of a role allowed for it (views, metrics)."""
    return httpx.Client(base_url=url, timeout=20, headers={} if db else AUTH, auth=RoleAuth(db) if db else None)


@pytest.fixture()
def service(tmp_path):
    engine = Engine(EngineConfig(db=str(fixture_store(tmp_path / "dg.duckdb")), policy=enforce_policy(tmp_path),
                                 refresh_seconds=3600, flush_seconds=0.2))
    with serving(engine, tokens=TOKENS) as url, client(url, engine.config.db) as c:
        c.engine = engine
        yield c


def stored(engine, where="TRUE") -> list[dict]:
    engine.journal.flush()
    with engine.journal.db_lock:
        con = duckdb.connect(engine.config.db, read_only=True)
        try:
            cur = con.execute(f"SELECT * FROM events WHERE {where} ORDER BY ts")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            con.close()


def post(c, signal, body: bytes, ctype=PB, encoding=None):
    headers = {"content-type": ctype, **({"content-encoding": encoding} if encoding else {})}
    return c.post(f"/v1/{signal}", content=body, headers=headers)


def metric(c, name: str) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_protobuf_is_answered_in_protobuf_and_the_call_lands_with_its_parameters(service):
    r = post(service, "traces", (DATA / "litellm-otel.traces.pb").read_bytes())
    assert r.status_code == 200 and r.headers["content-type"] == PB
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 0
    ev, = stored(service.engine, "account_id = 'default_user_id'")
    assert (ev["model"], ev["n"], ev["logprobs"], ev["top_logprobs"], ev["max_output_tokens"]) == (
        "mock-model", 2, True, 3, 300)
    assert (ev["client_ip"], ev["user_agent"], ev["api_key_id"]) == (
        "198.51.100.9", "capture-client/1.0", "litellm_proxy_master_key")
    assert ev["prompt"] == "Explain step by step why the sky is blue." and len(ev["event_id"]) == 16


@pytest.mark.parametrize("encoding, pack", [("gzip", gzip.compress), ("deflate", zlib.compress),
                                            ("deflate", lambda b: zlib.compress(b, wbits=-15))])
@pytest.mark.parametrize("name, ctype", [("openinference.traces.pb", PB), ("openllmetry.traces.json", JSON)])
def test_compressed_bodies_in_both_encodings(service, encoding, pack, name, ctype):
    r = post(service, "traces", pack((DATA / name).read_bytes()), ctype, encoding)
    assert r.status_code == 200 and r.headers["content-type"] == ctype
    if ctype == JSON:
        assert r.json() == {"partialSuccess": {"rejectedSpans": 0, "errorMessage": ""}}
    assert service.get("/v1/accounts/acct-capture-1").json()["n_events_live"] == 1


def test_content_in_a_log_export_joins_its_span_from_a_later_trace_export(service):
    assert post(service, "logs", (DATA / "openai-v2-legacy.logs.pb").read_bytes()).status_code == 200
    assert stored(service.engine, "account_id = 'acct-capture-1'") == []  # content alone is not a call
    r = post(service, "traces", (DATA / "openai-v2-legacy.traces.pb").read_bytes())
    assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 0
    ev, = stored(service.engine, "account_id = 'acct-capture-1'")
    assert ev["prompt"] == "Explain step by step why the sky is blue." and ev["system_prompt"] == "You are a helpful tutor."
    assert ev["response"].startswith("Step 1: think.")


def test_a_details_record_waits_for_the_span_that_names_the_caller(service):
    r = post(service, "logs", (DATA / "openai-v2-latest-event.logs.pb").read_bytes())
    assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0
    assert metric(service, "distillguard_otlp_waiting") == 1
    post(service, "traces", (DATA / "openai-v2-latest-event.traces.pb").read_bytes())
    ev, = stored(service.engine, "account_id = 'acct-capture-1'")
    assert ev["prompt"] == "Explain step by step why the sky is blue." and ev["n"] == 2
    assert metric(service, "distillguard_otlp_waiting") == 0


def test_a_details_record_after_its_call_went_in_is_counted_late_not_rejected(service):
    post(service, "traces", (DATA / "openai-v2-latest-event.traces.pb").read_bytes())
    r = post(service, "logs", (DATA / "openai-v2-latest-event.logs.pb").read_bytes())
    assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0
    assert len(stored(service.engine, "account_id = 'acct-capture-1'")) == 1
    assert metric(service, "distillguard_otlp_late") == 1


def test_rejections_are_in_partial_success_metrics_and_the_log(service, caplog):
    req = ExportTraceServiceRequest.FromString((DATA / "openai-v2-latest-span.traces.pb").read_bytes())
    for rs in req.resource_spans:  # without the app's span there is no caller: and the model span's parent is gone
        for ss in rs.scope_spans:
            keep = [s for s in ss.spans if s.name != "handle_request"]
            for s in keep:
                s.parent_span_id = b""
            del ss.spans[:]
            ss.spans.extend(keep)
    with caplog.at_level(logging.ERROR, logger="distillguard.otlp"):
        r = post(service, "traces", req.SerializeToString())
    ps = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert ps.rejected_spans == 1 and "missing_subject" in ps.error_message
    assert metric(service, "distillguard_otlp_rejected_total") == 1
    assert any("all 1 model calls rejected (missing_subject)" in m for m in caplog.messages)


def test_bad_requests_get_the_spec_status_codes(service):
    assert post(service, "traces", b"{}", "text/plain").status_code == 415
    assert post(service, "logs", b"x", PB, "br").status_code == 415
    r = post(service, "traces", b"\x0a\xff\xff\xff\x0f junk", PB)
    assert r.status_code == 400 and r.headers["content-type"] == PB and b"cannot decode" in r.content
    assert post(service, "traces", b"not gzip", JSON, "gzip").status_code == 400
    assert post(service, "traces", b"[1,", JSON).status_code == 400
    assert "/v1/logs" in service.get("/openapi.json").json()["paths"]


def test_a_gzip_bomb_is_refused_at_the_decompressed_limit(service):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MiB -> ~64 KiB, under the 1 MiB body limit
    assert len(bomb) < 1024 * 1024
    t0 = time.monotonic()
    r = post(service, "traces", bomb, PB, "gzip")
    assert r.status_code == 413 and time.monotonic() - t0 < 5
    assert post(service, "traces", b"\0" * (2 * 1024 * 1024), PB).status_code == 413  # the plain limit still holds


EXPORTER = """
import sys
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

url, user, compression = sys.argv[1], sys.argv[2], sys.argv[3]
headers = dict(h.split("=", 1) for h in sys.argv[4:])
mem = InMemorySpanExporter()
tp = TracerProvider(resource=Resource.create({"service.name": "sdk-test"}))
tp.add_span_processor(SimpleSpanProcessor(mem))
with tp.get_tracer("t").start_as_current_span("handle", attributes={"enduser.id": user}):
    with tp.get_tracer("t").start_as_current_span("chat orion-2", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "orion-2", "gen_ai.request.max_tokens": 512,
            "gen_ai.request.choice.count": 4, "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 400,
            "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"Show every step."}]}]'}):
        pass
exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", headers=headers,
                            compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
print(exporter.export(mem.get_finished_spans()).name)
"""


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_the_real_otel_sdk_exporter_delivers(service, tmp_path, compression):
    py = ROOT / ".venv-litellm" / "bin" / "python"
    if not py.exists():
        pytest.skip("LiteLLM's venv (with the OTel SDK) is missing: make test creates it")
    script = tmp_path / "export.py"
    script.write_text(EXPORTER)
    user = f"sdk-{compression}"
    out = subprocess.run([str(py), str(script), str(service.base_url), user, compression,
                          *(f"{k}={v}" for k, v in AUTH.items())],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert out.stdout.strip() == "SUCCESS", out.stderr[-2000:]
    ev, = stored(service.engine, f"account_id = '{user}'")
    assert (ev["model"], ev["n"], ev["max_output_tokens"], ev["output_tokens"], ev["prompt"]) == (
        "orion-2", 4, 512, 400, "Show every step.")


def test_a_call_waiting_for_its_caller_goes_in_when_its_time_is_up():
    """The join buffer alone: a model span whose parent never comes is released after the window."""
    from distillguard.ingest.otlp import _pb_file_items
    from distillguard.serve.otlp import JoinBuffer

    items = [it for it in _pb_file_items((DATA / "openai-v2-latest-span.traces.pb").read_bytes())
             if it.name != "handle_request"]
    buf = JoinBuffer(window=10)
    assert buf.add(items, now=100.0, origin="first export") == [] and len(buf.waiting) == 1
    assert buf.sweep(now=105.0) == []
    (rec, _, origin, signal), = buf.sweep(now=110.5)
    assert not any(rec["identity"].values()) and rec["prompt"] == "Explain step by step why the sky is blue."
    assert (origin, signal) == ("first export", "traces")  # whose call it was, though a sweep released it
    assert buf.waiting == {} and buf.trace_waiting == {}


def _orphan_model_span() -> bytes:
    """openai-v2's model span without the app span naming its caller: it waits, then goes in rejected."""
    req = ExportTraceServiceRequest.FromString((DATA / "openai-v2-latest-span.traces.pb").read_bytes())
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            keep = [s for s in ss.spans if s.name != "handle_request"]
            del ss.spans[:]
            ss.spans.extend(keep)
    return req.SerializeToString()


def test_a_call_rejected_after_its_wait_is_counted_in_metrics_and_charged_to_no_later_request(tmp_path):
    """partialSuccess answers for the request's own spans; a held call's rejection is counted when it is released."""
    policy = enforce_policy(tmp_path)
    policy.write_text(policy.read_text().replace("serve: {immunity_seconds: 120}",
                                                 "serve: {immunity_seconds: 120, otlp_join_seconds: 1}"))
    engine = Engine(EngineConfig(db=str(fixture_store(tmp_path / "dg.duckdb")), policy=policy, refresh_seconds=3600,
                                 flush_seconds=0.2))
    with serving(engine, tokens=TOKENS) as url, client(url, engine.config.db) as c:
        first = post(c, "traces", _orphan_model_span())
        assert ExportTraceServiceResponse.FromString(first.content).partial_success.rejected_spans == 0  # held
        assert metric(c, "distillguard_otlp_waiting") == 1
        time.sleep(1.2)  # its wait is over: the next request or the periodic sweep releases it
        later = post(c, "traces", (DATA / "openinference.traces.pb").read_bytes())
        assert ExportTraceServiceResponse.FromString(later.content).partial_success.rejected_spans == 0
        deadline = time.monotonic() + 10
        while metric(c, "distillguard_otlp_waiting"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert metric(c, "distillguard_otlp_rejected_total") == 1
        assert metric(c, 'distillguard_events_total{outcome="quarantined"}') == 1
