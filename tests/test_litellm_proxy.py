"""A real LiteLLM proxy with distillguard's guardrail and logger in front of a mock model.

LiteLLM lives in its own virtual environment (``.venv-litellm``, made by
``make test``): installing it into the project's would change ~30 shared
packages. The proxy imports ``distillguard.serve.gateways.litellm`` from
``src/`` (the gateway module needs only httpx), asks the real decision
service on loopback before each call and posts finished calls back to it.
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

from test_serve import enforce_policy

ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
KEY = "sk-distillguard-test-0123456789"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not LITELLM.exists(), reason="LiteLLM's own venv is missing (make test creates it)")]

CONFIG = """\
model_list:
  - model_name: mock-model
    litellm_params: {{model: openai/mock-model, api_key: sk-none, mock_response: "Sure, here it is."}}
guardrails:
  - guardrail_name: distillguard
    litellm_params:
      guardrail: distillguard.serve.gateways.litellm.DistillguardGuardrail
      mode: pre_call
      default_on: true
      api_base: {url}
litellm_settings:
  callbacks: distillguard.serve.gateways.litellm.logger_instance
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("litellm")
    engine = Engine(EngineConfig(db=str(fixture_store(tmp / "dg.duckdb")), policy=enforce_policy(tmp),
                                 refresh_seconds=3600, flush_seconds=0.2))
    with serving(engine) as url:
        (tmp / "config.yaml").write_text(CONFIG.format(url=url))
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LITELLM_MASTER_KEY": KEY,
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISTILLGUARD_URL": url, "DISTILLGUARD_LOG_BATCH": "1"}
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
            yield base, url
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()


def _chat(base, user, **headers):
    return httpx.post(base + "/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {KEY}", **headers},
                      json={"model": "mock-model", "user": user, "messages": [{"role": "user", "content": "hello"}]})


def test_throttled_campaign_member_gets_429_with_retry_after(proxy):
    base, _ = proxy
    r = _chat(base, "camp-1")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "distillguard" in r.json()["error"]["message"]


def test_new_account_on_a_campaign_ip_gets_403_with_the_verification_link(proxy):
    base, _ = proxy
    r = _chat(base, "fresh-on-campaign-ip", **{"X-Forwarded-For": "203.0.113.7"})
    assert r.status_code == 403 and "https://verify.example.test/step-up?challenge_id=" in r.json()["error"]["message"]


def test_benign_call_is_served_and_logged_back_to_the_service(proxy):
    base, url = proxy
    before = httpx.get(url + "/v1/accounts/user-2").json()["n_events_live"]
    r = _chat(base, "user-2")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Sure, here it is."
    deadline = time.monotonic() + 30
    while httpx.get(url + "/v1/accounts/user-2").json()["n_events_live"] <= before:
        assert time.monotonic() < deadline, "the logger callback's event never reached the service"
        time.sleep(0.5)
