"""LiteLLM's Generic Guardrail API: ``POST /beta/litellm_basic_guardrail_api``.

LiteLLM sends the texts it extracted from the request plus ``request_data``
(virtual key hash, user, team, end user). A throttle, challenge or block in
enforce mode answers ``BLOCKED`` with the reason (LiteLLM then fails the
call); anything else answers ``NONE``. Responses (``input_type: response``)
are not judged.

The account follows the one subject rule (:mod:`distillguard.subject`) over
the key's owner (``user_api_key_user_id``), the key's hash and
``user_api_key_end_user_id`` (the body's ``user``, the client's own claim,
used only when the operator's rule puts ``end_user`` first). Without
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


def event_from_guardrail(req: GuardrailRequest) -> dict:
    rd = req.request_data or {}
    identity = {"end_user": rd.get("user_api_key_end_user_id"), "key_user": rd.get("user_api_key_user_id"),
                "key": rd.get("user_api_key_hash")}
    ev = {
        "ts": datetime.now(timezone.utc),
        "identity": {k: str(v) for k, v in identity.items() if v not in (None, "")} or None,
        "org_id": rd.get("user_api_key_org_id") or rd.get("user_api_key_team_id"),
        "prompt": "\n".join(t for t in req.texts if isinstance(t, str)) or None,
        "event_id": req.litellm_call_id,
    }
    return {k: v for k, v in ev.items() if v is not None}


def register_generic(app, decide) -> None:
    from distillguard.ingest.normalize import Reject, normalize

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
        ev = event_from_guardrail(req)
        try:
            ev = normalize(ev)
        except Reject as rej:
            if rej.reason == "missing_subject":
                return failing("no key owner or key hash in request_data")
            try:  # a malformed field never decides: judge the caller on identity alone
                ev = normalize({k: v for k, v in ev.items() if k in ("identity", "ts")})
            except Reject as rej2:
                return failing(rej2.detail or rej2.reason)
        status, _, message = gateway_verdict(decide(ev, None))
        if status == 200:
            return {"action": "NONE"}
        return {"action": "BLOCKED", "blocked_reason": message}
