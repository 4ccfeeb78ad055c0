"""The campaign map the last scan wrote, and first-request linking against it.

:class:`CampaignMap` reads ``account_results``, ``campaigns`` and
``campaign_indicators`` from the store (docs/architecture.md). A new account is
linked to a campaign when its metadata or its request carries one of the
campaign's indicators. The attribute values are computed as the scan computes
them, from the link kinds (:mod:`distillguard.link.kinds`): client IP, subnet
and user agent of a request and the payment fingerprint and e-mail domain of
account metadata with :func:`~distillguard.link.kinds.request_values` and
:func:`~distillguard.link.kinds.account_values` (generated from the same
declarations as the scan's memberships; a test checks they agree), template
band keys with :func:`distillguard.link.memberships.templates` (MinHash of the
template skeleton, 48 permutations in 12 bands).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from distillguard.score.relative import Baselines
from distillguard.store import table_exists

__all__ = ["CampaignMap", "KnownAccount", "template_values", "MIN_TEMPLATE_BANDS"]

MIN_TEMPLATE_BANDS = 2
"""Template band keys of one campaign a request must hit before the template counts as a link."""


def template_values(account_id: str, prompt: str | None) -> list[tuple[str, str]]:
    """Template band keys of one prompt (empty for prompts under 20 characters)."""
    if not prompt or len(prompt) < 20:
        return []
    from distillguard.link import memberships as mb

    t = mb.templates(pa.table({"account_id": pa.array([account_id], pa.string()), "prompt": pa.array([prompt], pa.string())}))
    return [("template", v) for v in t.column("value").to_pylist()]


@dataclass
class KnownAccount:
    """An account's row of the last scan's ``account_results``."""

    risk: float
    action: str
    campaign_id: str | None
    reasons: list
    rule_id: str | None
    n_events: int
    org_id: str | None
    evidence: dict = field(default_factory=dict)
    """The scan's non-zero evidence terms (content, campaign, links) of this account."""


@dataclass
class CampaignMap:
    """What the last scan found; replaced whole on each refresh."""

    run_id: str | None = None
    accounts: dict = field(default_factory=dict)
    campaigns: dict = field(default_factory=dict)
    index: dict = field(default_factory=dict)  # (kind, value) -> [(campaign_id, weight)]
    indicators: dict = field(default_factory=dict)  # campaign_id -> [{kind, value, weight}]
    behaviour_fit: dict = field(default_factory=dict)  # signal name -> what the scan's fit learned
    baselines: Baselines | None = None  # what the scan made its signal scores relative to; None: no scan stored them
    lookalikes: frozenset = frozenset()  # accounts that look like one analysts cleared: no strong signal of their own
    loaded_at: float = 0.0

    @classmethod
    def from_store(cls, con, loaded_at: float = 0.0) -> "CampaignMap":
        """Read the scan tables through a DuckDB connection; empty when no scan was stored."""
        m = cls(loaded_at=loaded_at)
        if table_exists(con, "account_results"):
            cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'account_results'").fetchall()}
            ev = "evidence_json" if "evidence_json" in cols else "NULL"  # stores written before it existed
            rows = con.execute(
                f"SELECT run_id, account_id, risk, action, campaign_id, reasons, rule_id, n_events, org_id, reasons_json, {ev} FROM account_results"
            ).fetchall()
            for run_id, acc, risk, action, cid, reasons, rule_id, n, org, rj, ej in rows:
                m.run_id = run_id
                details = orjson.loads(rj) if rj else []
                m.accounts[acc] = KnownAccount(float(risk or 0.0), action, cid, details or [{"code": c, "weight": None} for c in reasons or []],
                                               rule_id, int(n or 0), org, orjson.loads(ej) if ej else {})
        if table_exists(con, "campaigns"):
            cols = ["campaign_id", "risk", "action", "n_accounts", "n_events", "first_seen", "last_seen", "reasons", "evidence_json"]
            for row in con.execute(f"SELECT {', '.join(cols)} FROM campaigns").fetchall():
                d = dict(zip(cols, row))
                d["evidence"] = orjson.loads(d.pop("evidence_json") or "{}")
                d["first_seen"] = str(d["first_seen"]) if d["first_seen"] is not None else None
                d["last_seen"] = str(d["last_seen"]) if d["last_seen"] is not None else None
                m.campaigns[d["campaign_id"]] = d
        if table_exists(con, "campaign_indicators"):
            for cid, kind, value, w in con.execute("SELECT campaign_id, kind, value, weight FROM campaign_indicators").fetchall():
                m.index.setdefault((kind, value), []).append((cid, float(w or 0.0)))
                m.indicators.setdefault(cid, []).append({"kind": kind, "value": value, "weight": w})
        if table_exists(con, "signal_fit"):  # stores scanned before it existed: the signals stay unfitted
            m.behaviour_fit = {s: orjson.loads(j) for s, j in con.execute("SELECT signal, learned_json FROM signal_fit").fetchall()}
        if table_exists(con, "signal_baselines"):  # stores scanned before it existed: the reference baselines apply
            rows = con.execute("SELECT signal, baseline, source, n_active, min_accounts, note FROM signal_baselines").fetchall()
            if rows:
                _, _, source, n_active, min_accounts, note = rows[0]
                m.baselines = Baselines({r[0]: float(r[1]) for r in rows}, source, int(n_active), int(min_accounts),
                                        {"note": note} if note else {})
        if table_exists(con, "cleared_lookalikes"):
            m.lookalikes = frozenset(a for (a,) in con.execute("SELECT account_id FROM cleared_lookalikes").fetchall())
        return m

    def has_kind(self, kind: str) -> bool:
        """Whether any campaign has an indicator of ``kind`` (skips MinHashing prompts when none does)."""
        kinds = self.__dict__.get("_kinds")
        if kinds is None:
            kinds = self.__dict__["_kinds"] = {k for k, _ in self.index}
        return kind in kinds

    def match(self, values: list[tuple[str, str]]) -> dict[str, list]:
        """``campaign_id -> [[kind, value], ...]`` of the values that are a campaign's indicators."""
        out: dict[str, list] = {}
        for kind, value in values:
            for cid, _ in self.index.get((kind, value), ()):
                hits = out.setdefault(cid, [])
                if [kind, value] not in hits:
                    hits.append([kind, value])
        return out
