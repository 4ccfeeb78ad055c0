"""Traffic simulator with ground truth (see docs/simulator.md).

``simulate(scenario, scale, seed, out, fmt, family)`` writes ``events.parquet``
(or ``events.jsonl``), ``accounts.parquet`` and ``labels.parquet`` into ``out``.
"""
from __future__ import annotations

from distillguard.sim.engine import LABEL_SCHEMA, simulate
from distillguard.sim.scenario import load_scenario, preset_names

__all__ = ["simulate", "load_scenario", "preset_names", "LABEL_SCHEMA"]
