"""First-request linking: an account tied to a known campaign by the indicators it shares (its request's
client IP, subnet, user agent and prompt template, its metadata's payment fingerprint and e-mail domain),
and signup bursts. The values are the scan's (:mod:`distillguard.link.kinds`), matched against the
:class:`~distillguard.serve.campaigns.CampaignMap` the last scan wrote."""
from __future__ import annotations

import threading

import pyarrow as pa

from distillguard.link.kinds import account_values, link_kinds, request_values
from distillguard.score.campaigns import RING_CODE
from distillguard.serve.campaigns import MIN_TEMPLATE_BANDS, template_values

__all__ = ["Linker", "Signups"]


class Linker:
    """Links of accounts to the campaigns of ``campaign_map()`` and their risk (``serve.link_risk`` overrides
    the link kinds' online risk, capped at ``serve.link_risk_cap``)."""

    def __init__(self, state, campaign_map, serve_settings: dict):
        self.state, self._campaign_map = state, campaign_map
        self.link_risk = {**{k.name: k.online_risk for k in link_kinds().values() if k.online_risk is not None},
                          **{k: float(v) for k, v in (serve_settings.get("link_risk") or {}).items()}}
        self.link_cap = float(serve_settings.get("link_risk_cap", 0.89))
        self._meta_values: dict = {}
        self._tmpl: dict = {}

    @property
    def map(self):
        return self._campaign_map()

    def template_values(self, account_id: str, prompt) -> list:
        """Template band keys of a prompt, cached by its template skeleton (the MinHash reads only the skeleton)."""
        if not isinstance(prompt, str) or len(prompt) < 20:
            return []
        from distillguard.text import template_skeleton

        sk = template_skeleton(prompt)
        hit = self._tmpl.get(sk)
        if hit is None:
            hit = template_values(account_id, prompt)
            if len(self._tmpl) > 50_000:
                self._tmpl.clear()
            self._tmpl[sk] = hit
        return hit

    def links(self, account_id: str, event: dict | None, meta: dict | None, templates: bool = True) -> dict:
        """Campaign links of an account: stored ones plus this request's new hits."""
        links = {k: list(v) for k, v in self.state.get_links(account_id).items()}
        if not self.map.index:
            return links
        values = []
        if event is not None:
            values += request_values(event)
            if templates and self.map.has_kind("template"):
                values += self.template_values(account_id, event.get("prompt"))
        if meta:
            key = (account_id, meta.get("payment_fingerprint"), meta.get("email_domain"))
            mv = self._meta_values.get(key)
            if mv is None:
                mv = account_values(meta)
                if len(self._meta_values) > 100_000:
                    self._meta_values.clear()
                self._meta_values[key] = mv
            values += mv
        hits = self.map.match(values)
        new = {}
        for cid, hs in hits.items():
            have = links.setdefault(cid, [])
            add = [h for h in hs if h not in have]
            if add:
                have.extend(add)
                new[cid] = add
        if new:
            self.state.add_links(account_id, new)
        return links

    def risk(self, links: dict) -> tuple[float, str | None, list]:
        """(link risk, campaign, reasons) of the campaign the links tie the account to most strongly."""
        best, best_cid, reasons = 0.0, None, []
        for cid, hits in links.items():
            if cid not in self.map.campaigns and cid not in self.map.indicators:
                continue
            kinds = {k for k, _ in hits}
            if sum(k == "template" for k, _ in hits) < MIN_TEMPLATE_BANDS:
                kinds.discard("template")  # one shared LSH band is a similar prompt, not the operator's template
            if not kinds:
                continue
            p = 1.0
            for k in kinds:
                p *= 1.0 - self.link_risk.get(k, 0.3)
            r = min(self.link_cap, 1.0 - p)
            if r > best:
                best, best_cid = r, cid
        if best_cid is not None:
            by_code: dict[str, list] = {}
            for k, v in links[best_cid]:
                by_code.setdefault(link_kinds()[k].reason if k in link_kinds() else "SHARED_INFRA", []).append(
                    {"kind": k, "value": v})
            for code, shared in by_code.items():
                w = max(self.link_risk.get(s["kind"], 0.3) for s in shared)
                reasons.append({"code": code, "weight": round(w, 3),
                                "details": {"source": "link", "campaign_id": best_cid, "shared": shared}})
            # tied by an identifier of its own (a card, an IP: a link rule's attach 1), not a coincidence any customer
            # can have (a public template, a signup window): member-level evidence, as the scan's RING_EVIDENCE is
            # (policy corroboration.campaign_member_evidence)
            kinds = link_kinds()
            if any(k in kinds and kinds[k].rule.attach >= 1 for k, _ in links[best_cid]):
                reasons.append({"code": RING_CODE, "weight": 0.0,
                                "details": {"source": "first-request link", "campaign_id": best_cid}})
        return best, best_cid, reasons


class Signups:
    """Recent account creation times (µs), for the scan's signup-burst rule at signup time."""

    def __init__(self):
        self._times: list[int] = []
        self._lock = threading.Lock()

    def load(self, con) -> None:
        """The store's latest 5,000 creation times, once (the service's own signups follow)."""
        if self._times:
            return
        try:
            rows = con.execute("SELECT epoch_us(created_at) FROM accounts WHERE created_at IS NOT NULL "
                               "ORDER BY created_at DESC LIMIT 5000").fetchall()
            self._times = sorted(r[0] for r in rows)
        except Exception:  # no accounts table yet
            pass

    def note(self, created_us: int) -> None:
        with self._lock:
            self._times.append(created_us)
            if len(self._times) > 10_000:
                del self._times[:5_000]

    def burst(self, account_id: str, created_us: int) -> str | None:
        """The burst window the account's creation falls in among the recent signups, or None."""
        from distillguard.link import memberships as mb

        with self._lock:
            recent = list(self._times[-5000:])
        ids = [f"_{i}" for i in range(len(recent))] + [account_id]
        ts = pa.array(recent + [created_us], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        bursts = mb.signup_bursts(pa.table({"account_id": pa.array(ids, pa.string()), "created_at": ts}))
        if account_id in set(bursts.column("account_id").to_pylist()):
            return bursts.column("value")[0].as_py()
        return None
