"""Shared fixtures: simulated traffic made once per test session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smoke_traffic(tmp_path_factory):
    """The simulator's smoke scenario, holdout phrasing (never used to develop detectors)."""
    from distillguard.sim import simulate

    out = tmp_path_factory.mktemp("smoke")
    simulate("smoke", scale=1.0, seed=3, out=out, fmt="parquet", family="holdout")
    return out
