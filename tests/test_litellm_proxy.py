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

Callers authenticate to LiteLLM with their own keys (LiteLLM's
``custom_auth`` hook maps each key to its owner, as an operator's key store
would); the account distillguard judges is that owner, so nothing the client
puts in the request body (``user``, malformed parameters) gets a stopped key
served. Every plug-in calls the service with a gateway token.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import RoleAuth, fixture_store, free_port, serving

from mock_openai import serve_mock_openai
from test_serve import enforce_policy
from test_serve_otlp import AUTH, TOKENS, stored

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
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-none, api_base: "{mock}/v1"}}
guardrails:
  - guardrail_name: distillguard
    litellm_params:
      guardrail: distillguard.serve.gateways.litellm.DistillguardGuardrail
      mode: pre_call
      default_on: true
      api_base: {url}
      timeout: 10      # the test machine is shared and slow; a timeout would apply the fail setting (open here)
litellm_settings:
  callbacks: [{callbacks}]
"""
LOGGER = '"distillguard.serve.gateways.litellm.logger_instance"'
# LiteLLM 1.106.2 exports no spans for calls authenticated by custom_auth: the otel proxy runs on its master key
CALLER_KEYS = CONFIG + """general_settings:
  custom_auth: keyauth.user_api_key_auth
"""
MASTER_KEY_ONLY = CONFIG + """general_settings: {{}}
"""


@contextlib.contextmanager
def _litellm(tmp, config: str, env: dict):
    """A LiteLLM proxy on loopback with ``config``; yields its base URL."""
    tmp.mkdir(exist_ok=True)
    (tmp / "keyauth.py").write_text(KEYAUTH)
    (tmp / "config.yaml").write_text(config)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LITELLM_MASTER_KEY": KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "DISTILLGUARD_LOG_BATCH": "1", **env}
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
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """(callers' proxy URL, guardrail+logger service URL, its engine, otel service's engine, subjects decided,
    its RoleAuth, otel proxy URL).

    Two proxies in front of one decision service: one whose callers hold their own keys (custom_auth), and
    one on its master key that also exports LiteLLM's own spans to a second service.
    """
    tmp = tmp_path_factory.mktemp("litellm")
    db = fixture_store(tmp / "dg.duckdb")
    engine = Engine(EngineConfig(db=str(db), policy=enforce_policy(tmp), refresh_seconds=3600, flush_seconds=0.2))
    auth = RoleAuth(db)
    otel_engine = Engine(EngineConfig(db=str(tmp / "otel.duckdb"), policy=enforce_policy(tmp), refresh_seconds=3600,
                                      flush_seconds=0.2))
    decided: list[str] = []
    real_decide = engine.decide

    def decide(event, account=None, **kw):  # a spy: the real decision, its subject noted
        decided.append(event["account_id"])
        return real_decide(event, account, **kw)

    engine.decide = decide
    mock = serve_mock_openai()
    mock_url = f"http://127.0.0.1:{mock.server_port}"
    try:
        with serving(engine) as url, serving(otel_engine, tokens=TOKENS) as otel_url:
            common = {"DISTILLGUARD_URL": url, "DISTILLGUARD_TOKEN": auth.token("gateway")}
            otel = {"OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": otel_url + "/v1/traces", "OTEL_SERVICE_NAME": "litellm",
                    "OTEL_HEADERS": ",".join(f"{k}={v}" for k, v in AUTH.items())}
            with _litellm(tmp / "keys", CALLER_KEYS.format(url=url, mock=mock_url, callbacks=LOGGER), common) as base, \
                    _litellm(tmp / "otel", MASTER_KEY_ONLY.format(url=url, mock=mock_url, callbacks=f'"otel", {LOGGER}'),
                             {**common, **otel}) as otel_base:
                yield base, url, engine, otel_engine, decided, auth, otel_base
    finally:
        mock.shutdown()


def _chat(base, key, params=None, **headers):
    body = {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}], **(params or {})}
    return httpx.post(base + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}", **headers},
                      json=body)


def _landed(engine, where, timeout=40):
    """The stored events matching ``where`` once there (the otel callback exports every few seconds)."""
    deadline = time.monotonic() + timeout
    while not (rows := stored(engine, where)):
        assert time.monotonic() < deadline, f"nothing landed for {where}"
        time.sleep(0.5)
    return rows


def test_throttled_campaign_member_gets_429_with_retry_after(proxy):
    base = proxy[0]
    r = _chat(base, "sk-camp-1")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "distillguard" in r.json()["error"]["message"]


def test_new_account_on_a_campaign_ip_gets_403_with_the_verification_link(proxy):
    base = proxy[0]
    r = _chat(base, "sk-fresh", **{"X-Forwarded-For": "203.0.113.7"})
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
    base = proxy[0]
    r = _chat(base, "sk-camp-1", body)
    assert r.status_code in (400, 403, 429), (r.status_code, r.text[:300])  # throttled, or blocked as its record grows
    assert "Step 1: think." not in r.text


def test_benign_call_is_served_and_logged_back_to_the_service(proxy):
    base, url, auth = proxy[0], proxy[1], proxy[5]
    count = lambda: httpx.get(url + "/v1/accounts/user-2", auth=auth).json()["n_events_live"]  # noqa: E731
    before = count()
    r = _chat(base, "sk-user-2", {"user": "camp-1"})  # a benign key claiming a stopped user is still itself
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Step 1: think. Step 2: answer 0."
    deadline = time.monotonic() + 30
    while count() <= before:
        assert time.monotonic() < deadline, "the logger callback's event never reached the service"
        time.sleep(0.5)


PARAMS = {"max_tokens": 123, "temperature": 0.3, "n": 2, "logprobs": True, "top_logprobs": 2}


def test_logger_and_otel_callback_store_the_decided_subject_and_every_parameter(proxy):
    _, _, engine, otel_engine, decided, _, otel_base = proxy
    r = _chat(otel_base, KEY, PARAMS, **{"User-Agent": "harvester/2.0", "X-Forwarded-For": "198.51.100.23"})
    assert r.status_code == 200 and len(r.json()["choices"]) == 2
    subject = decided[-1]
    assert subject == "default_user_id"  # the guardrail's subject: the key's owner, as LiteLLM names the master key's
    for eng in (engine, otel_engine):  # the logger's record, LiteLLM's own span
        ev, = _landed(eng, "temperature = 0.3")
        got = {k: ev[k] for k in ("account_id", "model", "max_output_tokens", "temperature", "n", "logprobs",
                                  "top_logprobs", "prompt", "input_tokens", "output_tokens")}
        assert got == {"account_id": subject, "model": "mock-model", "max_output_tokens": 123, "temperature": 0.3, "n": 2,
                       "logprobs": True, "top_logprobs": 2, "prompt": "hello", "input_tokens": 21,
                       "output_tokens": 18}, eng.config.db
        assert ev["response"].startswith("Step 1: think.")


def test_a_claimed_end_user_does_not_move_the_subject_on_any_path(proxy):
    _, _, engine, otel_engine, decided, _, otel_base = proxy
    r = _chat(otel_base, KEY, {"temperature": 0.11, "user": "invented-end-user"})
    assert r.status_code == 200
    assert decided[-1] == "default_user_id"
    for eng in (engine, otel_engine):
        ev, = _landed(eng, "temperature = 0.11")
        assert ev["account_id"] == "default_user_id", (eng.config.db, ev["account_id"])
