"""Campaigns of shared moderate elevation: linked accounts above the population on the same detector.

A low-and-slow ring has unique cards, IPs and devices; its members link to each
other mostly by the prompt templates they share, and few of them are strong on
any detector, so no community of theirs passes the strong-member test
(:func:`distillguard.score.campaigns.strong_communities`). What they share is a
*moderate* elevation of one detector: most of them score above almost every
account outside the scan's campaigns on output harvest, none far above it
(docs/scoring.md section 9, "Low-and-slow" and "Shared moderate elevation").

After the campaigns are judged, an account outside every campaign is
**elevated** on a detector when its raw score is above the
``campaigns.shared_elevation_quantile`` of that detector over the active
accounts outside every campaign (so about 1 - quantile of them are, by
construction). Among the accounts outside campaigns, the hubs of
``core_kinds`` that the link rules keep (a template band, a lockstep band, a
signup burst, a card; not a popular template) tie accounts together; a hub
counts when at least two of its holders, and ``shared_elevation_share`` of
them, are elevated on the detector (the grouping of the strong cores,
:func:`distillguard.score.campaigns.strong_cores`). A connected group of such
hubs' holders is a campaign when it holds ``min_strong_members`` elevated
accounts and ``shared_elevation_share`` of its accounts are, and that count is
improbable for a random group of the same size: the binomial tail at the rate
1 - quantile, times the hubs tried (Bonferroni), at most ``max_p_value``. Its
members are the elevated accounts of the group; each carries the reason
``SHARED_ELEVATION`` with the detector, its score, the level, the count
against the expected one and the kinds of link that tie them.

Only detectors of the families ``shared_elevation_families`` are tested.
Templated benign apps elevate the detectors of what they are built to do
together — app backends on rubric grading, enterprise batch jobs on dataset
synthesis, eval runners on timing and logprobs — and are template-linked more
than a ring is; measured in docs/scoring.md section 9, they pass this test on
those detectors by the hundred, and on output harvest (family ``volume``)
almost never.
"""
from __future__ import annotations

import numpy as np

from distillguard.score.campaigns import chance_tail, strong_cores

__all__ = ["CODE", "TERM", "shared_elevation_groups"]

CODE = "SHARED_ELEVATION"
TERM = "shared_elevation"


def shared_elevation_groups(raw: np.ndarray, active: np.ndarray, outside: np.ndarray, codes: list[str], tested: set[str],
                            hubs: list[tuple[str, np.ndarray]], *, quantile: float, min_share: float, min_members: int,
                            max_p_value: float) -> list[dict]:
    """Groups of accounts outside campaigns, linked by ``hubs``, elevated together on one detector of ``tested``.

    ``hubs``: ``(kind, holder rows)`` of the kept links of the campaign kinds
    over the whole scan. Returns one record per group (largest first): the
    detector ``code``, the ``level``, its elevated ``members`` (rows), their
    ``scores``, the group's ``linked`` accounts, the ``expected`` count, the
    ``p_value`` and the link ``kinds``.
    """
    pool = active & outside
    if quantile <= 0 or not pool.any():
        return []
    levels = np.quantile(raw[pool], quantile, axis=0)
    rate = 1.0 - quantile
    rows = np.flatnonzero(outside)
    out = []
    for j, code in enumerate(codes):
        if code not in tested:
            continue
        elevated = pool & (raw[:, j] > levels[j])
        groups, tried = strong_cores(rows, elevated, hubs, min_share)
        for group in groups:
            k, n = int(elevated[group].sum()), len(group)
            if k < max(min_members, min_share * n):
                continue
            p = chance_tail(k, n, rate, tried)
            if p > max_p_value:
                continue
            members = group[elevated[group]]
            in_group = np.zeros(len(raw), dtype=bool)
            in_group[group] = True
            kinds = sorted({kind for kind, held in hubs if in_group[held].sum() >= 2 and elevated[held].sum() >= 2})
            out.append({"code": code, "level": float(levels[j]), "members": members, "scores": raw[members, j],
                        "linked": n, "elevated": k, "expected": round(rate * n, 2), "p_value": p, "kinds": kinds})
    return sorted(out, key=lambda g: -len(g["members"]))
