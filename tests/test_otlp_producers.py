"""Every mapping row of docs/ingest.md ("OTLP producers") on telemetry the real instrumentation emitted.

tests/data/otel/ holds what the real OTLP/HTTP exporters sent (protobuf, and
the same requests in OTLP/JSON) for one chat completion per producer,
captured by scripts/capture_otel_fixtures.py (``make otel-fixtures``): the
``openai`` client against a mock model on loopback, instrumented by
openai-v2 2.4b0 (content on the span, or in a log record), openai-v2 2.1b0
(older per-message events), OpenInference 0.1.66, openllmetry 0.62.4, and
the LiteLLM 1.106.2 proxy's ``otel`` callback. The request: user
``acct-capture-1``, max_tokens 300, temperature 0.7, n 2, logprobs with top 3.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillguard.ingest import ingest_files
from distillguard.store import EventStore

DATA = Path(__file__).parent / "data" / "otel"
PROMPT = "Explain step by step why the sky is blue."
COMMON = {"account_id": "acct-capture-1", "prompt": PROMPT, "system_prompt": "You are a helpful tutor.",
          "response": "Step 1: think. Step 2: answer 0.\nStep 1: think. Step 2: answer 1.",
          "input_tokens": 21, "output_tokens": 18, "max_output_tokens": 300, "temperature": 0.7, "status": "ok"}
# what each producer records beyond COMMON (None: the instrumentation does not emit it)
PRODUCERS = {
    "openai-v2-latest-span": {"model": "gpt-4o-mini", "n": 2, "logprobs": None, "top_logprobs": None},
    "openai-v2-latest-event": {"model": "gpt-4o-mini", "n": 2, "logprobs": None, "top_logprobs": None},
    "openai-v2-legacy": {"model": "gpt-4o-mini", "n": None, "logprobs": None, "top_logprobs": None},
    "openinference": {"model": "gpt-4o-mini-2024-07-18", "n": 2, "logprobs": True, "top_logprobs": 3},
    "openllmetry": {"model": "gpt-4o-mini", "n": None, "logprobs": None, "top_logprobs": None},
    # the proxy's own call names a key: its owner is the subject, not the body's user (the default rule)
    "litellm-otel": {"account_id": "default_user_id", "model": "mock-model", "n": 2, "logprobs": True, "top_logprobs": 3,
                     "client_ip": "198.51.100.9", "user_agent": "capture-client/1.0",
                     "api_key_id": "litellm_proxy_master_key"},
}


@pytest.fixture()
def store(tmp_path):
    s = EventStore(tmp_path / "t.duckdb")
    yield s
    s.close()


def stored(store) -> list[dict]:
    cur = store.con.execute("SELECT * FROM events ORDER BY ts")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def files(producer: str, ext: str) -> list[Path]:
    """The producer's exports, the trace export first: one ingest joins them whatever the order."""
    return sorted(DATA.glob(f"{producer}.*.{ext}"), key=lambda p: ".logs." in p.name)


@pytest.mark.parametrize("ext", ["pb", "json"])
@pytest.mark.parametrize("producer", list(PRODUCERS))
def test_each_producer_maps_to_one_event_with_its_fields(store, tmp_path, producer, ext):
    r = ingest_files(files(producer, ext), store, quarantine_path=tmp_path / "q.jsonl", progress=False)
    rows = stored(store)
    assert len(rows) == 1, (r.as_dict(), (tmp_path / "q.jsonl").read_text() if (tmp_path / "q.jsonl").exists() else "")
    ev = rows[0]
    for field, want in {**COMMON, **PRODUCERS[producer]}.items():
        assert ev[field] == want, (producer, field, ev[field])
    extra = json.loads(ev["extra"])
    assert extra["identity"]["end_user"] == "acct-capture-1" and len(extra["trace_id"]) == 32


def test_non_model_spans_and_litellms_raw_request_span_are_not_events(store):
    r = ingest_files(files("litellm-otel", "pb"), store, progress=False)
    # 16 spans: HTTP, auth, router... and raw_gen_ai_request, whose n/logprobs fill litellm_request
    assert r.as_dict() == {"read": 1, "accepted": 1, "quarantined": 0, "duplicates": 0}
    assert json.loads(stored(store)[0]["extra"])["span_name"] == "litellm_request"


def test_content_records_without_their_span_are_quarantined_not_lost(store, tmp_path):
    q = tmp_path / "q.jsonl"
    r = ingest_files([DATA / "openai-v2-legacy.logs.pb"], store, quarantine_path=q, progress=False)
    assert r.as_dict() == {"read": 4, "accepted": 0, "quarantined": 4, "duplicates": 0}
    assert {json.loads(line)["reason"] for line in q.read_text().splitlines()} == {"unjoined_content"}


def test_openai_v2_without_the_callers_span_has_no_subject(store, tmp_path):
    """openai-v2 never records the caller: only the app's request span (enduser.id) names it."""
    from distillguard.ingest.otlp import _pb_file_items, model_records

    items = [it for it in _pb_file_items((DATA / "openai-v2-latest-span.traces.pb").read_bytes())
             if it.name != "handle_request"]
    (rec, _), = model_records(items)[0]
    assert not any(rec["identity"].values())


def test_the_subject_rule_picks_among_the_gateways_identities(store, monkeypatch):
    from distillguard.subject import set_rule

    monkeypatch.setenv("DISTILLGUARD_SUBJECT", "end_user,key_user,key")  # a gateway vouching for its end users
    set_rule(None)  # the environment is read once per process: read it again
    try:
        ingest_files(files("litellm-otel", "pb"), store, progress=False)
    finally:
        monkeypatch.delenv("DISTILLGUARD_SUBJECT")
        set_rule(None)
    ev = stored(store)[0]
    assert ev["account_id"] == "acct-capture-1"  # the end user the gateway vouches for
    assert json.loads(ev["extra"])["identity"] == {"end_user": "acct-capture-1", "key_user": "default_user_id",
                                                   "key": "litellm_proxy_master_key"}


def test_a_bad_protobuf_file_is_one_readable_error(tmp_path, monkeypatch, capsys):
    from conftest import run_main

    bad = tmp_path / "broken.pb"
    bad.write_bytes(b"\x0a\xff\xff\xff\x0f garbage")
    code, _, err = run_main(monkeypatch, capsys, "ingest", bad, "--db", tmp_path / "x.duckdb", "--quiet")
    assert code == 2 and "not an OTLP protobuf export" in err and "Traceback" not in err
