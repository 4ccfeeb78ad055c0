"""Gateway plug-ins: how a decision becomes an HTTP answer at the gateway.

- :mod:`.envoy`: Envoy ``ext_authz`` HTTP service endpoint (``/v1/ext_authz/...``);
- :mod:`.generic`: LiteLLM's Generic Guardrail API endpoint (``/beta/litellm_basic_guardrail_api``);
- :mod:`.litellm`: a LiteLLM ``CustomGuardrail`` (pre-call hook) and a logger callback that posts events.

DESIGN.md maps actions onto gateways: throttle -> 429 with Retry-After;
challenge -> 403 with a step-up verification link; block -> 403. In shadow
mode every request passes and the decision travels in headers only.
"""
from __future__ import annotations

__all__ = ["gateway_verdict", "HEADER_PREFIX"]

HEADER_PREFIX = "x-distillguard-"


def gateway_verdict(decision: dict) -> tuple[int, dict[str, str], str]:
    """``(status, headers, message)`` a gateway answers for a decision; status 200 lets the request through."""
    action = decision["action"]
    headers = {
        HEADER_PREFIX + "action": action,
        HEADER_PREFIX + "decision-id": decision["decision_id"],
        HEADER_PREFIX + "risk": f"{decision['risk']:.4f}",
        HEADER_PREFIX + "mode": decision["mode"],
    }
    codes = ",".join(r["code"] for r in decision.get("reasons") or [])[:512]
    if codes:
        headers[HEADER_PREFIX + "reasons"] = codes
    if decision["mode"] != "enforce" or action in ("allow", "monitor"):
        return 200, headers, "allowed"
    if action == "throttle":
        retry = str((decision.get("throttle") or {}).get("retry_after_seconds", 60))
        headers["retry-after"] = retry
        return 429, headers, f"rate limited by distillguard (decision {decision['decision_id']}); retry after {retry} s"
    if action == "challenge":
        ch = decision.get("challenge") or {}
        if ch.get("url"):
            headers[HEADER_PREFIX + "challenge-url"] = ch["url"]
        return 403, headers, (f"verification required (decision {decision['decision_id']}): "
                              f"{ch.get('url') or 'complete step-up verification'}")
    return 403, headers, f"blocked by distillguard (decision {decision['decision_id']}; reasons {codes or '-'})"
