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


def scan_scenario(scenario: dict, seed: int, where):
    """Simulate ``scenario`` (holdout phrasing) into ``where`` and scan it with the packaged
    model and policy, stored in a real DuckDB file: (ScanResult, label rows)."""
    import pyarrow.parquet as pq

    from distillguard.ingest import ingest_files
    from distillguard.scan import run_scan, store_inputs
    from distillguard.sim import simulate
    from distillguard.store import EventStore

    simulate(scenario, seed=seed, out=where / "w", family="holdout")
    store = EventStore(where / "s.duckdb")
    with store:
        ingest_files([str(where / "w" / "events.parquet")], store, accounts=str(where / "w" / "accounts.parquet"),
                     progress=False)
        result = run_scan(*store_inputs(store))
    return result, pq.read_table(where / "w" / "labels.parquet").to_pylist()


def service_decisions(where, stored: dict[str, tuple[float, list[dict]]]) -> dict[str, dict]:
    """What a real decision service (loopback HTTP, DuckDB fixture store) answers for accounts whose scan verdict
    is replaced by ``stored``: account -> (risk, reasons as the scan stores them)."""
    import json

    import duckdb
    import httpx

    from distillguard.serve import Engine, EngineConfig
    from distillguard.serve.testing import RoleAuth, fixture_store, serving

    store = fixture_store(where / "dg.duckdb")
    con = duckdb.connect(str(store))
    for acc, (risk, reasons) in stored.items():
        con.execute("UPDATE account_results SET risk = ?, reasons = ?, reasons_json = ? WHERE account_id = ?",
                    [risk, [r["code"] for r in reasons], json.dumps(reasons), acc])
    con.close()
    engine = Engine(EngineConfig(db=str(store), refresh_seconds=3600, flush_seconds=0.2))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(store)) as c:
        return {acc: c.post("/v1/decide", json={"account_id": acc}).json() for acc in stored}


@pytest.fixture(scope="session")
def smoke_traffic(tmp_path_factory):
    """The simulator's smoke scenario, holdout phrasing (never used to develop detectors)."""
    from distillguard.sim import simulate

    out = tmp_path_factory.mktemp("smoke")
    simulate("smoke", scale=1.0, seed=3, out=out, fmt="parquet", family="holdout")
    return out


def snapshot(path, text: str) -> str:
    """The committed snapshot at ``path`` to compare ``text`` with; with DISTILLGUARD_UPDATE_SNAPSHOTS=1 it is
    rewritten from ``text`` first (regenerate, then review the diff)."""
    import os

    if os.environ.get("DISTILLGUARD_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path.read_text()
