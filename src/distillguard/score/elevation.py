"""Campaign members that carry their campaign's characteristic signal, moderately.

A ring member whose own signals are weak (a jailbreak ring's member that was
refused a few times, a rubric ring's member that graded a little) is not
strong on any detector, yet its score on the detector its campaign's strong
members share (:func:`distillguard.score.campaigns.characteristic_codes`) is
higher than almost every account outside the scan's campaigns. That is
evidence of two independent kinds: the account is linked to a campaign of
strong members, and it does what that campaign does, more than the scanned
population does. A benign user that linkage merged into the campaign's
community (a chat user on the ring's cloud range, a tutoring app sharing a
template) rarely shares the campaign's own elevation (docs/scoring.md
section 9, "Campaign members elevated on their campaign's signal").

Elevated: the account's raw score on a characteristic detector of its
campaign is above the ``campaigns.elevation_quantile`` quantile of that
detector over the active accounts outside every campaign (the scanned
population, not a fixed transform). A strong signal is not elevated by
definition: where more than one account in a hundred outside the campaigns is
strong on a detector (grading apps on RUBRIC_GRADING), strong is ordinary.
A loosely attached member of a community that is a campaign as a whole
(attachment below ``min_attachment``) that is elevated joins the campaign:
it is the ring's account with few links to it. The policy acts on the
elevation with its ``elevated_signal`` condition; the scan lists it as the
reason ``CAMPAIGN_SIGNAL`` (which detector, its score, the level, the
campaign; a strong reason that is elevated too is marked ``campaign_elevated``
instead), and the decision service reads both back.
"""
from __future__ import annotations

import numpy as np

__all__ = ["CODE", "TERM", "campaign_elevated_codes", "elevated_members", "elevation_levels"]

CODE = "CAMPAIGN_SIGNAL"
TERM = "campaign_elevation"


def elevation_levels(raw: np.ndarray, active: np.ndarray, outside: np.ndarray, quantile: float) -> np.ndarray | None:
    """Per detector, the ``quantile`` of the raw scores of active accounts outside every campaign (None: none such)."""
    pool = active & outside
    if quantile <= 0 or not pool.any():
        return None
    return np.quantile(raw[pool], quantile, axis=0)


def elevated_members(belongs: dict, characteristic: dict, membership: dict, whole: set, account_ids: list[str],
                     raw: np.ndarray, codes: list[str], levels: np.ndarray) -> dict[int, list[dict]]:
    """``row -> [{code, score, level}]`` of the campaign members elevated on a characteristic detector of their campaign.

    ``belongs``: account -> campaign key (:func:`distillguard.score.campaigns.judge_campaigns`);
    a loosely attached member of a ``whole`` community campaign (``membership``: account ->
    community) that is elevated is added to ``belongs`` in place.
    """
    column = {c: j for j, c in enumerate(codes)}
    out: dict[int, list[dict]] = {}
    joined = {}
    for i, a in enumerate(account_ids):
        key = belongs.get(a)
        if key is None and membership.get(a) in whole:
            key = membership[a]
        if key is None:
            continue
        hits = [{"code": c, "score": round(float(raw[i, column[c]]), 4), "level": round(float(levels[column[c]]), 4)}
                for c in sorted(characteristic.get(key, ())) if c in column and raw[i, column[c]] > levels[column[c]]]
        if hits:
            out[i] = hits
            if a not in belongs:
                joined[a] = key
    belongs.update(joined)
    return out


def campaign_elevated_codes(stored_reasons) -> set[str]:
    """The elevated codes of one account, read back from the reasons a scan stored (the decision service):
    its ``CAMPAIGN_SIGNAL`` reason's detectors and its reasons marked ``campaign_elevated``."""
    return {s["code"] for r in stored_reasons if r.get("code") == CODE
            for s in ((r.get("evidence") or {}).get(TERM) or {}).get("signals", ())} | {
        r["code"] for r in stored_reasons if r.get("campaign_elevated")}
