"""PRADA-style per-account detector.

Juuti, Szyller, Marchal, Asokan: "PRADA: Protecting against DNN Model Stealing
Attacks", IEEE EuroS&P 2019 (arXiv:1805.02628). PRADA keeps, per client, the
stream of minimum distances from each new query to the client's earlier
queries; benign queries give a roughly normal distance distribution, while
synthetic/sweep queries distort it. The Shapiro-Wilk statistic W of that
distribution is the test; low W = attack. Here queries are prompt embeddings
(``distillguard.text.embed``, unit vectors, Euclidean distance) and
``risk = 1 - W``.

Differences from the paper, on purpose: the queries are a random sample of at
most 64 per account (kept in time order), not the full stream; by default every
earlier query is compared (``growing_set=False``) rather than only PRADA's
growing set G (``growing_set=True`` gives the paper's rule: a query joins G
when its distance exceeds the threshold max(T, mean(D) - std(D))); there is no
per-class split (a language model has no output classes).
"""
from __future__ import annotations

import warnings

import numpy as np

from .events import AccountEmbeddings, BaselineScores

__all__ = ["min_distance_stream", "shapiro_w", "prada_risk"]


def min_distance_stream(x: np.ndarray, growing_set: bool = False) -> np.ndarray:
    """Distances ``d_i`` (i = 1..n-1) from query ``i`` to its nearest earlier
    query (or to the nearest member of PRADA's growing set G)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        return np.zeros(0)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    d = np.sqrt(d2)
    if not growing_set:
        # strictly-lower triangle: row i, columns j < i
        masked = np.where(np.tri(n, k=-1, dtype=bool), d, np.inf)
        return masked.min(axis=1)[1:]
    members = [0]
    stream: list[float] = []
    thr = 0.0
    for i in range(1, n):
        dmin = float(d[i, members].min())
        stream.append(dmin)
        if dmin > thr:
            members.append(i)
        arr = np.asarray(stream)
        thr = max(thr, float(arr.mean() - arr.std()))
    return np.asarray(stream)


def shapiro_w(dist: np.ndarray) -> float:
    """Shapiro-Wilk W of a distance sample; a degenerate (constant) sample,
    where W is undefined, gives 1.0 (no evidence)."""
    dist = np.asarray(dist, dtype=np.float64)
    if dist.size < 3 or np.ptp(dist) < 1e-9:
        return 1.0
    from scipy.stats import shapiro

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = float(shapiro(dist).statistic)
    return w if np.isfinite(w) else 1.0


def prada_risk(emb: AccountEmbeddings, min_queries: int = 10, growing_set: bool = False) -> BaselineScores:
    """Per-account PRADA risk ``1 - W``; accounts with fewer than
    ``min_queries`` sampled queries get risk 0 (too little data to test)."""
    n_acc = len(emb)
    risk = np.zeros(n_acc)
    stat = np.full(n_acc, np.nan)
    used = np.zeros(n_acc, dtype=np.int64)
    for i in range(n_acc):
        x = emb.of(i)
        used[i] = x.shape[0]
        if x.shape[0] < max(min_queries, 4):
            continue
        w = shapiro_w(min_distance_stream(x, growing_set=growing_set))
        stat[i] = w
        risk[i] = 1.0 - w
    return BaselineScores("prada", emb.account_id, np.clip(risk, 0.0, 1.0), statistic=stat, n_used=used)
