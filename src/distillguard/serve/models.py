"""Typed request and response bodies of the decision service (they make its OpenAPI document)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccountMeta", "DecideRequest", "Reason", "Throttle", "Challenge", "Decision", "EventsBatch", "IntakeResult",
    "AssessRequest", "LabelRequest", "LabelResult", "ChallengeResult", "ChallengeOutcome", "CampaignSummary",
    "CampaignDetail", "AccountView", "Health", "ErrorBody",
]

Timestamp = Union[str, float, int]


class AccountMeta(BaseModel):
    """Account metadata (DESIGN.md): what the provider knows about an account."""

    model_config = ConfigDict(extra="allow")
    account_id: Optional[str] = Field(None, max_length=512)
    created_at: Optional[Timestamp] = Field(None, description="ISO 8601 or epoch seconds/milliseconds")
    email_domain: Optional[str] = Field(None, max_length=512, description="a domain, or an e-mail address (reduced to its domain)")
    payment_fingerprint: Optional[str] = Field(None, max_length=512, description="an opaque hash of the payment method")
    country: Optional[str] = Field(None, max_length=64)
    org_id: Optional[str] = Field(None, max_length=512)
    verified: Optional[bool] = None
    signup_path: Optional[str] = Field(None, max_length=512)


class DecideRequest(BaseModel):
    """A canonical request event (DESIGN.md) for the request about to be served.

    ``ts`` defaults to now; unknown fields are kept. ``account`` carries
    metadata of a new or changed account.
    """

    model_config = ConfigDict(extra="allow")
    account_id: Optional[str] = Field(None, max_length=512, description="the subject; api_key_id when absent")
    api_key_id: Optional[str] = Field(None, max_length=512)
    ts: Optional[Timestamp] = None
    event_id: Optional[str] = Field(None, max_length=512)
    org_id: Optional[str] = Field(None, max_length=512)
    client_ip: Optional[str] = Field(None, max_length=128)
    user_agent: Optional[str] = Field(None, max_length=2048)
    client_fingerprint: Optional[str] = Field(None, max_length=2048, description="JA4 / JA3 TLS or HTTP/2 fingerprint")
    model: Optional[str] = Field(None, max_length=512)
    prompt: Optional[Union[str, list[Any]]] = None
    system_prompt: Optional[Union[str, list[Any]]] = None
    input_tokens: Optional[int] = Field(None, ge=0)
    output_tokens: Optional[int] = Field(None, ge=0)
    reasoning_tokens: Optional[int] = Field(None, ge=0)
    temperature: Optional[float] = Field(None, allow_inf_nan=False)
    top_p: Optional[float] = Field(None, allow_inf_nan=False)
    max_output_tokens: Optional[int] = Field(None, ge=0)
    n: Optional[int] = Field(None, ge=0)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(None, ge=0)
    reasoning_effort: Optional[Union[str, int]] = None
    conversation_id: Optional[str] = Field(None, max_length=512)
    is_batch: Optional[bool] = None
    account: Optional[AccountMeta] = None


class Reason(BaseModel):
    code: str = Field(..., description="a DESIGN.md reason code, e.g. SHARED_PAYMENT")
    weight: Optional[float] = Field(None, description="its share of the verdict")
    details: dict[str, Any] = Field(default_factory=dict, description="where it comes from (scan, online, link) and evidence")


class Throttle(BaseModel):
    retry_after_seconds: int
    max_requests_per_minute: Optional[float] = None


class Challenge(BaseModel):
    challenge_id: str
    kind: str
    url: Optional[str] = None
    result_url: str


class Decision(BaseModel):
    """The decision shape of DESIGN.md."""

    decision_id: str
    account_id: str
    action: Literal["allow", "monitor", "challenge", "throttle", "block"]
    risk: float = Field(..., ge=0, le=1)
    reasons: list[Reason]
    ttl_seconds: int
    mode: Literal["shadow", "enforce"]
    rule_id: str
    campaign_id: Optional[str] = None
    throttle: Optional[Throttle] = None
    challenge: Optional[Challenge] = None
    immune_until: Optional[str] = None
    policy_sha256: str = ""


class EventsBatch(BaseModel):
    """A batch of events. Each is validated by the ingest rules; bad ones are quarantined, the rest accepted."""

    events: list[dict[str, Any]] = Field(..., max_length=100_000)


class QuarantineItem(BaseModel):
    index: int
    reason: str
    detail: str = ""


class IntakeResult(BaseModel):
    accepted: int
    duplicates: int
    quarantined: int
    errors: list[QuarantineItem]


class AssessRequest(AccountMeta):
    """Signup-time assessment: account metadata plus the signup request's IP, user agent and client fingerprint."""

    account_id: str = Field(..., min_length=1, max_length=512)
    client_ip: Optional[str] = Field(None, max_length=128)
    user_agent: Optional[str] = Field(None, max_length=2048)
    client_fingerprint: Optional[str] = Field(None, max_length=2048)


class LabelRequest(BaseModel):
    label: Literal["legitimate", "fraudulent"]
    note: Optional[str] = Field(None, max_length=4000)


class LabelResult(BaseModel):
    decision_id: str
    account_id: str
    label: str


class ChallengeResult(BaseModel):
    passed: bool


class ChallengeOutcome(BaseModel):
    account_id: str
    passed: bool
    immune_until: Optional[str] = None


class CampaignSummary(BaseModel):
    campaign_id: str
    risk: Optional[float] = None
    action: Optional[str] = None
    n_accounts: Optional[int] = None
    n_events: Optional[int] = None
    first_seen: Optional[str] = None
    last_seen: Optional[str] = None
    reasons: Optional[list[str]] = None
    n_indicators: int = 0


class CampaignDetail(CampaignSummary):
    accounts: list[str]
    indicators: list[dict[str, Any]]
    evidence: dict[str, Any]


class AccountView(BaseModel):
    account_id: str
    decision: Decision
    scan: Optional[dict[str, Any]] = None
    n_events_live: int
    features: Optional[dict[str, Any]] = None
    links: dict[str, Any]
    label: Optional[str] = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    mode: str
    fail: str
    scan_run_id: Optional[str] = None
    campaigns: int
    map_age_seconds: Optional[float] = None
    journal_pending: int
    state: Literal["memory", "redis"]
    last_error: Optional[str] = None
    calibration: Literal["population", "reference"] = Field(
        "reference", description="what online signal scores are relative to: the last scan's population baselines, "
                                 "or the packaged reference ones (no scan stored any yet, or it was too small)")


class ErrorBody(BaseModel):
    detail: Any
