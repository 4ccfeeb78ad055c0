"""The detectors a scan runs, and which per-account table each one reads.

Behaviour signals read the account feature table; signals that require the
``prompt`` column read the per-account prompt sample instead, and those that
require ``end_user`` the sample of router accounts' busiest end users.
"""
from __future__ import annotations

import pyarrow as pa

from distillguard.signals.base import Signal
from distillguard.signals.behaviour import BEHAVIOUR_SIGNALS

__all__ = ["default_signals", "input_for"]


def default_signals() -> list[Signal]:
    """Fresh instances of every shipped signal, in a stable order."""
    from distillguard.signals.content import CONTENT_SIGNALS

    return [cls() for cls in BEHAVIOUR_SIGNALS + tuple(CONTENT_SIGNALS)]


def input_for(signal: Signal, features: pa.Table, samples, end_users):
    """The table (or shared :class:`~distillguard.signals.content.view.PromptView`) ``signal`` reads."""
    if "end_user" in signal.requires:
        return end_users
    return samples if "prompt" in signal.requires else features
