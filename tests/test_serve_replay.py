"""Replay simulated traffic through the service: campaigns stopped early, cards linked at the first request."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest


def _cli(*args):
    p = subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.slow
def test_replay_of_day_two_against_the_scan_of_day_one(smoke_traffic, tmp_path):
    events = pq.read_table(smoke_traffic / "events.parquet")
    cut = pc.min(events["ts"]).as_py() + (pc.max(events["ts"]).as_py() - pc.min(events["ts"]).as_py()) / 2
    day1 = events.filter(pc.less(events["ts"], pa.scalar(cut, events["ts"].type)))
    day2 = events.filter(pc.greater_equal(events["ts"], pa.scalar(cut, events["ts"].type)))
    pq.write_table(day1, tmp_path / "day1.parquet")
    pq.write_table(day2, tmp_path / "day2.parquet")
    db = tmp_path / "dg.duckdb"
    _cli("scan", tmp_path / "day1.parquet", "--accounts", smoke_traffic / "accounts.parquet", "--db", db,
         "--out", tmp_path / "res", "--json", "--quiet")
    report = json.loads(_cli("replay", tmp_path / "day2.parquet", "--db", db, "--labels", smoke_traffic / "labels.parquet",
                             "--accounts", smoke_traffic / "accounts.parquet", "--json"))
    camps = report["campaigns"]
    assert camps and report["events"] == day2.num_rows
    stopped = [c for c in camps if c["accounts_stopped"]]
    assert len(stopped) >= len(camps) / 2
    assert all(c["harvested_before_detection"] <= max(0.01 * c["exchanges"], 2000) for c in stopped)
    assert report["benign_accounts_stopped"] <= max(1, report["benign_accounts"] // 50)
    # every account that first appears on day 2 and pays with a card of a day-1 campaign is stopped at its first request
    con = duckdb.connect(str(db), read_only=True)
    cards = {v for (v,) in con.execute("SELECT value FROM campaign_indicators WHERE kind = 'payment_fingerprint'").fetchall()}
    con.close()
    meta = {r["account_id"]: r["payment_fingerprint"] for r in pq.read_table(smoke_traffic / "accounts.parquet").to_pylist()}
    new = set(day2.column("account_id").to_pylist()) - set(day1.column("account_id").to_pylist())
    carded = {a for a in new if (meta.get(a) or "").lower() in cards}
    first = {a for c in camps for a in c["stopped_at_first_request"]}
    assert carded <= first, sorted(carded - first)
