"""Signal scores made relative to the scanned population.

A detector's raw score says how much an account looks like extraction by a
fixed transform; what is *ordinary* differs between providers (one serves
short questions with long answers, another coding agents). Before fusion each
score is re-expressed against the population's robust baseline

    baseline_j = min(median_j + k * 1.4826 * MAD_j, max_baseline)
    relative_ij = clip((x_ij - baseline_j) / (1 - baseline_j), 0, 1)

over the active accounts (``min_events`` requests or more) whose score is
below the ``1 - max_contamination`` quantile. Median and MAD have a 50%
breakdown point, yet a signal most ordinary accounts barely trip is not
protected by it: there a campaign of a fifth of the accounts moves the
median off zero and inflates the MAD (measured: an output-harvest baseline
of 0.90 with a quarter of the active accounts in campaigns, 0.14 without
them), and every ring below that baseline disappears. Campaigns sit on the
high side of a detector, so the top ``max_contamination`` of each signal can be
left out before median and MAD are taken (policy ``population.max_contamination``;
off in the packaged policy until the fusion is refitted with it, docs/scoring.md
section 9). ``population.baseline_passes: 2`` instead takes them again over the
accounts outside the campaigns a first judging formed (``distillguard.scan.analyse``;
off too, section 9 "Two-pass"). A signal that most accounts do
not trip (median 0, MAD 0) keeps its raw meaning. A scan with too few active
accounts for population statistics uses the packaged reference baselines
(``model.yaml: reference_baselines``, measured on randomized worlds) and says so.

The decision service applies the last scan's baselines with the same
:func:`make_relative` (``signal_baselines`` in the store), and the reference
baselines while no scan has been stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Baselines", "LOOKALIKE_DISTANCE", "lookalikes", "population_baselines", "reference_baselines", "make_relative"]

LOOKALIKE_DISTANCE = 0.1
"""Largest difference on any signal (raw scores) at which an account looks like one an analyst cleared."""

MAD_SCALE = 1.4826
"""MAD of a normal distribution's standard deviation."""


@dataclass(frozen=True)
class Baselines:
    """Per-signal baselines and where they came from (``population`` or ``reference``)."""

    values: dict[str, float]
    source: str
    n_active: int
    min_accounts: int
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"source": self.source, "n_active": self.n_active, "min_accounts": self.min_accounts,
                "baselines": {k: round(v, 4) for k, v in self.values.items()}, **self.details}


def population_baselines(scores: np.ndarray, names: list[str], active: np.ndarray, *, min_accounts: int = 200,
                         k_mad: float = 3.0, max_baseline: float = 0.9, max_contamination: float = 0.0,
                         reference: dict | None = None) -> Baselines:
    """Robust baselines of each signal column over the active accounts, its top ``max_contamination`` left out.

    Falls back to ``reference`` (or 0, the raw scores) when fewer than
    ``min_accounts`` accounts are active.
    """
    n_active = int(np.count_nonzero(active))
    if n_active < min_accounts:
        return reference_baselines(reference, names, n_active=n_active, min_accounts=min_accounts,
                                   note=f"{n_active} active accounts (< {min_accounts}): packaged reference baselines")
    x = scores[active]
    if max_contamination > 0:  # each column's lowest share, the rest left out as possible campaigns
        x = np.sort(x, axis=0)[: max(1, int(np.ceil(n_active * (1.0 - max_contamination))))]
    med = np.median(x, axis=0)
    mad = np.median(np.abs(x - med), axis=0) * MAD_SCALE
    base = np.minimum(med + k_mad * mad, max_baseline)
    return Baselines({n: float(b) for n, b in zip(names, base)}, "population", n_active, min_accounts)


def reference_baselines(reference: dict | None, names: list[str], *, note: str, n_active: int = 0,
                        min_accounts: int = 200) -> Baselines:
    """The packaged reference baselines (or 0, the raw scores): for a scan too small for population
    statistics, and for the decision service before any scan was stored."""
    ref = reference or {}
    return Baselines({n: float(ref.get(n, 0.0)) for n in names}, "reference", n_active, min_accounts, {"note": note})


def make_relative(scores: np.ndarray, names: list[str], baselines: Baselines) -> np.ndarray:
    """Scores above each signal's baseline, rescaled to [0, 1]."""
    b = np.array([baselines.values.get(n, 0.0) for n in names])
    return np.clip((scores - b) / np.maximum(1.0 - b, 1e-9), 0.0, 1.0)


def lookalikes(scores: np.ndarray, cleared: np.ndarray, distance: float = LOOKALIKE_DISTANCE) -> np.ndarray:
    """Accounts whose signal profile is within ``distance`` (on every signal) of an account analysts cleared.

    Analyst feedback recalibrates the next scan on the provider's own data: a
    benign cluster labelled legitimate (a licensed partner, an eval team)
    keeps its look-alikes from carrying strong signals, so they neither make
    a campaign nor corroborate a flag. ``cleared`` is a boolean mask.
    """
    out = np.zeros(len(scores), dtype=bool)
    if not cleared.any():
        return out
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(scores[cleared]).query(scores, k=1, p=np.inf, distance_upper_bound=distance + 1e-9)
    out[np.isfinite(dist)] = True
    return out
