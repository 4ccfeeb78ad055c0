"""The canonical request-event and account-metadata schemas (see DESIGN.md).

Defined once here as PyArrow schemas; every reader maps onto these names and
every later stage reads them. Aliases from other log formats map onto the
canonical names in :data:`EVENT_ALIASES`.
"""
from __future__ import annotations

import pyarrow as pa

__all__ = [
    "EVENT_SCHEMA",
    "ACCOUNT_SCHEMA",
    "EVENT_ALIASES",
    "ACCOUNT_ALIASES",
    "INT_FIELDS",
    "FLOAT_FIELDS",
    "BOOL_FIELDS",
    "STATUSES",
    "subject_of",
]

TS = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("api_key_id", pa.string()),
        pa.field("org_id", pa.string()),
        pa.field("client_ip", pa.string()),
        pa.field("user_agent", pa.string()),
        pa.field("client_fingerprint", pa.string()),  # JA4 / JA3 TLS or HTTP/2 SETTINGS fingerprint (docs/ingest.md)
        pa.field("model", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("system_prompt", pa.string()),
        pa.field("response", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("reasoning_tokens", pa.int64()),
        pa.field("temperature", pa.float64()),
        pa.field("top_p", pa.float64()),
        pa.field("max_output_tokens", pa.int64()),
        pa.field("n", pa.int64()),
        pa.field("logprobs", pa.bool_()),
        pa.field("top_logprobs", pa.int64()),
        pa.field("reasoning_effort", pa.string()),
        pa.field("conversation_id", pa.string()),
        pa.field("is_batch", pa.bool_()),
        pa.field("status", pa.string()),
        pa.field("extra", pa.string()),  # JSON object of unknown fields
    ]
)
"""One row per API request. ``account_id`` is the subject: when a source has
no account id, the ingester puts the API key id there (DESIGN.md)."""

ACCOUNT_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("created_at", TS),
        pa.field("email_domain", pa.string()),
        pa.field("payment_fingerprint", pa.string()),
        pa.field("country", pa.string()),
        pa.field("org_id", pa.string()),
        pa.field("verified", pa.bool_()),
        pa.field("signup_path", pa.string()),
        pa.field("extra", pa.string()),
    ]
)

EVENT_ALIASES: dict[str, str] = {
    "request_id": "event_id",
    "id": "event_id",
    "spanid": "event_id",
    "span_id": "event_id",
    "timestamp": "ts",
    "time": "ts",
    "starttime": "ts",
    "start_time": "ts",
    "created": "ts",
    "end_user_id": "account_id",
    "end_user": "account_id",
    "user": "account_id",
    "user_id": "account_id",
    "safety_identifier": "account_id",
    "enduser.id": "account_id",
    "user.id": "account_id",
    "api_key": "api_key_id",
    "team_id": "org_id",
    "organization_id": "org_id",
    "project_id": "org_id",
    "client.address": "client_ip",
    "requester_ip_address": "client_ip",
    "ip": "client_ip",
    # client_fingerprint, first present wins: JA4 (stable across Chrome's per-connection extension order)
    # before JA3, TLS before HTTP/2 (one HTTP/2 stack's SETTINGS are shared by all its clients); docs/ingest.md
    "ja4": "client_fingerprint",
    "ja4_fingerprint": "client_fingerprint",
    "ja4fingerprint": "client_fingerprint",
    "ja4_hash": "client_fingerprint",
    "tls.client.ja3": "client_fingerprint",
    "ja3": "client_fingerprint",
    "ja3_hash": "client_fingerprint",
    "ja3hash": "client_fingerprint",
    "ja3_fingerprint": "client_fingerprint",
    "ja3fingerprint": "client_fingerprint",
    "tls_client_ja3": "client_fingerprint",
    "tls_fingerprint": "client_fingerprint",
    "http2_fingerprint": "client_fingerprint",
    "h2_fingerprint": "client_fingerprint",
    "h2_settings_fp": "client_fingerprint",
    "gen_ai.request.model": "model",
    "prompt_tokens": "input_tokens",
    "completion_tokens": "output_tokens",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "session_id": "conversation_id",
    "gen_ai.conversation.id": "conversation_id",
    "thinking_budget": "reasoning_effort",
}
"""Other formats' names -> canonical names. Keys are lower-case; readers
match case-insensitively. Format-specific nested mappings (OTLP attributes,
LiteLLM spend logs) live in their readers."""

ACCOUNT_ALIASES: dict[str, str] = {
    "user": "account_id",
    "user_id": "account_id",
    "id": "account_id",
    "created": "created_at",
    "signup_ts": "created_at",
    "payment_hash": "payment_fingerprint",
    "card_fingerprint": "payment_fingerprint",
    "team_id": "org_id",
    "organization_id": "org_id",
}

INT_FIELDS = frozenset(
    ["input_tokens", "output_tokens", "reasoning_tokens", "max_output_tokens", "n", "top_logprobs"]
)
FLOAT_FIELDS = frozenset(["temperature", "top_p"])
BOOL_FIELDS = frozenset(["logprobs", "is_batch"])
STATUSES = frozenset(["ok", "error", "refused", "rate_limited"])


def subject_of(record: dict) -> str | None:
    """The subject of a canonical record: ``account_id``, else ``api_key_id``."""
    return record.get("account_id") or record.get("api_key_id") or None
