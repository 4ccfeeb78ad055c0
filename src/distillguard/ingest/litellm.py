"""LiteLLM spend logs (``LiteLLM_SpendLogs`` rows as CSV, a JSON array or JSON lines; docs/ingest.md)."""
from __future__ import annotations

from typing import ClassVar, Iterator

from distillguard.ingest.base import ReadBatch
from distillguard.ingest.normalize import Reject, flatten_messages
from distillguard.ingest.records import _collect, _csv_records, _jsonish, _response_text, iter_json_records
from distillguard.request_params import OPENAI_REQUEST_PARAMS, fingerprint_of_headers

__all__ = ["LiteLLMSource", "map_litellm"]


_LITELLM = {
    "request_id": "event_id", "starttime": "ts", "api_key": "api_key_id", "model": "model",
    "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens", "requester_ip_address": "client_ip",
    "team_id": "org_id", "organization_id": "org_id", "session_id": "conversation_id", "status": "status",
}


def map_litellm(row: dict):
    """One ``LiteLLM_SpendLogs`` row -> (record, extra). Missing columns are fine."""
    if not isinstance(row, dict):
        raise Reject("not_an_object", f"record is a JSON {type(row).__name__}, not an object")
    low = {str(k).lower(): (None if v == "" else v) for k, v in row.items()}
    rec: dict = {}
    extra: dict = {}
    for k, v in low.items():
        if k in _LITELLM:
            rec[_LITELLM[k]] = v
    if low.get("model_group"):  # the name callers ask for; ``model`` is the deployment
        rec["model"] = low["model_group"]
        if low.get("model"):
            extra["deployment_model"] = low["model"]
    meta = _jsonish(low.get("metadata"))
    meta = meta if isinstance(meta, dict) else {}
    body = _jsonish(low.get("proxy_server_request"))
    if isinstance(body, dict):
        body = body.get("body", body) if isinstance(body.get("body"), dict) else body
    else:
        body = {}
    # the candidates of the one subject rule (distillguard.subject); the key is also api_key_id
    rec["identity"] = {"end_user": low.get("end_user") or meta.get("user_api_key_end_user_id") or body.get("user"),
                       "key_user": low.get("user") or meta.get("user_api_key_user_id"),
                       "key": low.get("api_key") or meta.get("user_api_key_hash")}
    if meta:
        if not rec.get("org_id"):
            rec["org_id"] = meta.get("user_api_key_team_id") or meta.get("user_api_key_org_id")
        headers = meta.get("headers") if isinstance(meta.get("headers"), dict) else {}
        ua = meta.get("user_agent") or headers.get("user-agent") or headers.get("User-Agent")
        if ua:
            rec["user_agent"] = ua
        fp = fingerprint_of_headers(headers)
        if fp and not rec.get("client_fingerprint"):
            rec["client_fingerprint"] = fp
        for k in ("user_api_key_alias", "user_api_key_user_id", "status", "error_information"):
            if meta.get(k) not in (None, "", {}):
                extra[f"metadata.{k}"] = meta[k]
    for k, field in OPENAI_REQUEST_PARAMS.items():
        if body.get(k) is not None and rec.get(field) is None:
            rec[field] = body[k]
    msgs = _jsonish(low.get("messages"))
    if msgs in (None, "", [], {}):  # LiteLLM 1.106 stores '{}' here: the prompt is in the request body
        msgs = body.get("messages", body.get("input", body.get("prompt")))
    if msgs not in (None, "", [], {}):
        if isinstance(msgs, dict) and "messages" in msgs:
            msgs = msgs["messages"]
        rec["prompt"] = msgs if isinstance(msgs, str) else flatten_messages(msgs, roles=("user", "tool"))
        if not isinstance(msgs, str):
            rec["system_prompt"] = flatten_messages(msgs, roles=("system", "developer"))
    rec["response"] = _response_text(low.get("response"))
    st = rec.get("status")
    if st is None and meta.get("status"):
        rec["status"] = meta["status"]
    skip = set(_LITELLM) | {"end_user", "user", "metadata", "proxy_server_request", "messages", "response",
                            "model_group"}
    for k, v in row.items():
        if str(k).lower() not in skip and v not in (None, ""):
            extra[k] = v
    return [(rec, extra)]


class LiteLLMSource:
    """LiteLLM proxy spend logs (``LiteLLM_SpendLogs`` rows) as CSV, JSON or JSONL.

    The subject follows the subject rule over ``end_user``, ``user`` (the key's user) and the
    hashed ``api_key`` (:mod:`distillguard.subject`).
    """

    name: ClassVar[str] = "litellm"

    def read(self, path: str) -> Iterator[ReadBatch]:
        p = str(path)
        items = _csv_records(p) if p.lower().endswith((".csv", ".csv.gz")) else iter_json_records(p)
        yield from _collect(p, items, map_litellm)
