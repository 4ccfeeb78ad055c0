"""LiteLLM's Generic Guardrail API: ``POST /beta/litellm_basic_guardrail_api``.

LiteLLM sends the texts it extracted from the request plus ``request_data``
(virtual key hash, user, team, end user). A throttle, challenge or block in
enforce mode answers ``BLOCKED`` with the reason (LiteLLM then fails the
call); anything else answers ``NONE``. Responses (``input_type: response``)
are not judged.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from pydantic import BaseModel, Field

from distillguard.serve.gateways import gateway_verdict

__all__ = ["register_generic", "GuardrailRequest", "GuardrailResponse"]


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
    acc = rd.get("user_api_key_end_user_id") or rd.get("user_api_key_user_id")
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
    from fastapi.exceptions import RequestValidationError

    from distillguard.ingest.normalize import Reject, normalize

    @app.post("/beta/litellm_basic_guardrail_api", response_model=GuardrailResponse, tags=["gateways"])
    async def generic_guardrail(req: GuardrailRequest) -> dict:
        """LiteLLM Generic Guardrail API: BLOCKED for throttle/challenge/block in enforce mode, else NONE."""
        if req.input_type != "request":
            return {"action": "NONE"}
        try:
            ev = normalize(event_from_guardrail(req))
        except Reject as rej:
            raise RequestValidationError([{"loc": ("body", "request_data"), "msg": rej.detail or rej.reason,
                                           "type": rej.reason}]) from None
        status, _, message = gateway_verdict(decide(ev, None))
        if status == 200:
            return {"action": "NONE"}
        return {"action": "BLOCKED", "blocked_reason": message}
