"""Gateway plug-ins against a real server: Envoy ext_authz, LiteLLM Generic Guardrail API, LiteLLM guardrail + logger.

The LiteLLM classes are exercised through their documented hook signatures
(``async_pre_call_hook``, ``async_log_success_event``); the ``litellm``
package itself is optional and not installed in the test environment.
"""
from __future__ import annotations

import asyncio

import httpx
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import auth_headers, fixture_store, free_port, make_token, serving

from test_serve import enforce_policy


GW: dict[str, str] = {}  # base URL -> a gateway token of that service


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gw")
    db = fixture_store(tmp / "dg.duckdb")
    engine = Engine(EngineConfig(db=str(db), policy=enforce_policy(tmp), refresh_seconds=3600))
    with serving(engine) as u:
        GW[u] = make_token(db, "gateway")
        GW["reader:" + u] = make_token(db, "reader")
        yield u


@pytest.fixture(scope="module")
def shadow_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gw-shadow")
    db = fixture_store(tmp / "dg.duckdb")
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600))  # packaged policy: shadow
    with serving(engine) as u:
        GW[u] = make_token(db, "gateway")
        yield u


def _h(url, **headers):
    return {**auth_headers(GW[url]), **headers}


def test_envoy_ext_authz_maps_actions_to_status_and_headers(url):
    chat = {"model": "orion-2", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 100}
    r = httpx.post(url + "/v1/ext_authz/v1/chat/completions", json=chat, headers=_h(url, **{"x-user-id": "camp-1"}))
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert r.headers["x-distillguard-action"] == "throttle" and r.headers["x-distillguard-decision-id"]
    r = httpx.post(url + "/v1/ext_authz/v1/chat/completions", json=chat,
                   headers=_h(url, **{"x-user-id": "new-envoy", "x-forwarded-for": "203.0.113.7, 10.0.0.1"}))
    assert r.status_code == 403 and r.headers["x-distillguard-challenge-url"].startswith("https://verify.example.test/")
    r = httpx.get(url + "/v1/ext_authz/v1/models", headers=_h(url, **{"x-api-key": "sk-benign-key"}))
    assert r.status_code == 200 and r.headers["x-distillguard-action"] == "allow"
    r = httpx.get(url + "/v1/ext_authz/v1/models", headers=_h(url))
    assert r.status_code == 200 and r.headers["x-distillguard-fail"] == "open"  # no subject: the policy's fail, said so


def test_shadow_mode_never_blocks_at_the_gateway(shadow_url):
    r = httpx.post(shadow_url + "/v1/ext_authz/v1/chat/completions", json={}, headers=_h(shadow_url, **{"x-user-id": "camp-1"}))
    assert r.status_code == 200 and r.headers["x-distillguard-mode"] == "shadow"
    assert r.headers["x-distillguard-action"] in ("throttle", "block", "challenge")


def test_litellm_generic_guardrail_api(url):
    body = {"texts": ["hello"], "request_data": {"user_api_key_user_id": "camp-2", "user_api_key_hash": "h1"},
            "input_type": "request", "litellm_call_id": "call-1", "additional_provider_specific_params": {}}
    post = lambda: httpx.post(url + "/beta/litellm_basic_guardrail_api", json=body, headers=_h(url)).json()  # noqa: E731
    r = post()
    assert r["action"] == "BLOCKED" and "rate limited" in r["blocked_reason"]
    body["request_data"] = {"user_api_key_user_id": "user-2"}
    assert post()["action"] == "NONE"
    body["input_type"] = "response"
    body["request_data"] = {"user_api_key_user_id": "camp-2"}
    assert post()["action"] == "NONE"


def test_litellm_custom_guardrail_pre_call_hook(url):
    from fastapi import HTTPException

    from distillguard.serve.gateways.litellm import DistillguardGuardrail

    data = {"model": "orion-2", "messages": [{"role": "user", "content": "hi"}], "user": "someone-else"}
    dead = f"http://127.0.0.1:{free_port()}"
    camp3 = {"user_id": "camp-3", "token": "hashed-key-3"}

    async def scenario():
        g = DistillguardGuardrail(api_base=url, api_key=GW[url])
        hook = g.async_pre_call_hook
        with pytest.raises(HTTPException) as exc:  # the key's owner is judged, whatever the body's user says
            await hook(camp3, None, dict(data), "completion")
        assert exc.value.status_code == 429 and exc.value.headers["retry-after"] == "30"
        with pytest.raises(HTTPException) as exc:
            await hook({"user_id": "lit-new"}, None, {**data, "metadata": {"requester_ip_address": "203.0.113.7"}},
                       "completion")
        assert exc.value.status_code == 403 and "verify.example.test" in exc.value.detail
        out = await hook({"user_id": "user-4"}, None, dict(data), "completion")
        assert out["metadata"]["distillguard_decision"]["action"] == "allow"
        # no decision: the fail setting, explicitly; unknown (service never reached) means closed
        assert (await DistillguardGuardrail(api_base=dead, fail="open").async_pre_call_hook(camp3, None, dict(data), "completion"))
        for g in (DistillguardGuardrail(api_base=dead, fail="closed"), DistillguardGuardrail(api_base=dead)):
            with pytest.raises(HTTPException) as exc:
                await g.async_pre_call_hook(camp3, None, dict(data), "completion")
            assert exc.value.status_code == 503

    asyncio.run(scenario())


def test_litellm_logger_callback_posts_events(url):
    from distillguard.serve.gateways.litellm import DistillguardLogger

    log = DistillguardLogger(api_base=url, batch_size=2, api_key=GW[url])

    async def scenario():
        for i in range(2):
            await log.async_log_success_event({"standard_logging_object": slo(i)}, None, None, None)

    def slo(i):
        return {"id": f"lit-{i}", "startTime": 1772582400 + i, "model": "orion-2", "prompt_tokens": 10,
               "completion_tokens": 500, "end_user": "claimed-by-the-client",
               "metadata": {"user_api_key_hash": "h1", "user_api_key_user_id": "logged-1", "requester_ip_address": "192.0.2.1"},
               "messages": [{"role": "user", "content": f"question {i}"}], "response": {"choices": []}}

    asyncio.run(scenario())
    assert not log.buffer
    v = httpx.get(url + "/v1/accounts/logged-1", headers=auth_headers(GW["reader:" + url])).json()
    assert v["n_events_live"] == 2 and v["features"]["output_tokens"] == 1000


def test_every_gateway_path_reads_the_same_request_parameters():
    """Envoy's body mapping, the LiteLLM guardrail and OTLP invocation parameters share one list of names."""
    import json

    from distillguard.ingest.otlp import Item, map_item
    from distillguard.serve.gateways.envoy import event_from_http
    from distillguard.serve.gateways.litellm import event_from_litellm

    params = {"max_output_tokens": 300, "n": 2, "logprobs": True, "top_logprobs": 3, "temperature": 0.0,
              "top_p": 0.9, "reasoning_effort": "high"}  # max_output_tokens: the Responses API's name
    want = dict(params)
    envoy = event_from_http({"x-user-id": "u"}, json.dumps({"model": "orion-2", **params}).encode())
    litellm = event_from_litellm({"model": "orion-2", **params}, {"user_id": "u"})
    otlp, _ = map_item(Item("span", "llm", "ab" * 8, "cd" * 16, "", None, 0,
                            {"openinference.span.kind": "LLM", "user.id": "u",
                             "llm.invocation_parameters": json.dumps(params)}, {}))
    for got in (envoy, litellm, otlp):
        assert {k: got.get(k) for k in want} == want
