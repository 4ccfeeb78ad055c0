"""Capability concentration and sweep (CAPABILITY_SWEEP).

Every sampled prompt is classified into a capability (agentic_coding,
tool_use, reasoning_math, knowledge, creative, chat, other). Per account:

- ``strong_share``: probability mass on the provider's strongest capabilities
  (agentic coding, tool use, reasoning/math), where distillation campaigns
  concentrate;
- ``breadth``: the account's prompt diversity (1 - mean pairwise cosine of
  its prompt embeddings) relative to the diversity of prompts drawn at random
  from the reference pool: a sweep covers many distinct tasks (breadth near
  1); a developer working on one project does not;
- ``mmd2``: unbiased squared MMD between the account's prompt embeddings and
  the reference traffic (RBF kernel via random Fourier features), i.e. how
  unlike ordinary traffic the account's prompt distribution is.

``fit(reference)`` learns the reference: its embedding mean map, the RBF
bandwidth (median heuristic), the robust (median/MAD) scale of per-account
MMD, and the pool diversity. Unfitted, the reference is the capability exemplar bank
resampled into pseudo-accounts. Score =
``ramp(strong_share) * sqrt(ramp(mmd_z) * ramp(breadth)) * ramp(n_prompts)``.
"""
from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import pyarrow as pa

from distillguard.signals.base import Signal, SignalResult, ramp

from .bank import CAPABILITIES, STRONG_CAPABILITIES, load_bank
from .sampling import EXAMPLE_CHARS, score_texts
from .view import PromptView

__all__ = ["CapabilitySweep"]

_STRONG = np.array([c in STRONG_CAPABILITIES for c in CAPABILITIES])


class _RFF:
    """Random Fourier features of exp(-gamma * ||x - y||^2)."""

    def __init__(self, dim: int, gamma: float, n_features: int, seed: int):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0.0, np.sqrt(2.0 * gamma), size=(dim, n_features)).astype(np.float32)
        self.b = rng.uniform(0.0, 2 * np.pi, size=n_features).astype(np.float32)
        self.scale = np.float32(np.sqrt(2.0 / n_features))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.scale * np.cos(X @ self.W + self.b)


def _account_stats(E: np.ndarray, groups: list[list[int]], rff: _RFF, mu_ref: np.ndarray):
    """Per group of rows of E: (mmd2 unbiased, diversity); NaN where < 2 rows."""
    Phi = rff(E) if len(E) else np.zeros((0, len(mu_ref)), dtype=np.float32)
    sq_phi = (Phi * Phi).sum(axis=1)
    ref_sq = float(mu_ref @ mu_ref)
    mmd = np.full(len(groups), np.nan)
    div = np.full(len(groups), np.nan)
    for g, rows in enumerate(groups):
        n = len(rows)
        if n < 2:
            continue
        S = Phi[rows].sum(axis=0)
        within = (float(S @ S) - float(sq_phi[rows].sum())) / (n * (n - 1))
        mmd[g] = within + ref_sq - 2.0 * float(S @ mu_ref) / n
        e = E[rows].sum(axis=0)
        mean_cos = (float(e @ e) - n) / (n * (n - 1))
        div[g] = 1.0 - mean_cos
    return mmd, div


