"""Fit the fusion across many labelled worlds, each scored against its own population.

A model fitted on one world learns that world: its answer lengths, its
campaign sizes, its phrasing. ``distillguard calibrate --world DIR ...``
analyses every world exactly as a scan would
(:func:`distillguard.evaluate.analysed.analyse_world`) (scores relative to that
world's population, campaigns only where members carry strong signals),
stacks the evidence and fits one model, so what is learned is what holds
across worlds. The reference baselines a small scan falls back to are the
median of the worlds' population baselines.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distillguard.score.evidence import EvidenceMatrix
from distillguard.score.fusion import FusionModel, shift_to_operating_point
from distillguard.score.relative import Baselines

__all__ = ["SIGNAL_FLOOR", "LabelledWorld", "fit_worlds"]

SIGNAL_FLOOR = 1.0
"""Lowest fused weight of a detector's own score: each shipped detector moves risk by at
least one logit at full score, so none is silenced by the fit (issue 12)."""


@dataclass
class LabelledWorld:
    name: str
    evidence: EvidenceMatrix
    y: np.ndarray
    baselines: Baselines


def fit_worlds(worlds: list[LabelledWorld], *, target_fpr: float = 0.001, C: float = 1.0, evasion_copies: int = 1) -> tuple[FusionModel, dict]:
    """One model over every world's accounts; returns it and its fit figures.

    Own-signal weights are bounded below by :data:`SIGNAL_FLOOR`; the
    intercept puts risk 0.5 at ``target_fpr`` of the pooled benign accounts.
    """
    from distillguard.errors import UsageError

    names = worlds[0].evidence.names
    if any(w.evidence.names != names for w in worlds):
        raise UsageError("worlds disagree on the evidence columns (different signal sets)")
    ev = EvidenceMatrix([a for w in worlds for a in w.evidence.account_ids], names, worlds[0].evidence.reasons,
                        np.vstack([w.evidence.values for w in worlds]))
    y = np.concatenate([w.y for w in worlds])
    if y.all() or not y.any():
        raise UsageError("calibration needs both attack and benign accounts in the labels")
    own = [n for n, r in zip(names, ev.reasons) if r and not n.startswith(("campaign_", "link_"))]
    model = FusionModel.fit(ev, y, C=C, evasion_copies=evasion_copies, floors={n: SIGNAL_FLOOR for n in own})
    fpr = shift_to_operating_point(model, ev, ~y, target_fpr)
    model.reference_baselines = {
        n: float(np.median([w.baselines.values.get(n, 0.0) for w in worlds if w.baselines.source == "population"] or [0.0]))
        for n in own
    }
    risk = model.risk(ev)
    per_world = []
    start = 0
    for w in worlds:
        r, yy = risk[start:start + len(w.y)], w.y
        start += len(w.y)
        per_world.append({"world": w.name, "accounts": int(len(yy)), "benign_fpr_at_0.5": round(float(np.mean(r[~yy] >= 0.5)), 5),
                          "recall_at_0.5": round(float(np.mean(r[yy] >= 0.5)), 4) if yy.any() else None})
    from sklearn.metrics import roc_auc_score

    return model, {"accounts": int(len(y)), "attack_accounts": int(y.sum()), "target_fpr": target_fpr,
                   "benign_fpr_at_0.5": round(fpr, 6), "recall_at_0.5": round(float(np.mean(risk[y] >= 0.5)), 4),
                   "train_roc_auc": round(float(roc_auc_score(y, risk)), 4), "C": C, "evasion_copies": evasion_copies,
                   "signal_floor": SIGNAL_FLOOR, "worlds": per_world}
