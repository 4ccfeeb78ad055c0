"""Imported threat intelligence at decision time: ``KNOWN_INDICATOR`` between scans, as the scan gives it.

The scan matches every account's identifiers against the store's imported indicators
(:func:`distillguard.intel.match_known_indicators`); the service matches each request's client IP and
user agent and the account's payment fingerprint and e-mail domain with the same
:class:`~distillguard.intel.IntelIndex` (reloaded with the campaign map, so an ``intel import`` is
picked up without a restart) and gives the scan's reason: weight = the best match's confidence / 100,
evidence = the matches. An account that matched keeps the reason in this process until the next scan,
which then carries it. Prompt templates are left to the scan (8 band keys of one source are needed).
"""
from __future__ import annotations

import pyarrow as pa

from distillguard.intel.match import MATCH_SCHEMA, IntelIndex, known_indicator_evidence

__all__ = ["IntelMatcher"]

MAX_REMEMBERED = 100_000
"""Matched accounts and identifier tuples kept in memory; the caches start over beyond it."""


class IntelMatcher:
    """Matches one account's identifiers against the indicators imported under ``key`` (None: intel is off)."""

    def __init__(self, key: bytes | None):
        self.key = key
        self.index = None
        self._by_values: dict[tuple, list[dict]] = {}
        self._matched: dict[str, dict] = {}  # account -> its match rows and the reason they give

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else 0

    def load(self, con) -> None:
        """Reload the indicators valid now from the store (a DuckDB connection)."""
        if self.key is None:
            return
        index = IntelIndex.from_store(con, self.key)
        self._by_values, self._matched, self.index = {}, {}, index

    def reason(self, account_id: str, event: dict, meta: dict | None) -> dict | None:
        """The ``KNOWN_INDICATOR`` reason of the account, or None when nothing it used matched."""
        if not len(self):
            return None
        meta = meta or {}
        values = (event.get("client_ip"), event.get("user_agent"), meta.get("payment_fingerprint"), meta.get("email_domain"))
        hits = self._by_values.get(values)
        if hits is None:
            ip, ua, card, domain = values
            hits = self.index.match_account("", client_ips=[ip] if ip else (), user_agents=[ua] if ua else (),
                                            payment_fingerprint=card, email_domain=domain)
            if len(self._by_values) > MAX_REMEMBERED:
                self._by_values.clear()
            self._by_values[values] = hits
        known = self._matched.get(account_id)
        new = [h for h in hits if known is None or h not in known["rows"]]
        if new:
            if len(self._matched) > MAX_REMEMBERED:
                self._matched.clear()
            rows = (known["rows"] if known else []) + new
            matches = known_indicator_evidence(pa.Table.from_pylist(rows, schema=MATCH_SCHEMA))[""]
            known = self._matched[account_id] = {"rows": rows, "reason": {
                "code": "KNOWN_INDICATOR", "weight": round(max(m["confidence"] or 0 for m in matches) / 100.0, 3),
                "details": {"source": "intel", "terms": ["known_indicator"], "evidence": {"known_indicator": matches}}}}
        return known["reason"] if known else None
