"""Communities become campaigns: member-level evidence, pooled risk, volume, time span.

A community is a campaign only when its firmly attached members (attachment
>= ``min_attachment``) carry *strong* signals of their own
(:func:`strong_communities`): enough of them, and more than a random group of
the same size drawn from the same scan would (a binomial tail at the scan's
rate of strong accounts). Links alone (a cloud range, a NAT, a popular
template, an enterprise card) and weak evidence averaged over many members
never make one. It must also have at least ``min_flagged_share`` of its firm
members at risk 0.5; otherwise it is cleared and its members carry no
campaign id.

Members carry the campaign id whether or not they are flagged themselves, so
an analyst sees the whole ring; their risk already includes the campaign's
pooled evidence (:mod:`distillguard.score.evidence`). Raising every attached
member to the campaign's risk was tried and rejected: on simulated holdout
traffic it flagged mostly benign users who share one coincidental hub with a
ring. Both thresholds are policy data (``campaigns:``).
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pyarrow as pa
from scipy.stats import binom

from distillguard.link import Communities

__all__ = ["campaign_id", "build_campaigns", "judge_campaigns", "strong_communities"]

FLAG_RISK = 0.5


def _iso(ts) -> str | None:
    return ts.isoformat() if ts else None


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


def strong_communities(
    comms: Communities,
    account_ids: list[str],
    strong: np.ndarray,
    attachment: np.ndarray,
    *,
    min_attachment: float = 0.3,
    min_strong_share: float = 0.5,
    min_strong_members: int = 3,
    max_p_value: float = 1e-4,
    is_dismissed=None,
) -> dict[int, dict]:
    """Communities whose firm members carry strong signals of their own, with the test's figures.

    ``strong``: per account, whether it has at least one strong (relative)
    signal. The null is a random group of the same size from the same scan
    (every account, light ones included, as communities hold them): the
    number of strong members is Binomial(firm members, base rate), the base
    rate measured outside the groups under test. Members of a
    templated benign app are correlated, which that null does not know;
    ``min_strong_share`` (a sizeable share of members, not a handful) is what
    keeps a popular template's few strong users from carrying it. A community
    for which ``is_dismissed(members)`` holds (an analyst cleared the same
    cluster) is left out.
    """
    index = {a: i for i, a in enumerate(account_ids)}
    groups = []
    for c, members in comms.members().items():
        if is_dismissed is not None and is_dismissed(members):
            continue
        rows = np.array([index[a] for a in members if a in index], dtype=int)
        firm = rows[attachment[rows] >= min_attachment]
        k = int(strong[firm].sum())
        if len(firm) and k >= max(min_strong_members, min_strong_share * len(firm)):
            groups.append((c, firm, k))
    # The null's base rate comes from the accounts outside the groups under test: a
    # campaign that is 20% of the scan must not raise the bar it is measured against.
    everyone = np.ones(len(account_ids), dtype=bool)
    outside = everyone.copy()
    for _, firm, _ in groups:
        outside[firm] = False
    pool = outside if outside.sum() >= 0.2 * len(outside) else everyone
    rate = float(strong[pool].mean()) if pool.any() else 0.0
    rate = min(max(rate, 1.0 / max(int(pool.sum()), 1)), 0.5)
    out: dict[int, dict] = {}
    for c, firm, k in groups:
        p = float(binom.sf(k - 1, len(firm), rate))
        if p <= max_p_value:
            out[c] = {"firm_members": int(len(firm)), "strong_members": k, "p_value": p, "base_rate": round(rate, 5)}
    return out


def judge_campaigns(
    comms: Communities,
    account_ids: list[str],
    risk: np.ndarray,
    attachment: np.ndarray,
    min_flagged_share: float = 0.5,
    min_attachment: float = 0.5,
    candidates=None,
) -> tuple[dict[int, float], dict[str, int]]:
    """Which communities are campaigns.

    Returns ``community -> campaign risk`` (the mean risk of its flagged
    members) and ``account_id -> community`` for the members that belong to
    a campaign: the firmly attached ones and the flagged ones. Only
    ``candidates`` (default: every community) are considered: the scan
    passes :func:`strong_communities`.
    """
    index = {a: i for i, a in enumerate(account_ids)}
    camp_risk: dict[int, float] = {}
    belongs: dict[str, int] = {}
    for c, members in comms.members().items():
        if candidates is not None and c not in candidates:
            continue
        rows = np.array([index[a] for a in members if a in index])
        firm = rows[attachment[rows] >= min_attachment]
        if len(firm) == 0:
            continue
        flagged = firm[risk[firm] >= FLAG_RISK]
        if len(flagged) < max(2, min_flagged_share * len(firm)):
            continue
        camp_risk[c] = float(risk[flagged].mean())
        for i in np.concatenate([firm, flagged]):
            belongs[account_ids[i]] = c
    return camp_risk, belongs


def build_campaigns(
    comms: Communities,
    account_ids: list[str],
    risk: np.ndarray,
    camp_risk: dict[int, float],
    belongs: dict[str, int],
    reasons: list[list],
    features: pa.Table,
    samples_by_account: dict[str, list[str]],
    signal_evidence: dict[str, dict[str, dict]],
) -> tuple[list[dict], dict[str, str]]:
    """Campaign records (highest risk first) and ``account_id -> campaign_id``."""
    index = {a: i for i, a in enumerate(account_ids)}
    feat = {c: features.column(c).to_pylist() for c in ("n_events", "input_tokens", "output_tokens", "first_ts", "last_ts")}
    by_comm: dict[int, list[str]] = {}
    for a, c in belongs.items():
        by_comm.setdefault(c, []).append(a)
    campaigns, assignment = [], {}
    for c, members in by_comm.items():
        rows = [index[a] for a in members]
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
                "risk": round(camp_risk[c], 4),
                "max_risk": round(float(np.max(risk[rows])), 4),
                "n_accounts": len(rows),
                "accounts": sorted(members),
                "n_events": int(sum(feat["n_events"][i] for i in rows)),
                "input_tokens": int(sum(feat["input_tokens"][i] or 0 for i in rows)),
                "output_tokens": int(sum(feat["output_tokens"][i] or 0 for i in rows)),
                "first_seen": _iso(min((feat["first_ts"][i] for i in rows if feat["first_ts"][i]), default=None)),
                "last_seen": _iso(max((feat["last_ts"][i] for i in rows if feat["last_ts"][i]), default=None)),
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
