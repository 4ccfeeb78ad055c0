"""LiteLLM proxy plug-ins: a ``CustomGuardrail`` (pre-call hook) and a logger callback.

``DistillguardGuardrail.async_pre_call_hook`` asks ``POST /v1/decide`` about
each call and raises ``HTTPException``: 429 with ``Retry-After`` for throttle,
403 for challenge (with the verification link) and block; in shadow mode it
never raises. ``DistillguardLogger`` posts each finished call's
``standard_logging_object`` to ``POST /v1/events?format=litellm`` in batches.

The ``litellm`` package is optional: without it the classes derive from small
stand-ins with the same hook signatures, so the HTTP contract can be tested
(tests/test_serve_gateways.py). Configuration: docs/serve.md.
"""
from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone

import httpx

from distillguard.serve.gateways import gateway_verdict

try:  # pragma: no cover - depends on the optional package
    from litellm.integrations.custom_guardrail import CustomGuardrail
    from litellm.integrations.custom_logger import CustomLogger
except ImportError:  # the documented interface, for use and tests without litellm
    class CustomLogger:  # type: ignore[no-redef]
        def __init__(self, **kwargs):
            pass

    class CustomGuardrail(CustomLogger):  # type: ignore[no-redef]
        def __init__(self, guardrail_name=None, event_hook=None, default_on=False, **kwargs):
            self.guardrail_name = guardrail_name
            self.event_hook = event_hook
            self.default_on = default_on
            super().__init__(**kwargs)

try:
    from fastapi import HTTPException
except ImportError:  # pragma: no cover
    HTTPException = None

__all__ = ["DistillguardGuardrail", "DistillguardLogger", "event_from_litellm", "proxy_handler_instance",
           "logger_instance"]


_REQUEST_PARAMS = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens", "n": "n",
                   "logprobs": "logprobs", "top_logprobs": "top_logprobs", "temperature": "temperature",
                   "top_p": "top_p", "reasoning_effort": "reasoning_effort"}


def _user_key(user_api_key_dict) -> dict:
    if user_api_key_dict is None:
        return {}
    if isinstance(user_api_key_dict, dict):
        return user_api_key_dict
    return {k: getattr(user_api_key_dict, k, None) for k in ("token", "user_id", "team_id", "org_id", "end_user_id")}


def event_from_litellm(data: dict, user_api_key_dict=None) -> dict:
    """A canonical event from a LiteLLM call's request ``data`` and the caller's key.

    The subject is left to the service: the event carries the gateway's
    ``identity`` candidates and the service applies the one subject rule
    (:mod:`distillguard.subject`), as it does for the logger's records.
    """
    key = _user_key(user_api_key_dict)
    meta = data.get("metadata") or data.get("litellm_metadata") or {}
    headers = meta.get("headers") if isinstance(meta.get("headers"), dict) else {}
    ev = {
        "ts": datetime.now(timezone.utc).isoformat(),
        "identity": {"end_user": key.get("end_user_id") or meta.get("user_api_key_end_user_id") or data.get("user"),
                     "key_user": key.get("user_id") or meta.get("user_api_key_user_id"),
                     "key": key.get("token") or meta.get("user_api_key_hash")},
        "org_id": key.get("team_id") or key.get("org_id"),
        "model": data.get("model"),
        "prompt": data.get("messages") if data.get("messages") is not None else data.get("prompt"),
        "client_ip": meta.get("requester_ip_address") or headers.get("x-forwarded-for"),
        "user_agent": meta.get("user_agent") or headers.get("user-agent"),
    }
    for k, field in _REQUEST_PARAMS.items():
        if data.get(k) is not None and ev.get(field) is None:
            ev[field] = data[k]
    return {k: v for k, v in ev.items() if v is not None}


_BODY_KEPT = ("model", "messages", "input", "prompt", "user")  # LiteLLM adds objects to the body: not these


def _request_params(kwargs: dict, slo: dict) -> dict:
    """The request's sampling parameters wherever LiteLLM 1.106 keeps them (first found wins)."""
    lp = kwargs.get("litellm_params") if isinstance(kwargs.get("litellm_params"), dict) else {}
    psr = kwargs.get("proxy_server_request") or lp.get("proxy_server_request") or {}
    body = psr.get("body") if isinstance(psr, dict) and isinstance(psr.get("body"), dict) else {}
    out: dict = {}
    for src in (slo.get("model_parameters"), kwargs.get("optional_params"), body, kwargs):
        if isinstance(src, dict):
            for k in _REQUEST_PARAMS:
                if src.get(k) is not None and k not in out:
                    out[k] = src[k]
    return out


