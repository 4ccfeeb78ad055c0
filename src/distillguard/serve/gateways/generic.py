"""LiteLLM's Generic Guardrail API: ``POST /beta/litellm_basic_guardrail_api``.

LiteLLM sends the texts it extracted from the request plus ``request_data``
(virtual key hash, user, team, end user). A throttle, challenge or block in
enforce mode answers ``BLOCKED`` with the reason (LiteLLM then fails the
call); anything else answers ``NONE``. Responses (``input_type: response``)
are not judged.

The account is the key's owner (``user_api_key_user_id``, else the key's
hash), never ``user_api_key_end_user_id`` (the body's ``user``, the client's
own claim) unless the policy sets ``serve.gateway.trust_end_user``. Without
any identity, or when the request cannot be judged, the policy's ``fail``
setting answers explicitly (``BLOCKED`` when closed) and is logged.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Optional

from pydantic import BaseModel, Field

from distillguard.serve.gateways import gateway_verdict

__all__ = ["register_generic", "GuardrailRequest", "GuardrailResponse"]

log = logging.getLogger("distillguard.gateway")


class GuardrailRequest(BaseModel):
    texts: list[str] = Field(default_factory=list)
    images: Optional[list[str]] = None
    tools: Optional[list[dict[str, Any]]] = None
    request_data: dict[str, Any] = Field(default_factory=dict)
    input_type: str = "request"
    litellm_call_id: Optional[str] = None
    litellm_trace_id: Optional[str] = None
    additional_provider_specific_params: dict[str, Any] = Field(default_factory=dict)


class GuardrailResponse(BaseModel):
    action: str = Field(..., description="BLOCKED, NONE or GUARDRAIL_INTERVENED")
    blocked_reason: Optional[str] = None
    texts: Optional[list[str]] = None


def event_from_guardrail(req: GuardrailRequest, trust_end_user: bool = False) -> dict:
    rd = req.request_data or {}
    owner = rd.get("user_api_key_user_id") or (f"key-{rd['user_api_key_hash']}" if rd.get("user_api_key_hash") else None)
    acc = (rd.get("user_api_key_end_user_id") if trust_end_user else None) or owner
    ev = {
        "ts": datetime.now(timezone.utc),
        "account_id": str(acc) if acc else None,
        "api_key_id": str(rd["user_api_key_hash"]) if rd.get("user_api_key_hash") else None,
        "org_id": rd.get("user_api_key_org_id") or rd.get("user_api_key_team_id"),
        "prompt": "\n".join(t for t in req.texts if isinstance(t, str)) or None,
        "event_id": req.litellm_call_id,
    }
    return {k: v for k, v in ev.items() if v is not None}


def register_generic(app, decide) -> None:
    from distillguard.ingest.normalize import Reject, normalize

    trust_end_user = bool(app.state.engine.gateway_settings().get("trust_end_user", False))

    def failing(why: str) -> dict:
        fail = app.state.engine.policy.fail
        log.warning("distillguard guardrail: %s: failing %s", why, fail)
        if fail == "closed":
            return {"action": "BLOCKED", "blocked_reason": f"distillguard cannot judge this request ({why}); failing closed"}
        return {"action": "NONE"}

    @app.post("/beta/litellm_basic_guardrail_api", response_model=GuardrailResponse, tags=["gateways"])
    async def generic_guardrail(req: GuardrailRequest) -> dict:
        """LiteLLM Generic Guardrail API: BLOCKED for throttle/challenge/block in enforce mode, else NONE."""
        if req.input_type != "request":
            return {"action": "NONE"}
        ev = event_from_guardrail(req, trust_end_user)
        try:
            ev = normalize(ev)
        except Reject as rej:
            if rej.reason == "missing_subject":
                return failing("no key owner or key hash in request_data")
            try:  # a malformed field never decides: judge the caller on identity alone
                ev = normalize({k: v for k, v in ev.items() if k in ("account_id", "api_key_id", "ts")})
            except Reject as rej2:
                return failing(rej2.detail or rej2.reason)
        status, _, message = gateway_verdict(decide(ev, None))
        if status == 200:
            return {"action": "NONE"}
        return {"action": "BLOCKED", "blocked_reason": message}
