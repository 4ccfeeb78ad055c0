"""Known identifiers at decision time: ``KNOWN_INDICATOR`` and ``CONFIRMED_CAMPAIGN`` between scans, as the scan gives them.

The scan matches every account's identifiers against the store's imported indicators
(:func:`distillguard.intel.match_known_indicators`, with the consortium key) and the identifiers of
campaigns analysts confirmed (:func:`distillguard.intel.match.confirmed_matches`). The service matches
each request's client IP, user agent and client fingerprint and the account's payment fingerprint and e-mail domain with
the same functions (:meth:`~distillguard.intel.IntelIndex.match_account`), reloaded with the campaign
map so an ``intel import`` or a confirmation counts without a restart, and gives the scan's reason
(:func:`distillguard.intel.match.known_indicator_reasons`). An account that matched keeps the reason
in this process until the next scan, which then carries it. Prompt templates are left to the scan
(a source's template indicators need 8 band keys, several prompts of the account).
"""
from __future__ import annotations

import pyarrow as pa

from distillguard.audit import confirmed_indicators
from distillguard.intel.match import MATCH_SCHEMA, IntelIndex, confirmed_matches, known_indicator_reasons
from distillguard.link.kinds import account_values, request_values

__all__ = ["IntelMatcher"]

MAX_REMEMBERED = 100_000
"""Matched accounts and identifier tuples kept in memory; the caches start over beyond it."""

_KINDS = ("client_ip", "user_agent", "client_fingerprint", "payment_fingerprint", "email_domain")
"""The identifiers matched here, derived from a request and its account's metadata as the scan derives them."""

_MEMBERSHIPS = pa.schema([("account_id", pa.string()), ("kind", pa.string()), ("value", pa.string())])


class IntelMatcher:
    """Matches one account's identifiers against imported indicators (under ``key``; None: none) and
    the identifiers of confirmed campaigns."""

    def __init__(self, key: bytes | None):
        self.key = key
        # (index or None, confirmed identifiers, match rows by identifier tuple, account -> its rows and reason),
        # replaced whole by load so that a decision never mixes two loads
        self._loaded: tuple = (None, [], {}, {})

    def load(self, con) -> None:
        """Reload imported indicators valid now and confirmed campaigns' identifiers (a DuckDB connection)."""
        index = IntelIndex.from_store(con, self.key) if self.key is not None else None
        self._loaded = (index if index is not None and len(index) else None, confirmed_indicators(con), {}, {})

    def reason(self, account_id: str, event: dict, meta: dict | None) -> dict | None:
        """The account's ``KNOWN_INDICATOR`` or ``CONFIRMED_CAMPAIGN`` reason, or None when nothing it used matched."""
        index, confirmed, by_values, matched = self._loaded
        if index is None and not confirmed:
            return None
        values = tuple(v for v in request_values(event) + account_values(meta or {}) if v[0] in _KINDS)
        hits = by_values.get(values)
        if hits is None:
            hits = _match(index, confirmed, values)
            if len(by_values) > MAX_REMEMBERED:
                by_values.clear()
            by_values[values] = hits
        known = matched.get(account_id)
        new = [h for h in hits if known is None or h not in known["rows"]]
        if new:
            if len(matched) > MAX_REMEMBERED:
                matched.clear()
            rows = (known["rows"] if known else []) + new
            r, matches = known_indicator_reasons(pa.Table.from_pylist(rows, schema=MATCH_SCHEMA))[""]
            known = matched[account_id] = {"rows": rows, "reason": {
                "code": r.code, "weight": r.weight,
                "details": {"source": "intel", "terms": list(r.terms), "evidence": {"known_indicator": matches}}}}
        return known["reason"] if known else None


def _match(index: IntelIndex | None, confirmed: list[dict], values: tuple) -> list[dict]:
    """Match rows (account id ``""``) of one request's and account's ``(kind, value)`` identifiers."""
    of = {k: [v for kk, v in values if kk == k] for k in _KINDS}
    rows = [] if index is None else index.match_account(
        "", client_ips=of["client_ip"], user_agents=of["user_agent"], client_fingerprints=of["client_fingerprint"],
        payment_fingerprint=next(iter(of["payment_fingerprint"]), None), email_domain=next(iter(of["email_domain"]), None))
    if confirmed:
        mem = pa.Table.from_pylist([{"account_id": "", "kind": k, "value": v} for k, v in values], schema=_MEMBERSHIPS)
        rows += confirmed_matches(mem, confirmed).to_pylist()
    return rows
