"""Communities become campaigns: pooled risk, volume, time span, evidence.

A community is reported as a campaign when its members' pooled risk reaches
the policy's campaign threshold; otherwise it is cleared (an enterprise org
sharing a card, users behind one NAT) and its members carry no campaign id.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pyarrow as pa

from distillguard.link import Communities

__all__ = ["campaign_id", "build_campaigns"]

CAMPAIGN_MIN_RISK = 0.5


def campaign_id(members: list[str]) -> str:
    """A stable id for a set of accounts."""
    return "C-" + hashlib.sha1("\n".join(sorted(members)).encode()).hexdigest()[:10]


def _examples(samples_by_account: dict[str, list[str]], members: list[str], k: int = 8) -> list[str]:
    seen, out = set(), []
    for a in sorted(members):
        for p in samples_by_account.get(a, [])[:2]:
            if p not in seen:
                seen.add(p)
                out.append(p[:500])
            if len(out) >= k:
                return out
    return out


def build_campaigns(
    comms: Communities,
    account_ids: list[str],
    risk: np.ndarray,
    reasons: list[list],
    features: pa.Table,
    samples_by_account: dict[str, list[str]],
    signal_evidence: dict[str, dict[str, dict]],
    min_risk: float = CAMPAIGN_MIN_RISK,
) -> tuple[list[dict], dict[str, str]]:
    """Campaign records (highest risk first) and ``account_id -> campaign_id``."""
    index = {a: i for i, a in enumerate(account_ids)}
    feat = {c: features.column(c).to_pylist() for c in ("n_events", "input_tokens", "output_tokens", "first_ts", "last_ts")}
    campaigns, assignment = [], {}
    for c, members in comms.members().items():
        rows = [index[a] for a in members if a in index]
        pooled = float(np.mean(risk[rows]))
        if pooled < min_risk:
            continue
        cid = campaign_id(members)
        codes = Counter()
        for i in rows:
            for r in reasons[i]:
                codes[r.code] += r.weight
        signals = {}
        for name, ev in signal_evidence.items():
            hit = [a for a in members if a in ev]
            if hit:
                signals[name] = {"accounts": len(hit), "examples": [dict(account_id=a, **ev[a]) for a in sorted(hit)[:3]]}
        campaigns.append(
            {
                "campaign_id": cid,
                "risk": round(pooled, 4),
                "max_risk": round(float(np.max(risk[rows])), 4),
                "n_accounts": len(rows),
                "accounts": sorted(members),
                "n_events": int(sum(feat["n_events"][i] for i in rows)),
                "input_tokens": int(sum(feat["input_tokens"][i] or 0 for i in rows)),
                "output_tokens": int(sum(feat["output_tokens"][i] or 0 for i in rows)),
                "first_seen": min(feat["first_ts"][i] for i in rows).isoformat(),
                "last_seen": max(feat["last_ts"][i] for i in rows).isoformat(),
                "reasons": [{"code": k, "weight": round(v / len(rows), 3)} for k, v in codes.most_common()],
                "link_coverage": {k: round(v, 3) for k, v in sorted(comms.coverage.get(c, {}).items())},
                "shared": [
                    {"kind": kind, "value": value, "accounts": n, "weight": round(w, 3)}
                    for kind, value, n, w in comms.hubs.get(c, [])[:20]
                ],
                "signals": signals,
                "example_prompts": _examples(samples_by_account, members),
            }
        )
        for a in members:
            assignment[a] = cid
    campaigns.sort(key=lambda c: (-c["risk"], -c["n_accounts"]))
    return campaigns, assignment
