"""Held-out quality of the per-prompt scorers on the exemplar bank.

Grouped k-fold: every paraphrase group (one idea in all its languages and
phrasings) is held out once; the scorer is trained on the other folds and
predicts the held-out groups. AUC is computed per intent and per language on
the pooled out-of-fold predictions: positives of the intent against its hard
negatives and the ordinary capability prompts. Prompts are scored as written
("raw") and combined with a task payload ("with task"), as in real traffic.

Run: ``python -m distillguard.signals.content.bank_eval``.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from .bank import CAPABILITIES, INTENTS, capability_training_set, intent_training_set
from .model import _fit_lr, featurize, INTENT_C, CAPABILITY_C

__all__ = ["fold_of", "heldout_report"]


def fold_of(group: str, n_folds: int) -> int:
    return int(hashlib.sha256(("fold:" + group).encode()).hexdigest()[:8], 16) % n_folds


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, p))


def heldout_report(n_folds: int = 4, C: float | None = None, min_per_class: int = 2) -> dict:
    """``{intent: {"raw": {...}, "with_task": {...}}, "capability": {...}}`` of held-out figures.

    Each block has ``auc`` (all languages), ``auc_by_lang`` (languages with at
    least ``min_per_class`` positives and negatives) and counts.
    """
    C = INTENT_C if C is None else C
    report: dict = {}
    for intent in INTENTS:
        texts, y, groups, langs = intent_training_set(intent, augment=True)
        y = np.asarray(y)
        X = featurize(texts)
        folds = np.array([fold_of(g, n_folds) for g in groups])
        oof = np.zeros(len(texts))
        for f in range(n_folds):
            tr, te = folds != f, folds == f
            if not te.any():
                continue
            lr = _fit_lr(X[tr], y[tr], C)
            oof[te] = lr.predict_proba(X[te])[:, 1]
        raw_t, _, _, _ = intent_training_set(intent, augment=False)
        raw_set = set(raw_t)
        evaluable = np.array([g.startswith(intent + "/") or g.startswith("capability/") for g in groups])
        is_raw = np.array([t in raw_set for t in texts])
        report[intent] = {}
        for name, sel in (("raw", evaluable & is_raw), ("with_task", evaluable & ~is_raw)):
            ys, ps, ls = y[sel], oof[sel], np.asarray(langs)[sel]
            by_lang = {}
            for lang in sorted(set(ls)):
                m = ls == lang
                if (ys[m] == 1).sum() >= min_per_class and (ys[m] == 0).sum() >= min_per_class:
                    by_lang[lang] = {
                        "auc": round(_auc(ys[m], ps[m]), 4),
                        "n_pos": int((ys[m] == 1).sum()),
                        "n_neg": int((ys[m] == 0).sum()),
                    }
            report[intent][name] = {
                "auc": round(_auc(ys, ps), 4),
                "n_pos": int((ys == 1).sum()),
                "n_neg": int((ys == 0).sum()),
                "auc_by_lang": by_lang,
            }
    texts, y, groups, langs = capability_training_set()
    X = featurize(texts)
    y = np.asarray(y)
    folds = np.array([fold_of(g, n_folds) for g in groups])
    pred = np.empty(len(texts), dtype=object)
    for f in range(n_folds):
        tr, te = folds != f, folds == f
        if te.any():
            pred[te] = _fit_lr(X[tr], y[tr], CAPABILITY_C, multinomial=True).predict(X[te])
    strong = np.isin(y, ["agentic_coding", "tool_use", "reasoning_math"])
    pred_strong = np.isin(pred.astype(str), ["agentic_coding", "tool_use", "reasoning_math"])
    report["capability"] = {
        "accuracy": round(float(np.mean(pred == y)), 4),
        "strong_vs_rest_accuracy": round(float(np.mean(strong == pred_strong)), 4),
        "n": int(len(y)),
        "classes": list(CAPABILITIES),
    }
    return report


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(heldout_report(), indent=1, ensure_ascii=False))
