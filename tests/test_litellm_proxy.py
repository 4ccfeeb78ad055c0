"""A real LiteLLM proxy with distillguard's guardrail and logger in front of a mock model.

LiteLLM lives in its own virtual environment (``.venv-litellm``, made by
``make test``): installing it into the project's would change ~30 shared
packages. The proxy imports ``distillguard.serve.gateways.litellm`` from
``src/`` (the gateway module needs only httpx), asks the real decision
service on loopback before each call (with a gateway token) and posts
finished calls back to it.

Callers authenticate to LiteLLM with their own keys (LiteLLM's
``custom_auth`` hook maps each key to its owner, as an operator's key store
would); the account distillguard judges is that owner, so nothing the client
puts in the request body (``user``, malformed parameters) gets a stopped
key served.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import RoleAuth, fixture_store, free_port, serving

from test_serve import enforce_policy

ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
KEY = "sk-distillguard-test-0123456789"  # the proxy's master key (administration only)
OWNERS = {"sk-camp-1": "camp-1", "sk-user-2": "user-2", "sk-fresh": "fresh-on-campaign-ip"}
KEYAUTH = f"""\
from fastapi import HTTPException
from litellm.proxy._types import UserAPIKeyAuth

OWNERS = {OWNERS!r}


async def user_api_key_auth(request, api_key: str) -> UserAPIKeyAuth:
    owner = OWNERS.get(api_key.removeprefix("Bearer ").strip())
    if owner is None:
        raise HTTPException(status_code=401, detail="unknown key")
    return UserAPIKeyAuth(api_key=api_key, user_id=owner)
"""
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
      timeout: 10      # the test machine is shared and slow; a timeout would apply the fail setting (open here)
litellm_settings:
  callbacks: distillguard.serve.gateways.litellm.logger_instance
general_settings:
  custom_auth: keyauth.user_api_key_auth
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("litellm")
    db = fixture_store(tmp / "dg.duckdb")
    engine = Engine(EngineConfig(db=str(db), policy=enforce_policy(tmp), refresh_seconds=3600, flush_seconds=0.2))
    auth = RoleAuth(db)
    with serving(engine) as url:
        (tmp / "config.yaml").write_text(CONFIG.format(url=url))
        (tmp / "keyauth.py").write_text(KEYAUTH)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LITELLM_MASTER_KEY": KEY,
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISTILLGUARD_URL": url, "DISTILLGUARD_LOG_BATCH": "1",
               "DISTILLGUARD_TOKEN": auth.token("gateway")}
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
            yield base, url, auth
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()


def _chat(base, key, headers=None, **body):
    return httpx.post(base + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}", **(headers or {})},
                      json={"model": "mock-model", "messages": [{"role": "user", "content": "hello"}], **body})


def test_throttled_campaign_member_gets_429_with_retry_after(proxy):
    base, _, _ = proxy
    r = _chat(base, "sk-camp-1")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "distillguard" in r.json()["error"]["message"]


def test_new_account_on_a_campaign_ip_gets_403_with_the_verification_link(proxy):
    base, _, _ = proxy
    r = _chat(base, "sk-fresh", {"X-Forwarded-For": "203.0.113.7"})
    assert r.status_code == 403 and "https://verify.example.test/step-up?challenge_id=" in r.json()["error"]["message"]


@pytest.mark.parametrize("body", [
    {"user": "someone_new"},                       # the body's user never replaces the key's owner
    {"user": "user-2"},                            # not even a known benign account
    {"max_tokens": -1},                            # parameters the service would refuse never turn a stop into a pass
    {"logprobs": "maybe"},
    {"user": "u" * 513},
    {"temperature": "hot", "n": -3, "top_p": [1]},
], ids=["user-override", "user-benign", "max-tokens-negative", "logprobs-string", "user-513", "junk-params"])
def test_a_stopped_key_is_never_served_whatever_the_client_sends(proxy, body):
    base, _, _ = proxy
    r = _chat(base, "sk-camp-1", **body)
    assert r.status_code in (400, 403, 429), (r.status_code, r.text[:300])  # throttled, or blocked as its record grows
    assert "Sure, here it is." not in r.text


def test_benign_call_is_served_and_logged_back_to_the_service(proxy):
    base, url, auth = proxy
    count = lambda: httpx.get(url + "/v1/accounts/user-2", auth=auth).json()["n_events_live"]  # noqa: E731
    before = count()
    r = _chat(base, "sk-user-2", user="camp-1")  # a benign key claiming a stopped user is still itself
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Sure, here it is."
    deadline = time.monotonic() + 30
    while count() <= before:
        assert time.monotonic() < deadline, "the logger callback's event never reached the service"
        time.sleep(0.5)