class DistillguardGuardrail(CustomGuardrail):
    """Pre-call guardrail: throttle -> 429 + Retry-After; challenge, block -> 403; shadow never blocks.

    Parameters
    ----------
    api_base
        The distillguard service [default: ``$DISTILLGUARD_URL`` or http://127.0.0.1:8787].
    timeout
        Seconds to wait for a decision.
    fail_open
        What to do when the service cannot answer: let the call through (True) or refuse it (503).
    """

    def __init__(self, api_base: str | None = None, timeout: float = 0.25, fail_open: bool = True, **kwargs):
        self.api_base = (api_base or os.environ.get("DISTILLGUARD_URL") or "http://127.0.0.1:8787").rstrip("/")
        self.timeout = timeout
        self.fail_open = fail_open
        self._client: httpx.AsyncClient | None = None
        kwargs.setdefault("guardrail_name", "distillguard")
        kwargs.setdefault("event_hook", "pre_call")
        kwargs.setdefault("default_on", True)
        super().__init__(**kwargs)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.api_base, timeout=self.timeout)
        return self._client

    async def decide(self, event: dict) -> dict | None:
        try:
            r = await self._http().post("/v1/decide", json=event)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        return None

    async def async_pre_call_hook(self, user_api_key_dict, cache, data: dict, call_type):
        decision = await self.decide(event_from_litellm(data, user_api_key_dict))
        if decision is None:
            if self.fail_open:
                return data
            raise HTTPException(status_code=503, detail="distillguard unavailable (fail closed)")
        status, headers, message = gateway_verdict(decision)
        meta = data.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta["distillguard_decision"] = {k: decision[k] for k in ("decision_id", "account_id", "action", "risk", "mode")}
        if status != 200:
            raise HTTPException(status_code=status, detail=message, headers=headers)
        return data


class DistillguardLogger(CustomLogger):
    """Posts finished calls to ``/v1/events?format=litellm`` (batched; a failed post is retried on the next flush)."""

    def __init__(self, api_base: str | None = None, batch_size: int | None = None, timeout: float = 2.0, **kwargs):
        self.api_base = (api_base or os.environ.get("DISTILLGUARD_URL") or "http://127.0.0.1:8787").rstrip("/")
        self.batch_size = batch_size or int(os.environ.get("DISTILLGUARD_LOG_BATCH", "200"))
        self.timeout = timeout
        self.buffer: list[dict] = []
        self._lock = asyncio.Lock()
        super().__init__(**kwargs)

    @staticmethod
    def record(kwargs: dict, response_obj=None, start_time=None) -> dict:
        """A ``LiteLLM_SpendLogs``-shaped row (read by ``/v1/events?format=litellm`` as spend logs are)."""
        slo = kwargs.get("standard_logging_object") or {}
        meta = slo.get("metadata") or {}
        lp = kwargs.get("litellm_params") if isinstance(kwargs.get("litellm_params"), dict) else {}
        psr = kwargs.get("proxy_server_request") or lp.get("proxy_server_request")
        body = psr.get("body") if isinstance(psr, dict) and isinstance(psr.get("body"), dict) else {}
        rec = {
            "request_id": slo.get("id") or kwargs.get("litellm_call_id"),
            "startTime": slo.get("startTime") or (start_time.timestamp() if start_time else None),
            "model": slo.get("model") or kwargs.get("model"),
            "model_group": slo.get("model_group") or (lp.get("metadata") or {}).get("model_group"),
            "prompt_tokens": slo.get("prompt_tokens"),
            "completion_tokens": slo.get("completion_tokens"),
            "end_user": slo.get("end_user") or meta.get("user_api_key_end_user_id") or body.get("user"),
            "user": meta.get("user_api_key_user_id"),
            "api_key": meta.get("user_api_key_hash"),
            "metadata": meta,
            "messages": slo.get("messages") if slo.get("messages") not in (None, {}, []) else kwargs.get("messages"),
            "response": slo.get("response"),
            "requester_ip_address": meta.get("requester_ip_address") or slo.get("requester_ip_address"),
            "status": slo.get("status") or "success",
            "proxy_server_request": {**{k: body[k] for k in _BODY_KEPT if body.get(k) is not None},
                                     **_request_params(kwargs, slo)},
        }
        return {k: v for k, v in rec.items() if v not in (None, {})}

    async def flush(self) -> None:
        async with self._lock:
            if not self.buffer:
                return
            batch, self.buffer = self.buffer, []
            try:
                async with httpx.AsyncClient(base_url=self.api_base, timeout=self.timeout) as c:
                    r = await c.post("/v1/events", params={"format": "litellm"}, headers={"content-type": "application/json"},
                                     content=json.dumps({"events": batch}, default=str))
                    r.raise_for_status()
            except httpx.HTTPError:
                self.buffer = batch + self.buffer  # keep them for the next flush

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.buffer.append(self.record(kwargs, response_obj, start_time))
        if len(self.buffer) >= self.batch_size:
            await self.flush()

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        rec = self.record(kwargs, response_obj, start_time)
        rec["status"] = "error"
        self.buffer.append(rec)
        if len(self.buffer) >= self.batch_size:
            await self.flush()


proxy_handler_instance = DistillguardGuardrail
logger_instance = DistillguardLogger()
