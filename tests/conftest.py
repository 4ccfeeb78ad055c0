"""Shared fixtures and helpers: simulated traffic made once per test session, the CLI in-process."""
from __future__ import annotations

import sys

import pytest


def run_main(monkeypatch, capsys, *args):
    """The CLI entry point in-process (fast): (exit code, stdout, stderr)."""
    from distillguard.cli import main

    monkeypatch.setattr(sys, "argv", ["distillguard", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="session")
def smoke_traffic(tmp_path_factory):
    """The simulator's smoke scenario, holdout phrasing (never used to develop detectors)."""
    from distillguard.sim import simulate

    out = tmp_path_factory.mktemp("smoke")
    simulate("smoke", scale=1.0, seed=3, out=out, fmt="parquet", family="holdout")
    return out
