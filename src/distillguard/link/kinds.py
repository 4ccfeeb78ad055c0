"""Link kinds as units: each kind of shared evidence declared once.

A :class:`LinkKind` carries everything the scan and the service need to know
about one kind (payment fingerprint, client IP, subnet, user agent, client
TLS/HTTP2 fingerprint, e-mail domain, signup burst, template, lockstep): its tunable numbers and reason code
(``rules.yaml``, :class:`~distillguard.link.rules.LinkRule`: weight, share
limits, attachment, ``reason``, ``online_risk``), the evidence column it feeds
(``link_<column>`` of the evidence matrix), and how its values are read: from
each request (an Ibis expression for the scan and the per-request form the
service uses, both generated from one declaration), from account metadata, or
by a batch membership function (:mod:`distillguard.link.memberships`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from distillguard.link.rules import LinkRule, load_rules
from distillguard.privacy.keyed import HASHED_IP, V4_PREFIX, V6_PREFIX

__all__ = ["LinkKind", "link_kinds", "evidence_columns", "SUBNET_FORMS", "subnet_of_ip", "request_values",
           "account_values"]

SUBNET_FORMS: tuple[tuple[str, str, str, bool], ...] = (
    (V4_PREFIX, "", ".0/24", False),
    (V6_PREFIX, "", "::/48", True),
    (HASHED_IP, "h:", "/net", False),
)
"""How a client IP's subnet is derived, first match wins: (pattern whose group 1 is the prefix, text
before, text after, lower-case the prefix). IPv4 /24, IPv6 /48, a keyed-hash IP's subnet hash
(:mod:`distillguard.privacy.keyed`). The scan's Ibis expression and the service's per-request
function are both generated from this table."""
_SUBNET_RES = tuple((re.compile(p), before, after, lower) for p, before, after, lower in SUBNET_FORMS)


def subnet_of_ip(ip: str | None) -> str | None:
    """The subnet value of one client IP (:data:`SUBNET_FORMS`), as the scan derives it."""
    if not ip:
        return None
    for pattern, before, after, lower in _SUBNET_RES:
        m = pattern.match(ip)
        if m and m.group(1):
            return before + (m.group(1).lower() if lower else m.group(1)) + after
    return None


def _subnet_expr(events):
    import ibis

    cases = []
    for pattern, before, after, lower in SUBNET_FORMS:
        prefix = events.client_ip.re_extract(pattern, 1)
        prefix = prefix.lower() if lower else prefix
        cases.append((prefix != "", (before + prefix if before else prefix) + after))
    return ibis.cases(*cases, else_=ibis.null("string"))


@dataclass(frozen=True)
class _Declared:
    column: str
    request_value: Callable[[dict], str | None] | None = None
    request_expr: Callable | None = None
    from_account: bool = False


_DECLARED: dict[str, _Declared] = {
    "payment_fingerprint": _Declared("payment_fingerprint", from_account=True),
    "client_ip": _Declared("infra", lambda e: e.get("client_ip"), lambda t: t.client_ip),
    "subnet": _Declared("infra", lambda e: subnet_of_ip(e.get("client_ip")), _subnet_expr),
    "user_agent": _Declared("infra", lambda e: e.get("user_agent"), lambda t: t.user_agent),
    "client_fingerprint": _Declared("infra", lambda e: e.get("client_fingerprint"), lambda t: t.client_fingerprint),
    "email_domain": _Declared("infra", from_account=True),
    "signup_burst": _Declared("signup_burst"),  # memberships.signup_bursts (and the service's signup check)
    "template": _Declared("template"),  # memberships.templates, per request: serve.campaigns.template_values
    "lockstep": _Declared("lockstep"),  # memberships.lockstep (batch only: needs an account's whole timeline)
}


@dataclass(frozen=True)
class LinkKind:
    """One kind of shared evidence.

    Attributes
    ----------
    rule
        Its tunable numbers and reason code (``rules.yaml``).
    column
        The evidence column it feeds, ``link_<column>``; the five
        infrastructure kinds share ``link_infra``.
    request_value, request_expr
        Its value in one request (a canonical event dict) and the same as an
        Ibis expression over events (None when not read from requests).
    from_account
        Read from the account metadata column of the kind's name (lower-cased).
    """

    rule: LinkRule
    column: str
    request_value: Callable[[dict], str | None] | None = None
    request_expr: Callable | None = None
    from_account: bool = False

    @property
    def name(self) -> str:
        return self.rule.kind

    @property
    def reason(self) -> str:
        return self.rule.reason

    @property
    def online_risk(self) -> float | None:
        return self.rule.online_risk


@lru_cache(maxsize=1)
def link_kinds() -> dict[str, LinkKind]:
    """Every link kind, in the order of ``rules.yaml`` (the packaged rules)."""
    return {r.kind: LinkKind(r, **_DECLARED[r.kind].__dict__) for r in load_rules()}


def evidence_columns() -> dict[str, tuple[str, tuple[str, ...]]]:
    """``column -> (reason code, kinds)`` of the evidence matrix's link columns, in rule order."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for k in link_kinds().values():
        reason, kinds = out.get(k.column, (k.reason, ()))
        if reason != k.reason:
            raise ValueError(f"link kinds of column {k.column} disagree on the reason ({reason}, {k.reason})")
        out[k.column] = (reason, kinds + (k.name,))
    return out


def request_values(event: dict) -> list[tuple[str, str]]:
    """``(kind, value)`` of one request's infrastructure, as the scan derives them."""
    out = []
    for k in link_kinds().values():
        if k.request_value is not None:
            v = k.request_value(event)
            if v:
                out.append((k.name, v))
    return out


def account_values(meta: dict) -> list[tuple[str, str]]:
    """``(kind, value)`` of one account's metadata (payment fingerprint, e-mail domain), as the scan derives them."""
    out = []
    for k in link_kinds().values():
        v = meta.get(k.name) if k.from_account else None
        if v is not None and str(v):
            out.append((k.name, str(v).lower()))
    return out
