"""Per-account MMD test on prompt embeddings.

The idea of arXiv 2606.05725: an extraction account's queries are drawn from a
different distribution than benign traffic, so test each account's query
embeddings against a benign reference sample with the maximum mean discrepancy
(Gretton et al., "A Kernel Two-Sample Test", JMLR 2012): RBF kernel, bandwidth
by the median heuristic (sigma = median pairwise distance of the reference),
unbiased MMD^2 estimate. ``risk`` is the statistic min-max scaled to 0..1
(rank-preserving), or ``1 - p`` with a permutation p-value when
``permutations > 0``.

The reference is a pool of prompts from reference accounts (at most
``ref_per_account`` each, at most ``ref_size`` in all). An account that is part
of the reference is tested against the reference *without its own prompts*.
"""
from __future__ import annotations

import numpy as np

from .events import AccountEmbeddings, BaselineScores

__all__ = ["rbf_median_bandwidth", "mmd2_unbiased", "mmd_risk"]


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = (a * a).sum(1)[:, None]
    bb = (b * b).sum(1)[None, :]
    return np.maximum(aa + bb - 2.0 * (a @ b.T), 0.0)


def rbf_median_bandwidth(y: np.ndarray) -> float:
    """Median heuristic: the median pairwise Euclidean distance of ``y``."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape[0] < 2:
        return 1.0
    d2 = _sqdist(y, y)[np.triu_indices(y.shape[0], k=1)]
    med = float(np.sqrt(np.median(d2)))
    return med if med > 1e-9 else 1.0


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD^2 between samples ``x`` (n >= 2) and ``y`` (m >= 2)."""
    g = 1.0 / (2.0 * sigma * sigma)
    kxx = np.exp(-g * _sqdist(x, x))
    kyy = np.exp(-g * _sqdist(y, y))
    kxy = np.exp(-g * _sqdist(x, y))
    n, m = x.shape[0], y.shape[0]
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2.0 * kxy.mean()
    )


def mmd_risk(
    emb: AccountEmbeddings,
    reference_accounts=None,
    ref_size: int = 2048,
    ref_per_account: int = 8,
    min_queries: int = 5,
    permutations: int = 0,
    perm_ref_size: int = 256,
    seed: int = 0,
) -> BaselineScores:
    """Per-account MMD risk against a reference pool.

    ``reference_accounts``: ids whose prompts form the benign reference; None
    uses every account (a population reference: mostly benign traffic). Accounts
    with fewer than ``min_queries`` sampled prompts get risk 0.
    """
    rng = np.random.default_rng(seed)
    n_acc = len(emb)
    ref_set = None if reference_accounts is None else {str(a) for a in reference_accounts}
    # --- build the reference pool: rows of emb.vectors, with their owner
    cand_rows: list[np.ndarray] = []
    cand_owner: list[np.ndarray] = []
    for i in range(n_acc):
        if ref_set is not None and str(emb.account_id[i]) not in ref_set:
            continue
        lo, hi = int(emb.offsets[i]), int(emb.offsets[i + 1])
        if hi <= lo:
            continue
        rows = np.arange(lo, hi)
        if rows.size > ref_per_account:
            rows = rng.choice(rows, ref_per_account, replace=False)
        cand_rows.append(rows)
        cand_owner.append(np.full(rows.size, i))
    if not cand_rows:
        raise ValueError("MMD reference is empty: no prompts from the reference accounts")
    rows = np.concatenate(cand_rows)
    owner = np.concatenate(cand_owner)
    if rows.size > ref_size:
        keep = rng.choice(rows.size, ref_size, replace=False)
        rows, owner = rows[keep], owner[keep]
    y = emb.vectors[rows].astype(np.float64)
    sigma = rbf_median_bandwidth(y)
    g = 1.0 / (2.0 * sigma * sigma)
    kyy = np.exp(-g * _sqdist(y, y))
    np.fill_diagonal(kyy, 0.0)
    kyy_rowsum = kyy.sum(1)
    kyy_total = float(kyy_rowsum.sum())
    m_all = y.shape[0]
    y32 = np.ascontiguousarray(y, dtype=np.float32)
    yn = (y32 * y32).sum(1)
    # reference rows owned by each account (to leave an account's own prompts out)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n_acc + 1))

    stat = np.full(n_acc, np.nan)
    risk_raw = np.full(n_acc, np.nan)
    used = np.zeros(n_acc, dtype=np.int64)
    for i in range(n_acc):
        x = emb.of(i)
        n = x.shape[0]
        used[i] = n
        if n < max(min_queries, 2):
            continue
        own = order[bounds[i] : bounds[i + 1]]
        m = m_all - own.size
        if m < 2:
            continue
        ky_sum = kyy_total - 2.0 * float(kyy_rowsum[own].sum()) + float(kyy[np.ix_(own, own)].sum())
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        xn = (x32 * x32).sum(1)
        kxx = np.exp(-g * np.maximum(xn[:, None] + xn[None, :] - 2.0 * (x32 @ x32.T), 0.0))
        kxy = np.exp(-g * np.maximum(xn[:, None] + yn[None, :] - 2.0 * (x32 @ y32.T), 0.0))
        kxy_sum = float(kxy.sum(dtype=np.float64)) - float(kxy[:, own].sum(dtype=np.float64))
        mmd2 = (
            (float(kxx.sum(dtype=np.float64)) - float(np.trace(kxx))) / (n * (n - 1))
            + ky_sum / (m * (m - 1))
            - 2.0 * kxy_sum / (n * m)
        )
        stat[i] = mmd2
        if permutations > 0:
            keep = np.ones(m_all, dtype=bool)
            keep[own] = False
            sub = rng.choice(np.nonzero(keep)[0], min(perm_ref_size, m), replace=False)
            pool = np.vstack([x.astype(np.float64), y[sub]])
            k = np.exp(-g * _sqdist(pool, pool))
            obs = _mmd2_from_kernel(k, np.arange(n))
            count = 1
            for _ in range(permutations):
                perm = rng.permutation(pool.shape[0])[:n]
                if _mmd2_from_kernel(k, perm) >= obs:
                    count += 1
            risk_raw[i] = 1.0 - count / (permutations + 1)
        else:
            risk_raw[i] = mmd2
    risk = np.zeros(n_acc)
    ok = np.isfinite(risk_raw)
    if ok.any():
        if permutations > 0:
            risk[ok] = risk_raw[ok]
        else:
            lo, hi = float(risk_raw[ok].min()), float(risk_raw[ok].max())
            risk[ok] = (risk_raw[ok] - lo) / (hi - lo) if hi > lo else 0.5
    return BaselineScores("mmd", emb.account_id, risk, statistic=stat, n_used=used)


def _mmd2_from_kernel(k: np.ndarray, idx_x: np.ndarray) -> float:
    """Unbiased MMD^2 of the split (idx_x, rest) of a pooled kernel matrix."""
    mask = np.zeros(k.shape[0], dtype=bool)
    mask[idx_x] = True
    kxx = k[np.ix_(mask, mask)]
    kyy = k[np.ix_(~mask, ~mask)]
    kxy = k[np.ix_(mask, ~mask)]
    n, m = kxx.shape[0], kyy.shape[0]
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean()
    )
