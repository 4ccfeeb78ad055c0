"""The subject rule: which identity a request is charged to, the same on every path.

A gateway knows up to three identities for a call: the **end user** it was
made for (LiteLLM's ``user`` / ``user_api_key_end_user_id``, OTel
``enduser.id``), the **key's user** (the account that owns the API key) and
the **key** itself (LiteLLM's key hash). Mappers never pick one: they put the
candidates in an ``identity`` dict and :func:`~distillguard.ingest.normalize.normalize`
applies :func:`choose` with the operator's rule. The LiteLLM guardrail, the
LiteLLM logger, OTLP intake, spend-log ingest and ``scan`` (which reads what
ingest stored) therefore decide on the same subject.

The rule is an ordered list of sources, the first present one wins; set it
with ``DISTILLGUARD_SUBJECT`` (e.g. ``key_user,key``) or ``--subject`` on
``ingest``/``scan``/``serve``. The default, ``key_user,key,end_user``,
charges a call to the authenticated owner of its key whenever there is a key:
the end user (LiteLLM's body ``user``) is then the client's own claim, so
trusting it first would let one key spread itself over invented end users or
pose as someone else. Telemetry with no key at all (an application's own OTel
spans naming ``enduser.id``) falls back to the end user. A gateway that sets
the end user itself (a reseller vouching for its customers) puts it first:
``end_user,key_user,key`` (docs/ingest.md, "Subject"; docs/security.md).
"""
from __future__ import annotations

import os

__all__ = ["SOURCES", "DEFAULT_RULE", "OPTION_HELP", "parse_rule", "set_rule", "use_option", "current_rule", "choose"]

SOURCES = ("end_user", "key_user", "key")
DEFAULT_RULE = ("key_user", "key", "end_user")
_rule: tuple[str, ...] | None = None


def parse_rule(text) -> tuple[str, ...]:
    """``"key_user,key"`` (or a list) -> a validated rule; ValueError names the bad source."""
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p and p.strip()]
    bad = [p for p in parts if p not in SOURCES]
    if bad or not parts:
        raise ValueError(f"subject rule {text!r}: use a comma-separated order of {', '.join(SOURCES)}")
    return tuple(dict.fromkeys(parts))


def set_rule(rule) -> tuple[str, ...]:
    """Use ``rule`` in this process (``None``: ``$DISTILLGUARD_SUBJECT`` as it is now, or the default)."""
    global _rule
    if rule is None:
        env = os.environ.get("DISTILLGUARD_SUBJECT")
        _rule = parse_rule(env) if env else DEFAULT_RULE
    else:
        _rule = parse_rule(rule)
    return _rule


OPTION_HELP = ("Subject rule: the first present of end_user, key_user, key, comma-separated "
               "[default: $DISTILLGUARD_SUBJECT or key_user,key,end_user; docs/ingest.md].")


def use_option(value: str | None) -> None:
    """Apply a command's ``--subject``, else ``$DISTILLGUARD_SUBJECT`` (UsageError, exit 2, when malformed)."""
    from distillguard.errors import UsageError

    try:
        set_rule(value)
    except ValueError as exc:
        raise UsageError(str(exc) + (" ($DISTILLGUARD_SUBJECT)" if value is None else "")) from None


def current_rule() -> tuple[str, ...]:
    """The rule in force: set by :func:`set_rule`, else read from the environment once (a per-record cost)."""
    return _rule if _rule is not None else set_rule(None)


def choose(identity: dict, rule: tuple[str, ...] | None = None) -> str | None:
    """The subject for an ``identity`` dict (``end_user``, ``key_user``, ``key``) under ``rule``."""
    for source in rule or current_rule():
        v = identity.get(source)
        if v not in (None, ""):
            return str(v)
    return None
