"""End-to-end scan benchmark: events/s and peak RSS, beside a bare DuckDB pass.

Usage: python benchmarks/bench_scan.py [--events N] [--data DIR]

Generates simulator traffic of about N events (default 1,000,000) once under
bench-data/, then in the same run measures
  * baseline: one bare DuckDB aggregation pass over the same Parquet file
    (per-account count, tokens, distinct prompts);
  * distillguard scan of that file (ingest + detection + outputs) in a child
    process, with its peak RSS.
Prints the figures and their ratio. Not a test: machines here are noisy.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVENTS_PER_SCALE = 800_000  # rough events of the default scenario at scale 1.0


def ensure_data(target: int, data: Path) -> Path:
    events = data / "events.parquet"
    if not events.exists():
        from distillguard.sim import simulate

        scale = target / DEFAULT_EVENTS_PER_SCALE
        simulate("default", scale=scale, seed=11, out=data, fmt="parquet", family="holdout")
    return events


def bare_duckdb_pass(events: Path) -> float:
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(
        "SELECT account_id, count(*), sum(input_tokens), sum(output_tokens), count(DISTINCT prompt) "
        f"FROM read_parquet('{events}') GROUP BY 1"
    ).fetchall()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    data = args.data or ROOT / "bench-data" / f"scan-{args.events}"
    events = ensure_data(args.events, data)
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{events}')").fetchall()[0][0]
    base = bare_duckdb_pass(events)
    out = data / "scan-out"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "distillguard.cli", "scan", str(events), "--accounts", str(data / "accounts.parquet"),
         "--out", str(out), "--quiet", "--json"],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"scan failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"events                 {n:,}")
    print(f"bare DuckDB pass       {base:8.2f} s  ({n / base:,.0f} events/s)")
    print(f"distillguard scan      {wall:8.2f} s  ({n / wall:,.0f} events/s)")
    print(f"scan / bare pass time  {wall / base:8.1f}x")
    print(f"scan peak RSS          {rss_gb:8.2f} GB")
    print(f"campaigns              {summary['campaigns']}")
    print("stage timings (s)      " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()))


if __name__ == "__main__":
    main()
