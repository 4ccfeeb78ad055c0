"""The detector contract.

A signal takes per-account data (a PyArrow table with an ``account_id``
column) and returns named scores in [0, 1] with evidence. **A high score is
indicative of extraction.** Signals only score; thresholds and actions belong
to the policy (:mod:`distillguard.score`).

Conventions follow scikit-learn: ``__init__`` stores its keyword parameters
unchanged; ``fit`` returns ``self``; anything learned ends in ``_``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa

__all__ = ["Signal", "SignalResult", "ramp"]


def ramp(x, lo: float, hi: float) -> np.ndarray:
    """0 at or below ``lo``, 1 at or above ``hi``, linear between: how detectors turn a measure into a score."""
    return np.clip((np.asarray(x, dtype=float) - lo) / max(hi - lo, 1e-9), 0.0, 1.0)


@dataclass
class SignalResult:
    """Scores and evidence of one signal.

    Attributes
    ----------
    name
        The signal's name.
    scores
        ``account_id`` plus one float64 column per score, each in [0, 1].
    evidence
        ``account_id -> JSON-able dict`` for accounts worth explaining
        (example prompts, parameter values, counts). May omit low scorers.
    """

    name: str
    scores: pa.Table
    evidence: dict[str, dict] = field(default_factory=dict)


class Signal:
    """Base class of detectors. Subclasses set the class attributes and ``score``.

    Attributes
    ----------
    name
        Stable identifier, e.g. ``"cot_elicitation"``.
    reason
        The reason code it supports (DESIGN.md), e.g. ``"COT_ELICITATION"``.
    requires
        Input columns it reads besides ``account_id``.
    """

    name: ClassVar[str]
    reason: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def fit(self, data: pa.Table) -> "Signal":
        """Learn a baseline from reference traffic; default: nothing to learn."""
        return self

    def score(self, data: pa.Table) -> SignalResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def fitted(self) -> dict:
        """What :meth:`fit` learned: the attributes ending in ``_`` (scikit-learn's convention)."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def set_fitted(self, learned: dict) -> "Signal":
        """Take what another process's :meth:`fit` learned (:meth:`fitted`); ``{}`` makes it unfitted again."""
        stale = set(self.fitted()) - set(learned)
        for k, v in learned.items():  # set before removing: a concurrent score never sees a half-unfitted signal
            setattr(self, k, v)
        for k in stale:
            delattr(self, k)
        return self

    def get_params(self) -> dict:
        return dict(vars(self))

    @classmethod
    def _test_params(cls):
        """Constructor kwargs the shared contract tests instantiate it with."""
        yield {}
