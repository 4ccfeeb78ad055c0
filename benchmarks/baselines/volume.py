"""Volume-threshold baseline: heavy accounts are suspicious."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from .events import BaselineScores, read_volume

__all__ = ["volume_risk", "volume_risk_from_counts"]


def _rank01(x: np.ndarray) -> np.ndarray:
    if x.size <= 1:
        return np.ones(x.size)
    return (rankdata(x, method="average") - 1.0) / (x.size - 1.0)


def volume_risk_from_counts(account_id, n_events, output_tokens) -> BaselineScores:
    """Risk = mean of the 0..1 ranks of request count and total output tokens."""
    n = np.asarray(n_events, dtype=np.float64)
    o = np.asarray(output_tokens, dtype=np.float64)
    risk = 0.5 * (_rank01(n) + _rank01(o))
    return BaselineScores("volume", np.asarray(account_id, dtype=object), risk, statistic=n, n_used=n)


def volume_risk(events: str | Path) -> BaselineScores:
    """Volume baseline over an events Parquet file or DuckDB store."""
    ids, n, out = read_volume(events)
    return volume_risk_from_counts(ids, n, out)
