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
from distillguard.score.fusion import FusionModel, detector_columns, shift_to_operating_point, weaken
from distillguard.score.relative import Baselines

__all__ = ["SIGNAL_FLOOR", "LabelledWorld", "fit_worlds", "silenced"]

SIGNAL_FLOOR = 1.0
"""Lowest fused weight of a detector's own score: each shipped detector moves risk by at
least one logit at full score, so none is silenced by the fit (issue 12)."""


@dataclass
class LabelledWorld:
    name: str
    evidence: EvidenceMatrix
    y: np.ndarray
    baselines: Baselines


def silenced(evidence: EvidenceMatrix, y: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The world as a provider would see it whose ordinary traffic trips its best detector everywhere.

    On such a provider the population baseline (:mod:`distillguard.score.relative`)
    silences that detector for every account: answers of a thousand tokens
    to short questions are ordinary there, and HIGH_OUTPUT_RATIO says
    nothing. The copy zeroes the own and pooled columns of the detector
    that separates this world's attack accounts from its benign ones most
    (largest difference of means); the link x signal term follows
    (:func:`distillguard.score.fusion.weaken`). Returns the rows and the
    detector's name.
    """
    signals, own, _ = detector_columns(evidence.names)
    X = evidence.values.copy()
    y = np.asarray(y, dtype=bool)
    if not signals or y.all() or not y.any():
        return X[:0], None
    j = int(np.argmax(X[y][:, own].mean(axis=0) - X[~y][:, own].mean(axis=0)))
    weaken(X, evidence.names, np.full(len(X), j), np.zeros(len(X)))
    return X, signals[j]


def fit_worlds(worlds: list[LabelledWorld], *, target_fpr: float = 0.001, C: float = 1.0, evasion_copies: int = 1,
               silenced_copies: bool = True) -> tuple[FusionModel, dict]:
    """One model over every world's accounts; returns it and its fit figures.

    Own-signal weights are bounded below by :data:`SIGNAL_FLOOR`; the
    intercept puts risk 0.5 at ``target_fpr`` of the pooled benign accounts
    (the worlds as they are). ``silenced_copies``: each world is also fitted
    on as :func:`silenced` sees it, so the weights do not rest on a detector
    that another provider's ordinary traffic makes useless (the shifted
    worlds' long benign answers silence HIGH_OUTPUT_RATIO).
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
    fit_ev, fit_y, quiet = ev, y, []
    if silenced_copies:
        copies = [(silenced(w.evidence, w.y), w.y) for w in worlds]
        quiet = [{"world": w.name, "silenced": name} for w, ((_, name), _) in zip(worlds, copies)]
        fit_ev = EvidenceMatrix(ev.account_ids * 2, names, ev.reasons, np.vstack([ev.values, *[x for (x, _), _ in copies]]))
        fit_y = np.concatenate([y, *[yy for (x, _), yy in copies if len(x)]])
    model = FusionModel.fit(fit_ev, fit_y, C=C, evasion_copies=evasion_copies, floors={n: SIGNAL_FLOOR for n in own})
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
                          "recall_at_0.5": round(float(np.mean(r[yy] >= 0.5)), 4) if yy.any() else None,
                          # the world's own population baselines that are not 0 (the reference is their median)
                          "baselines": {n: round(v, 4) for n, v in w.baselines.values.items() if v}})
    from sklearn.metrics import roc_auc_score

    return model, {"accounts": int(len(y)), "attack_accounts": int(y.sum()), "target_fpr": target_fpr,
                   "benign_fpr_at_0.5": round(fpr, 6), "recall_at_0.5": round(float(np.mean(risk[y] >= 0.5)), 4),
                   "train_roc_auc": round(float(roc_auc_score(y, risk)), 4), "C": C, "evasion_copies": evasion_copies,
                   "signal_floor": SIGNAL_FLOOR, "silenced_copies": quiet, "worlds": per_world}
