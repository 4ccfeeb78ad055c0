"""LiteLLM proxy plug-ins: a ``CustomGuardrail`` (pre-call hook) and a logger callback.

``DistillguardGuardrail.async_pre_call_hook`` asks ``POST /v1/decide`` about
each call and raises ``HTTPException``: 429 with ``Retry-After`` for throttle,
403 for challenge (with the verification link) and block; in shadow mode it
never raises. ``DistillguardLogger`` posts each finished call's
``standard_logging_object`` to ``POST /v1/events?format=litellm`` in batches.

It cannot be talked past by the client:

- the event carries the gateway's identities (end user, the key's user, the
  key) and the service applies the one subject rule (:mod:`distillguard.subject`):
  by default the key's owner, never the request body's ``user`` unless the
  operator's rule puts ``end_user`` first;
- request parameters of the wrong type or range (``max_tokens: -1``,
  ``logprobs: "maybe"``, a 513-character string) are dropped from the event,
  not sent to be refused; if the service still refuses the event it is asked
  again with the identity alone;
- any answer that is not a decision applies the ``fail`` setting (the
  service's policy, read from ``/healthz``, unless configured) explicitly,
  and says why in the proxy's log.

Both call the service with a ``gateway`` token: ``api_key`` or ``$DISTILLGUARD_TOKEN``.

The ``litellm`` package is optional: without it the classes derive from small
stand-ins with the same hook signatures, so the HTTP contract can be tested
(tests/test_serve_gateways.py). Configuration: docs/serve.md.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from datetime import datetime, timezone

import httpx

from distillguard.request_params import OPENAI_REQUEST_PARAMS, fingerprint_of_headers
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

__all__ = ["DistillguardGuardrail", "DistillguardLogger", "event_from_litellm", "clean_event", "proxy_handler_instance",
           "logger_instance"]

log = logging.getLogger("distillguard.gateway")


def _token(api_key: str | None) -> str | None:
    return api_key or os.environ.get("DISTILLGUARD_TOKEN") or None


def _headers(api_key: str | None) -> dict:
    tok = _token(api_key)
    return {"Authorization": f"Bearer {tok}"} if tok else {}


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(limit: int):
    return lambda v: isinstance(v, str) and 0 < len(v) <= limit


_VALID = {
    "account_id": _text(512), "api_key_id": _text(512), "org_id": _text(512), "model": _text(512),
    "client_ip": _text(128), "user_agent": _text(2048), "client_fingerprint": _text(2048), "ts": _text(64),
    "prompt": lambda v: isinstance(v, (str, list)),
    "max_output_tokens": _count, "n": _count, "top_logprobs": _count,
    "logprobs": lambda v: isinstance(v, bool), "temperature": _finite, "top_p": _finite,
    "reasoning_effort": lambda v: _text(64)(v) or _count(v),
}
_IDENTITY = ("identity", "org_id", "ts")


def clean_event(ev: dict) -> tuple[dict, list[str]]:
    """The event without the fields a client sent malformed; returns ``(event, dropped field names)``.

    A malformed parameter says nothing about who is calling: dropping it keeps the decision about the
    caller, where sending it would get the whole event refused.
    """
    out, dropped = {}, []
    for k, v in ev.items():
        if k == "identity" and isinstance(v, dict):  # a client-chosen end user can be malformed too
            bad = [src for src, who in v.items() if who is not None and not _text(512)(who)]
            dropped += [f"identity.{src}" for src in bad]
            v = {src: who for src, who in v.items() if who is not None and src not in bad}
        if _VALID.get(k, lambda _: True)(v):
            out[k] = v
        else:
            dropped.append(k)
    return out, dropped


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
    meta = meta if isinstance(meta, dict) else {}
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
        "client_fingerprint": fingerprint_of_headers(headers),
    }
    for k, field in OPENAI_REQUEST_PARAMS.items():
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
            for k in OPENAI_REQUEST_PARAMS:
                if src.get(k) is not None and k not in out:
                    out[k] = src[k]
    return out


class DistillguardGuardrail(CustomGuardrail):
    """Pre-call guardrail: throttle -> 429 + Retry-After; challenge, block -> 403; shadow never blocks.

    Parameters
    ----------
    api_base
        The distillguard service [default: ``$DISTILLGUARD_URL`` or http://127.0.0.1:8787].
    api_key
        A ``gateway`` token for the service [default: ``$DISTILLGUARD_TOKEN``].
    timeout
        Seconds to wait for a decision.
    fail
        ``open`` (serve) or ``closed`` (refuse with 503) when the service gives no decision [default: the
        service policy's ``fail``, read from ``/healthz``; ``closed`` until it has been read].
    """

    def __init__(self, api_base: str | None = None, timeout: float = 0.25, fail: str | None = None,
                 api_key: str | None = None, **kwargs):
        self.api_base = (api_base or os.environ.get("DISTILLGUARD_URL") or "http://127.0.0.1:8787").rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        if fail not in (None, "open", "closed"):
            raise ValueError(f"fail must be 'open' or 'closed', not {fail!r}")
        self.fail = fail
        self._policy_fail: tuple[float, str] | None = None
        self._client: httpx.AsyncClient | None = None
        kwargs.setdefault("guardrail_name", "distillguard")
        kwargs.setdefault("event_hook", "pre_call")
        kwargs.setdefault("default_on", True)
        super().__init__(**kwargs)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.api_base, timeout=self.timeout, headers=_headers(self.api_key))
        return self._client

    async def decide(self, event: dict) -> tuple[dict | None, str]:
        """``(decision, "")``, or ``(None, why there is none)``."""
        event, dropped = clean_event(event)
        if dropped:
            log.warning("distillguard: dropped malformed request parameters %s from the event", dropped)
        try:
            r = await self._http().post("/v1/decide", json=event)
            if r.status_code == 422:  # still refused: ask about the caller alone
                r = await self._http().post("/v1/decide", json={k: event[k] for k in _IDENTITY if k in event})
            if r.status_code == 200:
                d = r.json()
                if isinstance(d, dict) and isinstance(d.get("action"), str) and d.get("decision_id") is not None:
                    return d, ""
                return None, "the service's answer is not a decision"
            return None, f"the service answered HTTP {r.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            return None, f"the service did not answer ({type(exc).__name__})"

    async def fail_setting(self) -> str:
        """``open`` or ``closed``: configured, else the service policy's (cached a minute), else ``closed``."""
        if self.fail:
            return self.fail
        now = time.monotonic()
        if self._policy_fail is None or now - self._policy_fail[0] > 60:
            try:
                r = await self._http().get("/healthz")
                f = r.json().get("fail") if r.status_code == 200 else None
                if f in ("open", "closed"):
                    self._policy_fail = (now, f)
            except (httpx.HTTPError, ValueError):
                pass
        return self._policy_fail[1] if self._policy_fail else "closed"

    async def async_pre_call_hook(self, user_api_key_dict, cache, data: dict, call_type):
        decision, why = await self.decide(event_from_litellm(data, user_api_key_dict))
        if decision is None:
            fail = await self.fail_setting()
            log.warning("distillguard: no decision (%s): failing %s", why, fail)
            if fail == "open":
                return data
            raise HTTPException(status_code=503, detail=f"distillguard gave no decision ({why}); failing closed")
        status, headers, message = gateway_verdict(decision)
        meta = data.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta["distillguard_decision"] = {k: decision[k] for k in ("decision_id", "account_id", "action", "risk", "mode")}
        if status != 200:
            raise HTTPException(status_code=status, detail=message, headers=headers)
        return data


class DistillguardLogger(CustomLogger):
    """Posts finished calls to ``/v1/events?format=litellm`` (batched; a failed post is retried on the next flush)."""

    def __init__(self, api_base: str | None = None, batch_size: int | None = None, timeout: float = 2.0,
                 api_key: str | None = None, **kwargs):
        self.api_base = (api_base or os.environ.get("DISTILLGUARD_URL") or "http://127.0.0.1:8787").rstrip("/")
        self.api_key = api_key
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
                async with httpx.AsyncClient(base_url=self.api_base, timeout=self.timeout, headers=_headers(self.api_key)) as c:
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
