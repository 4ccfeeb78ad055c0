"""OpenAI request/response logs: one JSON record per request, Chat Completions or Responses API (docs/ingest.md)."""
from __future__ import annotations

from typing import ClassVar, Iterator

from distillguard.ingest.base import ReadBatch
from distillguard.ingest.normalize import Reject, flatten_messages
from distillguard.ingest.records import _collect, _response_text, iter_json_records
from distillguard.request_params import OPENAI_REQUEST_PARAMS

__all__ = ["OpenAILogSource", "map_openai"]


_TOP = {
    "request_id": "event_id", "id": "event_id", "event_id": "event_id", "custom_id": "event_id",
    "timestamp": "ts", "ts": "ts", "time": "ts", "created_at": "ts", "start_time": "ts",
    "account_id": "account_id", "user_id": "account_id", "end_user_id": "account_id", "user": "account_id",
    "api_key_id": "api_key_id", "api_key": "api_key_id", "key_id": "api_key_id",
    "org_id": "org_id", "organization": "org_id", "organization_id": "org_id", "project_id": "org_id",
    "client_ip": "client_ip", "ip": "client_ip", "user_agent": "user_agent",
    "conversation_id": "conversation_id", "session_id": "conversation_id",
    "is_batch": "is_batch", "status": "status", "status_code": "status",
}
_BODY = {"model": "model", **OPENAI_REQUEST_PARAMS}
_BODY_SKIP = set(_BODY) | {"messages", "input", "prompt", "instructions", "user", "safety_identifier", "reasoning",
                           "metadata"}


def map_openai(rec: dict):
    """One ``{request, response}`` log record -> (record, extra)."""
    if not isinstance(rec, dict):
        raise Reject("not_an_object", f"record is a JSON {type(rec).__name__}, not an object")
    req = rec.get("request")
    if not isinstance(req, dict):
        raise Reject("wrong_type", "request must be an object")
    body = req.get("body") if isinstance(req.get("body"), dict) else req
    resp = rec.get("response")
    if resp is not None and not isinstance(resp, dict):
        raise Reject("wrong_type", "response must be an object")
    resp = resp or {}
    rbody = resp.get("body") if isinstance(resp.get("body"), dict) else resp
    out: dict = {}
    extra: dict = {}
    for k, v in rec.items():
        field = _TOP.get(str(k).lower())
        if field and v not in (None, ""):
            out.setdefault(field, v)
        elif k not in ("request", "response", "batch_id", "batch"):
            extra[k] = v
    if rec.get("batch_id") or rec.get("batch"):
        out.setdefault("is_batch", True)
        if rec.get("batch_id"):
            extra["batch_id"] = rec["batch_id"]
    out.setdefault("event_id", rbody.get("id"))
    if "ts" not in out and rbody.get("created") is not None:
        out["ts"] = rbody.get("created")
    if "ts" not in out and rbody.get("created_at") is not None:
        out["ts"] = rbody.get("created_at")
    if not out.get("account_id"):
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        out["account_id"] = body.get("safety_identifier") or body.get("user") or meta.get("user_id") or None
    for k, field in _BODY.items():
        if body.get(k) is not None:
            out.setdefault(field, body[k])
    if "model" not in out and rbody.get("model"):
        out["model"] = rbody["model"]
    if isinstance(body.get("reasoning"), dict) and body["reasoning"].get("effort"):
        out.setdefault("reasoning_effort", body["reasoning"]["effort"])
    msgs = body.get("messages", body.get("input", body.get("prompt")))
    if msgs is not None:
        out["prompt"] = msgs if isinstance(msgs, str) else flatten_messages(msgs, roles=("user", "tool"))
        sys = None if isinstance(msgs, str) else flatten_messages(msgs, roles=("system", "developer"))
        if body.get("instructions"):
            sys = body["instructions"] + ("\n" + sys if sys else "")
        out["system_prompt"] = sys
    elif body.get("instructions"):
        out["system_prompt"] = body["instructions"]
    for k, v in body.items():
        if k not in _BODY_SKIP and isinstance(v, (str, int, float, bool)):
            extra[f"request.{k}"] = v
    out["response"] = _response_text(rbody)
    usage = rbody.get("usage") if isinstance(rbody.get("usage"), dict) else {}
    for src, field in (("prompt_tokens", "input_tokens"), ("input_tokens", "input_tokens"),
                       ("completion_tokens", "output_tokens"), ("output_tokens", "output_tokens")):
        if usage.get(src) is not None:
            out.setdefault(field, usage[src])
    for det in ("completion_tokens_details", "output_tokens_details"):
        d = usage.get(det)
        if isinstance(d, dict) and d.get("reasoning_tokens") is not None:
            out.setdefault("reasoning_tokens", d["reasoning_tokens"])
    if "status" not in out:
        code = resp.get("status_code")
        if rbody.get("error") or resp.get("error"):
            err = rbody.get("error") or resp.get("error")
            etype = err.get("type", "") if isinstance(err, dict) else str(err)
            out["status"] = "rate_limited" if code == 429 or "rate_limit" in str(etype) else "error"
        elif code is not None:
            out["status"] = code
        else:
            choices = rbody.get("choices") if isinstance(rbody.get("choices"), list) else []
            refused = any(isinstance(c, dict) and (c.get("finish_reason") == "content_filter" or (
                isinstance(c.get("message"), dict) and c["message"].get("refusal"))) for c in choices)
            out["status"] = "refused" if refused else ("ok" if rbody else None)
    return [(out, extra)]


class OpenAILogSource:
    """OpenAI-style request/response logs: JSONL records ``{request: {...}, response: {...}}``.

    Chat Completions and Responses API bodies both map; top-level fields
    (``timestamp``, ``account_id``, ``api_key_id``, ``client_ip``...) win over
    the ones in the bodies.
    """

    name: ClassVar[str] = "openai"

    def read(self, path: str) -> Iterator[ReadBatch]:
        yield from _collect(str(path), iter_json_records(str(path)), map_openai)
