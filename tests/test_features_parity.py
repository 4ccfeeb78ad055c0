"""The batch features equal the service's running features, column for column.

``distillguard features`` on a simulated world (every archetype, a model
released mid-way) against ``/v1/accounts/{id}`` of a real service on loopback after
the same events were posted to ``/v1/events`` in time order: every column of
:data:`~distillguard.features.FEATURE_COLUMNS` within 1e-6 relative.
"""
from __future__ import annotations

import math
from datetime import datetime

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from conftest import run_main
from distillguard.features import FEATURE_COLUMNS
from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import RoleAuth, serving

REL = 1e-6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The smoke scenario over three days with a model released on the second (so ``pivot_share`` is exercised)."""
    from importlib.resources import files

    from distillguard.sim import simulate

    text = files("distillguard.sim").joinpath("scenarios/smoke.yaml").read_text()
    assert "days: 2}" in text and "at_day: 0.75}" in text
    out = tmp_path_factory.mktemp("parity")
    scenario = out / "smoke-release.yaml"
    scenario.write_text(text.replace("days: 2}", "days: 3}").replace("at_day: 0.75}", "at_day: 1.5}"))
    simulate(str(scenario), scale=0.6, seed=5, out=out, fmt="parquet", family="holdout")
    return out


def _same(batch, online) -> bool:
    if batch is None or online is None:
        return batch is None and online is None
    if isinstance(batch, datetime):
        return batch == datetime.fromisoformat(online)
    if isinstance(batch, float) or isinstance(online, float):
        return math.isclose(batch, online, rel_tol=REL, abs_tol=1e-12)
    return batch == online


def _post_in_time_order(client, events_file, batch: int = 250) -> int:
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{events_file}') ORDER BY ts, event_id").to_arrow_table().to_pylist()
    for r in rows:
        r["ts"] = r["ts"].isoformat()
    accepted = 0
    for i in range(0, len(rows), batch):
        body = [{k: v for k, v in r.items() if v is not None} for r in rows[i:i + batch]]
        res = client.post("/v1/events", json={"events": body})
        assert res.status_code == 200, res.text
        accepted += res.json()["accepted"]
    return accepted


def test_distillguard_features_equal_the_services_running_features(world, tmp_path, monkeypatch, capsys):
    out = tmp_path / "features.parquet"
    code, _, err = run_main(monkeypatch, capsys, "features", world / "events.parquet", "--out", out, "--quiet")
    assert code == 0, err
    batch = {r["account_id"]: r for r in pq.read_table(out).to_pylist()}
    assert tuple(pq.read_schema(out).names) == FEATURE_COLUMNS

    db = tmp_path / "dg.duckdb"
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, flush_seconds=0.5))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=30, auth=RoleAuth(db)) as client:
        assert _post_in_time_order(client, world / "events.parquet") == sum(r["n_events"] for r in batch.values())
        online = {acc: client.get(f"/v1/accounts/{acc}").json()["features"] for acc in batch}

    off = [(acc, col, row[col], online[acc][col]) for acc, row in batch.items() for col in FEATURE_COLUMNS
           if not _same(row[col], online[acc][col])]
    assert not off, off[:10]
    # the world exercises every kind of column: none is constant or always null
    for col in FEATURE_COLUMNS[1:]:
        assert len({str(r[col]) for r in batch.values()}) > 1, col


@pytest.mark.parametrize("args, message", [
    (["missing.jsonl", "--out", "f.parquet"], "no such file"),
    (["EVENTS", "--out", "f.csv"], "must name a .parquet file"),
    (["EVENTS", "--out", "f.parquet", "--accounts", "missing.csv"], "no such file"),
    (["EVENTS", "--out", "f.parquet", "--format", "xml"], "unknown format"),
])
def test_features_cli_bad_input_is_one_line_and_exit_2(world, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    args = [str(world / "events.parquet") if a == "EVENTS" else a for a in args]
    code, _, err = run_main(monkeypatch, capsys, "features", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "f.parquet").exists()


def test_features_cli_gives_metadata_only_accounts_a_row(world, tmp_path, monkeypatch, capsys):
    out = tmp_path / "f.parquet"
    code, _, err = run_main(monkeypatch, capsys, "features", world / "events.parquet",
                            "--accounts", world / "accounts.parquet", "--out", out, "-q")
    assert code == 0, err
    rows = pq.read_table(out).to_pylist()
    meta = set(pq.read_table(world / "accounts.parquet").column("account_id").to_pylist())
    active = set(duckdb.sql(f"SELECT DISTINCT account_id FROM read_parquet('{world / 'events.parquet'}')")
                 .fetchnumpy()["account_id"])
    assert [r["account_id"] for r in rows] == sorted(meta | active)  # one row per account, in account order
    assert all(r["n_events"] == 0 for r in rows if r["account_id"] not in active)