def _robust(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return 0.0, 1.0
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    return med, max(mad, 1e-6)


class CapabilitySweep(Signal):
    """Narrow focus on the strongest capabilities plus sweep-like breadth, unlike the reference.

    Parameters
    ----------
    max_prompts
        Distinct prompts per account that are scored.
    max_total_prompts
        Bound on distinct prompts per scan (per-account quota shrinks, not below 4).
    min_prompts, full_prompts
        The score ramps from 0 at ``min_prompts`` to full weight at ``full_prompts``.
    strong_lo, strong_hi
        ``strong_share`` ramp.
    mmd_lo, mmd_hi
        MMD ramp in robust z units (median + z * MAD over reference accounts).
    breadth_lo, breadth_hi
        Ramp of ``diversity / reference pool diversity`` (1 = as varied as
        prompts drawn at random from all reference traffic).
    rff_features, reference_size
        Random Fourier features and the maximum number of reference prompts kept.
    seed
        Seed of the random features and reference subsampling.
    evidence_floor, n_examples
        Evidence for accounts scoring at least this, with this many examples.
    """

    name: ClassVar[str] = "capability_sweep"
    reason: ClassVar[str] = "CAPABILITY_SWEEP"
    requires: ClassVar[tuple[str, ...]] = ("prompt",)
    description: ClassVar[str] = (
        "Prompts concentrated on agentic coding, tool use and reasoning, sweeping them more broadly than reference traffic."
    )

    def __init__(
        self,
        max_prompts: int = 64,
        max_total_prompts: int | None = 60_000,
        min_prompts: int = 4,
        full_prompts: int = 12,
        strong_lo: float = 0.45,
        strong_hi: float = 0.8,
        mmd_lo: float = 1.0,
        mmd_hi: float = 5.0,
        breadth_lo: float = 0.6,
        breadth_hi: float = 0.9,
        rff_features: int = 256,
        reference_size: int = 4000,
        seed: int = 0,
        evidence_floor: float = 0.3,
        n_examples: int = 3,
    ):
        self.max_prompts = max_prompts
        self.max_total_prompts = max_total_prompts
        self.min_prompts = min_prompts
        self.full_prompts = full_prompts
        self.strong_lo = strong_lo
        self.strong_hi = strong_hi
        self.mmd_lo = mmd_lo
        self.mmd_hi = mmd_hi
        self.breadth_lo = breadth_lo
        self.breadth_hi = breadth_hi
        self.rff_features = rff_features
        self.reference_size = reference_size
        self.seed = seed
        self.evidence_floor = evidence_floor
        self.n_examples = n_examples

    # -- reference -------------------------------------------------------------------------
    def _build_baseline(self, E_all: np.ndarray, groups: list[list[int]], source: str) -> dict:
        rng = np.random.default_rng(self.seed)
        rows = np.arange(len(E_all))
        if len(rows) > self.reference_size:
            rows = np.sort(rng.choice(rows, self.reference_size, replace=False))
        E_ref = E_all[rows]
        # median heuristic on squared distances of unit vectors (2 - 2 cos)
        m = min(len(E_ref), 500)
        if m >= 2:
            S = E_ref[:m] @ E_ref[:m].T
            d2 = (2.0 - 2.0 * S)[np.triu_indices(m, 1)]
            sigma2 = float(np.median(d2[d2 > 1e-6])) if np.any(d2 > 1e-6) else 1.0
        else:
            sigma2 = 1.0
        gamma = 1.0 / max(sigma2, 1e-3)
        rff = _RFF(E_all.shape[1], gamma, self.rff_features, self.seed)
        mu_ref = rff(E_ref).mean(axis=0) if len(E_ref) else np.zeros(self.rff_features, dtype=np.float32)
        mmd, div = _account_stats(E_all, groups, rff, mu_ref)
        mmd_med, mmd_mad = _robust(mmd)
        div_med, div_mad = _robust(div)
        k = min(len(E_ref), 1000)
        if k >= 2:
            e = E_ref[:k].sum(axis=0)
            div_pool = 1.0 - (float(e @ e) - float((E_ref[:k] * E_ref[:k]).sum())) / (k * (k - 1))
        else:
            div_pool = 1.0
        return {
            "source": source,
            "n_reference_prompts": int(len(E_ref)),
            "n_reference_accounts": int(np.isfinite(mmd).sum()),
            "gamma": gamma,
            "mu_ref": mu_ref,
            "mmd_med": mmd_med,
            "mmd_mad": mmd_mad,
            "div_med": div_med,
            "div_mad": div_mad,
            "div_pool": max(div_pool, 1e-3),
        }

    def _default_baseline(self) -> dict:
        texts = [e.text for e in load_bank() if e.source == "capability"]
        E = score_texts(texts)["embedding"]
        rng = np.random.default_rng(self.seed)
        groups = [list(rng.choice(len(texts), 12, replace=False)) for _ in range(200)]
        return self._build_baseline(E, groups, "exemplar bank (pseudo-accounts of 12 prompts)")

    def fit(self, data: PromptView | pa.Table) -> "CapabilitySweep":
        """Learn the reference distribution from (mostly benign) traffic."""
        view = PromptView.of(data)
        sample = view.sample(max_prompts=self.max_prompts, max_total=self.max_total_prompts)
        if len(sample.texts) < 20:
            self.baseline_ = self._default_baseline()
            return self
        E = view.scores(sample.texts)["embedding"]
        self.baseline_ = self._build_baseline(E, sample.prompt_idx, "fitted reference traffic")
        return self

    # -- scoring ---------------------------------------------------------------------------
    def score(self, data: PromptView | pa.Table) -> SignalResult:
        base = getattr(self, "baseline_", None) or self._default_baseline()
        view = PromptView.of(data)
        sample = view.sample(max_prompts=self.max_prompts, max_total=self.max_total_prompts)
        out = view.scores(sample.texts)
        E, P = out["embedding"], out["capability"]
        rff = _RFF(E.shape[1], base["gamma"], self.rff_features, self.seed)
        mmd, div = _account_stats(E, sample.prompt_idx, rff, base["mu_ref"])
        n_acc = len(sample.account_ids)
        values = np.zeros(n_acc)
        evidence: dict[str, dict] = {}
        for a in range(n_acc):
            rows = sample.prompt_idx[a]
            n = len(rows)
            if n < 2:
                continue
            dist = P[rows].mean(axis=0)
            strong = float(dist[_STRONG].sum())
            mmd_z = (mmd[a] - base["mmd_med"]) / base["mmd_mad"]
            breadth = div[a] / base["div_pool"]
            s_conc = float(ramp(strong, self.strong_lo, self.strong_hi))
            s_mmd = float(ramp(mmd_z, self.mmd_lo, self.mmd_hi))
            s_div = float(ramp(breadth, self.breadth_lo, self.breadth_hi))
            s_vol = float(ramp(n, self.min_prompts - 1, self.full_prompts))
            values[a] = s_conc * np.sqrt(s_mmd * s_div) * s_vol
            if values[a] >= self.evidence_floor:
                strong_p = P[rows][:, _STRONG].sum(axis=1)
                best = np.argsort(-strong_p, kind="stable")[: self.n_examples]
                evidence[sample.account_ids[a]] = {
                    "n_prompts": n,
                    "capabilities": {c: round(float(v), 4) for c, v in zip(CAPABILITIES, dist)},
                    "strong_share": round(strong, 4),
                    "diversity": round(float(div[a]), 4),
                    "breadth": round(float(breadth), 3),
                    "mmd2": round(float(mmd[a]), 6),
                    "mmd_z": round(float(mmd_z), 3),
                    "reference": base["source"],
                    "examples": [
                        {
                            "text": sample.texts[rows[i]][:EXAMPLE_CHARS],
                            "capability": CAPABILITIES[int(P[rows[i]].argmax())],
                            "score": round(float(strong_p[i]), 4),
                        }
                        for i in best
                    ],
                }
        scores = pa.table(
            {
                "account_id": pa.array(sample.account_ids, pa.string()),
                self.name: pa.array(np.clip(values, 0.0, 1.0), pa.float64()),
            }
        )
        return SignalResult(self.name, scores, evidence)

    def prompt_capabilities(self, texts: list[str]) -> np.ndarray:
        """``(n, len(CAPABILITIES))`` per-prompt capability probabilities."""
        return score_texts(list(texts))["capability"]

    @classmethod
    def _test_params(cls):
        yield {}
        yield {"max_prompts": 16, "min_prompts": 2, "rff_features": 64}
