"""Detection quality on traffic the detectors never saw, beside three baselines.

Usage: python benchmarks/bench_quality.py [--scale 1.0] [--seed 2027]

Simulates the default scenario in the *holdout* phrasing family (the fusion
weights are fitted on the train family, `make calibrate`), scans it, and
prints distillguard beside the volume, PRADA-style and MMD baselines
(benchmarks/compare.py) on the same data, each baseline flagged at the
scan's achieved benign FPR.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2027)
    args = ap.parse_args()
    data = ROOT / "bench-data" / f"quality-{args.scale}-{args.seed}"
    run = [sys.executable, "-m", "distillguard.cli"]
    if not (data / "events.parquet").exists():
        subprocess.run(run + ["simulate", "--scenario", "default", "--scale", str(args.scale), "--seed", str(args.seed),
                              "--family", "holdout", "--out", str(data), "-q"], check=True)
    subprocess.run(run + ["scan", str(data / "events.parquet"), "--accounts", str(data / "accounts.parquet"),
                          "--out", str(data / "scan"), "--quiet"], check=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--events", str(data / "events.parquet"),
                    "--labels", str(data / "labels.parquet"), "--scan", str(data / "scan")], check=True)


if __name__ == "__main__":
    main()
