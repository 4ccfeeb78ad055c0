"""Behaviour detectors over per-account features (:mod:`distillguard.features`).

Each turns a few feature columns into one score in [0, 1] with a fixed,
documented transform, so a score means the same thing in every scan. Scores
need volume before they speak: an account with three requests is never
"machine-like" on timing alone.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from distillguard.signals.base import Signal, SignalResult, ramp

__all__ = ["OutputHarvest", "LogprobsHarvest", "SamplingFanout", "MachineTiming", "ModelPivot", "RefusalProbing",
           "BEHAVIOUR_SIGNALS"]


def _col(data: pa.Table, name: str, default: float = 0.0) -> np.ndarray:
    if name not in data.column_names:
        return np.full(data.num_rows, default, dtype=float)
    return np.nan_to_num(data.column(name).to_numpy(zero_copy_only=False).astype(float), nan=default)


class _FeatureSignal(Signal):
    """A signal computed from feature columns; subclasses implement ``_scores``."""

    evidence_columns: tuple[str, ...] = ()
    min_events: int = 10
    evidence_floor: float = 0.5

    def score(self, data: pa.Table) -> SignalResult:
        values = np.clip(self._scores(data), 0.0, 1.0)
        values *= ramp(_col(data, "n_events"), 0, self.min_events)
        ids = data.column("account_id").to_pylist()
        evidence = {}
        cols = {c: _col(data, c) for c in self.evidence_columns}
        for i in np.flatnonzero(values >= self.evidence_floor):
            evidence[ids[i]] = {c: round(float(v[i]), 4) for c, v in cols.items()}
        scores = pa.table({"account_id": pa.array(ids, pa.string()), self.name: pa.array(values, pa.float64())})
        return SignalResult(self.name, scores, evidence)

    def _scores(self, data: pa.Table) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class OutputHarvest(_FeatureSignal):
    """Far more output than input, with large output budgets: answers are the product.

    Ratio 10 scores 0.5 and ratio 100 scores 1 (log scale); long mean outputs
    raise it, so a chat user asking short questions for long answers does not
    score on the ratio alone.
    """

    name = "output_harvest"
    reason = "HIGH_OUTPUT_RATIO"
    requires = ("output_ratio", "output_tokens_mean", "n_events")
    evidence_columns = ("output_ratio", "output_tokens_mean", "max_output_tokens_mean", "n_events")

    def _scores(self, data):
        ratio = ramp(np.log10(np.maximum(_col(data, "output_ratio"), 1e-9)), 0.0, 2.0)
        length = ramp(_col(data, "output_tokens_mean"), 200, 1500)
        return np.sqrt(ratio * length)


class LogprobsHarvest(_FeatureSignal):
    """Token log-probabilities requested on most calls: soft labels for distillation."""

    name = "logprobs_harvest"
    reason = "LOGPROBS_HARVEST"
    requires = ("logprobs_share", "n_events")
    evidence_columns = ("logprobs_share", "n_events")

    def _scores(self, data):
        return ramp(_col(data, "logprobs_share"), 0.2, 0.9)


class SamplingFanout(_FeatureSignal):
    """Several completions per prompt (n > 1): buying diverse samples per question."""

    name = "sampling_fanout"
    reason = "SAMPLING_FANOUT"
    requires = ("fanout_share", "n_mean", "n_events")
    evidence_columns = ("fanout_share", "n_mean", "n_events")

    def _scores(self, data):
        return ramp(_col(data, "fanout_share"), 0.2, 0.9) * ramp(_col(data, "n_mean"), 1.0, 3.0)


class MachineTiming(_FeatureSignal):
    """Round-the-clock, evenly spaced, single-turn traffic: a script, not a person.

    Combines flatness over the 24 hours of the day (normalised entropy of the
    hour histogram), regular spacing (low coefficient of variation of the gaps
    between requests) and the absence of follow-up turns.
    """

    name = "machine_timing"
    reason = "MACHINE_TIMING"
    requires = ("hour_entropy", "gap_cv", "conversation_share", "n_events")
    evidence_columns = ("hour_entropy", "gap_cv", "conversation_share", "active_hours", "n_events")
    min_events = 48

    def _scores(self, data):
        flat = ramp(_col(data, "hour_entropy"), 0.82, 0.95)
        regular = ramp(-_col(data, "gap_cv", 2.0), -1.2, -0.4)
        single_turn = ramp(_col(data, "conversation_share"), 0.7, 0.98)
        return (0.45 * flat + 0.35 * regular + 0.2 * single_turn) * np.maximum(flat, regular)


class ModelPivot(_FeatureSignal):
    """Most traffic moved onto a model within a day of its release."""

    name = "model_pivot"
    reason = "MODEL_PIVOT"
    requires = ("pivot_share", "n_events")
    evidence_columns = ("pivot_share", "n_events")

    def _scores(self, data):
        return ramp(_col(data, "pivot_share"), 0.2, 0.6)


REFERENCE_REFUSAL_RATE = 0.01
"""Refused-or-failed share an unfitted :class:`RefusalProbing` measures against: the decision
service scores one account at a time and has no population (a scan fits its own rate)."""


def _refused_rate(data: pa.Table) -> float:
    """Share of refused or failed calls over all calls of the table (the population's own rate)."""
    n = _col(data, "n_events")
    return float(np.clip((_col(data, "error_share") * n).sum() / max(n.sum(), 1.0), 1e-4, 0.5))


class RefusalProbing(_FeatureSignal):
    """Far more refused (or failed) calls than this provider's traffic has: probing the guardrails.

    A harvest wrapped in jailbreaks or aimed at what the model withholds is
    refused again and again; an ordinary user is refused now and then. The
    score is how improbable the account's count of refused/failed calls is
    at the scanned population's own rate (``fit``): the binomial tail
    probability ``p`` maps to ``-log10 p`` ramped from 1.5 to 4.5, so about
    one ordinary account in a thousand reaches 0.5 whatever the provider's
    refusal rate, and a handful of refusals in a few calls proves nothing.
    Failed calls are counted with refused ones (``error_share``): a provider's
    error rate is common to every account and sits in the base rate. Unfitted
    (the decision service's one-account scoring) it uses
    :data:`REFERENCE_REFUSAL_RATE`.
    """

    name = "refusal_probing"
    reason = "REFUSAL_PROBING"
    requires = ("error_share", "n_events")
    evidence_columns = ("error_share", "n_events")

    def fit(self, data: pa.Table) -> "RefusalProbing":
        self.base_rate_ = _refused_rate(data)
        return self

    def _scores(self, data):
        from scipy.stats import binom

        n = _col(data, "n_events")
        k = np.rint(_col(data, "error_share") * n)
        rate = getattr(self, "base_rate_", None) or REFERENCE_REFUSAL_RATE
        tail = binom.sf(k - 1, np.maximum(n, 1), rate)
        return np.where(k > 0, ramp(-np.log10(np.maximum(tail, 1e-300)), 1.5, 4.5), 0.0)


BEHAVIOUR_SIGNALS = (OutputHarvest, LogprobsHarvest, SamplingFanout, MachineTiming, ModelPivot, RefusalProbing)
