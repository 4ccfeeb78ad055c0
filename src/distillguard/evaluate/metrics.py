"""Metric functions over aligned per-account arrays.

Every function takes plain NumPy arrays in the same account order:
``is_attack`` (bool), a score (float, higher = more suspicious), ``flagged``
(bool), ``archetype`` / campaign ids (object arrays, ``None`` for "no
campaign"). They are shared by ``distillguard evaluate`` and
``benchmarks/compare.py``, so the product and the baselines are measured with
the same code.

Undefined figures (e.g. an AUC with no benign account) are ``None``, never NaN,
so the JSON output stays valid.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "FLAG_ACTIONS",
    "ACTIONS",
    "roc_auc",
    "threshold_at_fpr",
    "flags_at_fpr",
    "recall_at_fpr",
    "confusion",
    "flag_rate_by_archetype",
    "campaigns_found",
    "linkage_ari",
    "volume_rank_score",
    "system_metrics",
]

ACTIONS = ("allow", "monitor", "challenge", "throttle", "block")
FLAG_ACTIONS = frozenset({"challenge", "throttle", "block"})
"""An account is *flagged* by the policy when its action is one of these."""


def _bool(a) -> np.ndarray:
    return np.asarray(a, dtype=bool)


def _float(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def roc_auc(is_attack, score) -> float | None:
    """Area under the ROC curve of ``score`` for separating attack from benign.

    Ties count one half (the Mann-Whitney form, via average ranks), so a
    constant score gives exactly 0.5. ``None`` when either class is empty.
    """
    from scipy.stats import rankdata

    y = _bool(is_attack)
    s = _float(score)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s, method="average")
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def threshold_at_fpr(is_attack, score, target_fpr: float) -> float:
    """The lowest threshold ``t`` such that flagging ``score >= t`` keeps the
    benign false-positive rate at or below ``target_fpr``.

    Accounts with tied scores are flagged together or not at all, so the
    achieved FPR can be below the target, never above it. Returns ``inf``
    (flag nothing) when even the single highest score would break the target.
    With no benign account every FPR is vacuously 0 and the lowest score is
    returned (flag everything).
    """
    y = _bool(is_attack)
    s = _float(score)
    if s.size == 0:
        return math.inf
    benign = np.sort(s[~y])
    n_neg = benign.size
    allowed = math.floor(target_fpr * n_neg + 1e-9)  # benign accounts we may flag
    candidates = np.unique(s)  # ascending
    # benign accounts flagged at each candidate threshold: non-increasing in t
    n_fp = n_neg - np.searchsorted(benign, candidates, side="left")
    ok = np.nonzero(n_fp <= allowed)[0]
    if ok.size == 0:
        return math.inf
    return float(candidates[ok[0]])


def flags_at_fpr(is_attack, score, target_fpr: float) -> np.ndarray:
    """Boolean flags ``score >= threshold_at_fpr(...)``."""
    t = threshold_at_fpr(is_attack, score, target_fpr)
    return _float(score) >= t


def confusion(is_attack, flagged) -> dict[str, Any]:
    """Counts and rates of a set of flags: tp, fp, fn, tn, precision, recall, fpr."""
    y = _bool(is_attack)
    f = _bool(flagged)
    tp = int((y & f).sum())
    fp = int((~y & f).sum())
    fn = int((y & ~f).sum())
    tn = int((~y & ~f).sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
    }


def recall_at_fpr(is_attack, score, target_fpr: float) -> dict[str, Any]:
    """Recall of attack accounts at the threshold chosen by :func:`threshold_at_fpr`.

    Returns ``{"target_fpr", "threshold", "recall", "fpr", "n_flagged"}``;
    ``threshold`` is ``None`` when nothing can be flagged.
    """
    t = threshold_at_fpr(is_attack, score, target_fpr)
    flagged = _float(score) >= t
    c = confusion(is_attack, flagged)
    return {
        "target_fpr": target_fpr,
        "threshold": None if math.isinf(t) else t,
        "recall": c["recall"],
        "fpr": c["fpr"],
        "n_flagged": int(flagged.sum()),
    }


def flag_rate_by_archetype(archetype, flagged) -> dict[str, dict[str, Any]]:
    """Per archetype: ``{"n", "flagged", "rate"}``, archetypes sorted by name."""
    a = np.asarray(archetype, dtype=object)
    f = _bool(flagged)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({str(x) for x in a}):
        mask = a.astype(str) == name
        n = int(mask.sum())
        k = int(f[mask].sum())
        out[name] = {"n": n, "flagged": k, "rate": _ratio(k, n)}
    return out


def campaigns_found(true_campaign, flagged, min_fraction: float = 0.5) -> dict[str, Any]:
    """True campaigns with at least ``min_fraction`` of their accounts flagged.

    ``true_campaign`` holds the true campaign id per account (``None`` for
    benign). Returns ``{"found", "total", "campaigns": {id: {"n", "flagged",
    "fraction", "found"}}}``.
    """
    c = np.asarray(true_campaign, dtype=object)
    f = _bool(flagged)
    per: dict[str, dict[str, Any]] = {}
    ids = sorted({str(x) for x in c if x is not None})
    cs = np.array([None if x is None else str(x) for x in c], dtype=object)
    for cid in ids:
        mask = cs == cid
        n = int(mask.sum())
        k = int(f[mask].sum())
        frac = k / n
        per[cid] = {"n": n, "flagged": k, "fraction": frac, "found": bool(frac >= min_fraction)}
    return {
        "found": sum(1 for v in per.values() if v["found"]),
        "total": len(per),
        "campaigns": per,
    }


def _cluster_labels(ids) -> np.ndarray:
    """Integer cluster labels; ``None`` ids become singletons of their own."""
    out = np.empty(len(ids), dtype=np.int64)
    codes: dict[str, int] = {}
    nxt = 0
    for i, x in enumerate(ids):
        if x is None:
            out[i] = nxt
            nxt += 1
        else:
            key = str(x)
            if key not in codes:
                codes[key] = nxt
                nxt += 1
            out[i] = codes[key]
    return out


def linkage_ari(true_campaign, pred_campaign, scope: str = "campaign") -> float | None:
    """Adjusted Rand index of predicted campaign ids against true ones.

    Null ids (benign in the truth, "not in a campaign" in the prediction) are
    never one big cluster: each such account is a singleton, so grouping
    unlinked accounts together earns no credit.

    - ``scope="campaign"``: over the true campaign accounts only. Measures how
      well the attack accounts are grouped into their operators' campaigns
      (splits, merges, and attack accounts left unlinked all cost).
    - ``scope="all"``: over every account, true benign accounts as singletons.
      Also penalises benign accounts linked into a predicted campaign.

    ``None`` when there are fewer than two accounts in scope.
    """
    from sklearn.metrics import adjusted_rand_score

    t = np.asarray(true_campaign, dtype=object)
    p = np.asarray(pred_campaign, dtype=object)
    if scope == "campaign":
        mask = np.array([x is not None for x in t], dtype=bool)
    elif scope == "all":
        mask = np.ones(t.size, dtype=bool)
    else:
        raise ValueError(f"scope must be 'campaign' or 'all', not {scope!r}")
    if int(mask.sum()) < 2:
        return None
    tl = _cluster_labels(list(t[mask]))
    pl = _cluster_labels(list(p[mask]))
    return float(adjusted_rand_score(tl, pl))


def volume_rank_score(n_events) -> np.ndarray:
    """Volume-threshold baseline score: the rank of ``n_events`` scaled to 0..1
    (ties share their average rank; an empty input gives an empty array)."""
    from scipy.stats import rankdata

    v = _float(n_events)
    if v.size == 0:
        return v
    if v.size == 1:
        return np.ones(1)
    return (rankdata(v, method="average") - 1.0) / (v.size - 1.0)


def system_metrics(
    is_attack,
    archetype,
    true_campaign,
    score,
    flagged,
    pred_campaign=None,
    fprs=(0.001, 0.01),
    true_operator=None,
    pred_operator=None,
) -> dict[str, Any]:
    """Every figure for one system (our scan or a baseline), as a dict.

    ``score`` ranks accounts (ROC AUC, recall at benign FPR); ``flagged`` is the
    system's flag set (the policy's actions, or a baseline thresholded at the
    policy's FPR); ``pred_campaign`` (optional) gives linkage ARI. With
    ``true_operator``, ``operator_ari`` is the same ARI over the true campaign
    accounts at operator level, against ``pred_operator`` (default: the
    predicted campaigns).
    """
    out: dict[str, Any] = {
        "roc_auc": roc_auc(is_attack, score),
        "recall_at_fpr": {f"{f:g}": recall_at_fpr(is_attack, score, f) for f in fprs},
        "policy": confusion(is_attack, flagged),
        "flag_rate_by_archetype": flag_rate_by_archetype(archetype, flagged),
        "campaigns_found": campaigns_found(true_campaign, flagged),
    }
    if pred_campaign is None:  # no linkage: every account a singleton
        pred_campaign = np.full(_bool(flagged).size, None, dtype=object)
    out["linkage_ari"] = linkage_ari(true_campaign, pred_campaign, scope="campaign")
    out["linkage_ari_all"] = linkage_ari(true_campaign, pred_campaign, scope="all")
    if true_operator is not None:
        out["operator_ari"] = linkage_ari(true_operator, pred_campaign if pred_operator is None else pred_operator)
    return out
