"""A real LiteLLM proxy with distillguard's guardrail, logger and LiteLLM's own ``otel`` callback.

LiteLLM lives in its own virtual environment (``.venv-litellm``, made by
``make test``, with the OTel SDK its ``otel`` callback needs): installing it
into the project's would change ~30 shared packages. The proxy imports
``distillguard.serve.gateways.litellm`` from ``src/`` (the gateway module
needs only httpx), asks the real decision service on loopback before each
call, posts finished calls back to it, and exports its spans (OTLP/HTTP
protobuf, as LiteLLM always does) to a second service: each call lands in
both stores, which must agree on the subject and the request parameters
with the subject the guardrail decided on. The model is a mock
OpenAI-compatible server on loopback (tests/mock_openai.py).
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import fixture_store, free_port, serving

from mock_openai import serve_mock_openai
from test_serve import enforce_policy
from test_serve_otlp import AUTH, stored

ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
KEY = "sk-distillguard-test-0123456789"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not LITELLM.exists(), reason="LiteLLM's own venv is missing (make test creates it)")]

CONFIG = """\
model_list:
  - model_name: mock-model
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-none, api_base: "{mock}/v1"}}
guardrails:
  - guardrail_name: distillguard
    litellm_params:
      guardrail: distillguard.serve.gateways.litellm.DistillguardGuardrail
      mode: pre_call
      default_on: true
      api_base: {url}
litellm_settings:
  callbacks: ["otel", "distillguard.serve.gateways.litellm.logger_instance"]
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """(proxy URL, guardrail+logger service URL, its engine, otel service's engine, subjects decided)."""
    tmp = tmp_path_factory.mktemp("litellm")
    engine = Engine(EngineConfig(db=str(fixture_store(tmp / "dg.duckdb")), policy=enforce_policy(tmp),
                                 refresh_seconds=3600, flush_seconds=0.2))
    otel_engine = Engine(EngineConfig(db=str(tmp / "otel.duckdb"), policy=enforce_policy(tmp), refresh_seconds=3600,
                                      flush_seconds=0.2))
    decided: list[str] = []
    real_decide = engine.decide

    def decide(event, account=None):  # a spy: the real decision, its subject noted
        decided.append(event["account_id"])
        return real_decide(event, account)

    engine.decide = decide
    mock = serve_mock_openai()
    with serving(engine) as url, serving(otel_engine) as otel_url:
        (tmp / "config.yaml").write_text(CONFIG.format(url=url, mock=f"http://127.0.0.1:{mock.server_port}"))
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LITELLM_MASTER_KEY": KEY,
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISTILLGUARD_URL": url, "DISTILLGUARD_LOG_BATCH": "1",
               "OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": otel_url + "/v1/traces", "OTEL_SERVICE_NAME": "litellm",
               "OTEL_HEADERS": ",".join(f"{k}={v}" for k, v in AUTH.items())}
        log = open(tmp / "proxy.log", "w")
        proc = subprocess.Popen([str(LITELLM), "--config", str(tmp / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/health/liveliness", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("LiteLLM proxy did not start: " + (tmp / "proxy.log").read_text()[-2000:])
                time.sleep(0.5)
            yield base, url, engine, otel_engine, decided
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
            mock.shutdown()


def _chat(base, user, params=None, **headers):
    body = {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}], **(params or {})}
    if user is not None:
        body["user"] = user
    return httpx.post(base + "/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {KEY}", **headers}, json=body)


def _landed(engine, where, timeout=40):
    """The stored events matching ``where`` once there (the otel callback exports every few seconds)."""
    deadline = time.monotonic() + timeout
    while not (rows := stored(engine, where)):
        assert time.monotonic() < deadline, f"nothing landed for {where}"
        time.sleep(0.5)
    return rows


def test_throttled_campaign_member_gets_429_with_retry_after(proxy):
    base = proxy[0]
    r = _chat(base, "camp-1")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "distillguard" in r.json()["error"]["message"]


def test_new_account_on_a_campaign_ip_gets_403_with_the_verification_link(proxy):
    base = proxy[0]
    r = _chat(base, "fresh-on-campaign-ip", **{"X-Forwarded-For": "203.0.113.7"})
    assert r.status_code == 403 and "https://verify.example.test/step-up?challenge_id=" in r.json()["error"]["message"]


def test_benign_call_is_served_and_logged_back_to_the_service(proxy):
    base, url = proxy[:2]
    before = httpx.get(url + "/v1/accounts/user-2").json()["n_events_live"]
    r = _chat(base, "user-2")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Step 1: think. Step 2: answer 0."
    deadline = time.monotonic() + 30
    while httpx.get(url + "/v1/accounts/user-2").json()["n_events_live"] <= before:
        assert time.monotonic() < deadline, "the logger callback's event never reached the service"
        time.sleep(0.5)


PARAMS = {"max_tokens": 123, "temperature": 0.3, "n": 2, "logprobs": True, "top_logprobs": 2}


def test_logger_and_otel_callback_store_the_decided_subject_and_every_parameter(proxy):
    base, _, engine, otel_engine, decided = proxy
    r = _chat(base, "param-user", PARAMS, **{"User-Agent": "harvester/2.0", "X-Forwarded-For": "198.51.100.23"})
    assert r.status_code == 200 and len(r.json()["choices"]) == 2
    assert decided[-1] == "param-user"  # the guardrail's subject
    for eng in (engine, otel_engine):  # the logger's record, LiteLLM's own span
        ev, = _landed(eng, "account_id = 'param-user'")
        got = {k: ev[k] for k in ("model", "max_output_tokens", "temperature", "n", "logprobs", "top_logprobs",
                                  "prompt", "input_tokens", "output_tokens")}
        assert got == {"model": "mock-model", "max_output_tokens": 123, "temperature": 0.3, "n": 2, "logprobs": True,
                       "top_logprobs": 2, "prompt": "hello", "input_tokens": 21, "output_tokens": 18}, eng.config.db
        assert ev["response"].startswith("Step 1: think.")


def test_without_an_end_user_the_key_is_the_subject_on_every_path(proxy):
    base, _, engine, otel_engine, decided = proxy
    r = _chat(base, None, {"temperature": 0.11})
    assert r.status_code == 200
    subject = decided[-1]
    for eng in (engine, otel_engine):
        ev, = _landed(eng, "temperature = 0.11")
        assert ev["account_id"] == subject, (eng.config.db, ev["account_id"], subject)
