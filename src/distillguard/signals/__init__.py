"""Detectors: each a small unit returning named scores with evidence."""
from distillguard.signals.base import Signal, SignalResult

__all__ = ["Signal", "SignalResult"]
