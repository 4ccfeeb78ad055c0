"""Envoy ``ext_authz`` (HTTP service) endpoint.

Envoy sends the original request's method, path (after ``path_prefix``) and
allowed headers, and the body when ``with_request_body`` is set. The answer:
200 lets the request through; 429 (with ``Retry-After``) or 403 is sent to
the client with the ``x-distillguard-*`` headers. See docs/serve.md for the
Envoy configuration.

The account is the header Envoy sets after authenticating the caller
(``serve.gateway.account_header`` in the policy, default ``x-user-id``;
Envoy must overwrite any client copy of it). Nothing else the client sends,
no other header and no body field, names the account unless the policy
says so (``serve.gateway.trust_body_user``). The call to distillguard
carries a ``gateway`` token in ``Authorization`` (Envoy's
``authorization_request.headers_to_add`` overrides the client's), so the
client's API key identity is read from ``x-api-key`` only.
"""
from __future__ import annotations

import hashlib
import logging

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from distillguard.request_params import OPENAI_REQUEST_PARAMS, fingerprint_of_headers
from distillguard.serve.gateways import gateway_verdict

__all__ = ["register_envoy", "event_from_http"]

log = logging.getLogger("distillguard.gateway")

DEFAULT_ACCOUNT_HEADER = "x-user-id"
OPENAI_FIELDS = {"model": "model", **OPENAI_REQUEST_PARAMS}


def event_from_http(headers, body: bytes | None, account_header: str = DEFAULT_ACCOUNT_HEADER,
                    trust_body_user: bool = False) -> dict:
    """A canonical event from a checked request's headers and (optional) OpenAI-style JSON body."""
    ev: dict = {}
    if headers.get(account_header):
        ev["account_id"] = headers[account_header]
    auth = headers.get("x-api-key") or ""
    if auth:
        key = auth.split(" ", 1)[-1].encode()
        ev["api_key_id"] = "key-" + hashlib.sha256(key).hexdigest()[:16]  # never the key itself
    xff = headers.get("x-forwarded-for") or headers.get("x-envoy-external-address") or ""
    if xff:
        ev["client_ip"] = xff.split(",")[0].strip()
    if headers.get("user-agent"):
        ev["user_agent"] = headers["user-agent"]
    fingerprint = fingerprint_of_headers(headers)
    if fingerprint:
        ev["client_fingerprint"] = fingerprint
    if headers.get("x-org-id"):
        ev["org_id"] = headers["x-org-id"]
    if body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            for k, f in OPENAI_FIELDS.items():
                if doc.get(k) is not None and not isinstance(doc.get(k), (dict, list)):
                    ev.setdefault(f, doc[k])
            msgs = doc.get("messages") if doc.get("messages") is not None else doc.get("input")
            if msgs is not None:
                ev["prompt"] = msgs
            elif isinstance(doc.get("prompt"), str):
                ev["prompt"] = doc["prompt"]
            if trust_body_user and isinstance(doc.get("user"), str) and "account_id" not in ev:
                ev["account_id"] = doc["user"]
    return ev


def register_envoy(app, decide) -> None:
    """Add ``/v1/ext_authz`` and ``/v1/ext_authz/{path}`` (any method) to ``app``."""
    from distillguard.ingest.normalize import Reject, normalize
    from datetime import datetime, timezone

    gw = app.state.engine.gateway_settings()
    account_header = str(gw.get("account_header") or DEFAULT_ACCOUNT_HEADER).lower()
    trust_body_user = bool(gw.get("trust_body_user", False))

    async def check(request: Request, path: str = ""):
        body = await request.body()
        ev = event_from_http(request.headers, body, account_header, trust_body_user)
        ev["ts"] = datetime.now(timezone.utc)
        try:
            ev = normalize(ev)
        except Reject as rej:
            if rej.reason == "missing_subject":
                fail = app.state.engine.policy.fail
                log.warning("distillguard ext_authz: no account (%s header or x-api-key): failing %s", account_header, fail)
                return JSONResponse({"detail": f"no account: Envoy must set {account_header} (or send x-api-key)"},
                                    status_code=403 if fail == "closed" else 200,
                                    headers={"x-distillguard-fail": fail})
            # a malformed parameter never decides: judge the caller on identity alone
            ev = normalize({k: v for k, v in ev.items() if k in ("account_id", "api_key_id", "ts", "client_ip", "user_agent",
                                                              "client_fingerprint")})
        status, headers, message = gateway_verdict(decide(ev, None))
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app.add_api_route("/v1/ext_authz", check, methods=methods, tags=["gateways"], include_in_schema=False)
    app.add_api_route("/v1/ext_authz/{path:path}", check, methods=methods, tags=["gateways"], include_in_schema=False,
                      summary="Envoy ext_authz check: 200 allow, 429 throttle, 403 challenge/block")
