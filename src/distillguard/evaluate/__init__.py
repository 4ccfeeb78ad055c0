"""Metrics of a scan against ground-truth labels (``distillguard evaluate``).

The metric functions in :mod:`distillguard.evaluate.metrics` are shared with
``benchmarks/compare.py``; see docs/evaluation.md.
"""
from __future__ import annotations

from distillguard.evaluate.core import (
    DEFAULT_FPRS,
    Labels,
    ScanAccounts,
    align_scores,
    evaluate,
    load_labels,
    load_scan,
)
from distillguard.evaluate.metrics import (
    FLAG_ACTIONS,
    campaigns_found,
    confusion,
    flag_rate_by_archetype,
    flags_at_fpr,
    linkage_ari,
    recall_at_fpr,
    roc_auc,
    system_metrics,
    threshold_at_fpr,
    volume_rank_score,
)

__all__ = [
    "DEFAULT_FPRS",
    "FLAG_ACTIONS",
    "Labels",
    "ScanAccounts",
    "align_scores",
    "campaigns_found",
    "confusion",
    "evaluate",
    "flag_rate_by_archetype",
    "flags_at_fpr",
    "linkage_ari",
    "load_labels",
    "load_scan",
    "recall_at_fpr",
    "roc_auc",
    "system_metrics",
    "threshold_at_fpr",
    "volume_rank_score",
]
