"""Engine benchmark: DuckDB at 10M events, Spark local[2] beside DuckDB at 1M, the reported-scale preset.

Usage:
  python benchmarks/bench_spark.py [--events N] [--compare-events N] [--master URL]
                                   [--reported-scale] [--skip-large] [--skip-compare] [--data DIR]

Parts (each scan runs in a child process; its peak memory is the largest sum
of RSS over its process tree, sampled every 0.2 s, so Spark's JVM and Python
workers count):
  * large:   the DuckDB engine on ``default`` traffic of about ``--events``
             events (default 10,000,000); targets: <= 10 min and <= 8 GB on 2 cores;
  * compare: the same ``--compare-events`` file (default 1,000,000) scanned by
             the DuckDB engine and by the Spark engine (``--master``, default
             ``local[2]``), with the per-stage breakdown of both;
  * reported: with ``--reported-scale``, the ``reported-scale`` preset
             (24,000 campaign accounts, ~16M campaign exchanges, ~18.7M events)
             on the DuckDB engine.
Simulated data is generated once under ``bench-data/`` and reused. Results
are printed and written to ``bench-data/bench-spark.json``. Not a test: the
machines here are shared and noisy; see docs/spark.md for figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENTS_PER_SCALE = 800_000  # rough events of the default scenario at scale 1.0


def simulated(data: Path, scenario: str, events: int | None) -> Path:
    """``data`` holding events.parquet and accounts.parquet (generated once)."""
    if not (data / "events.parquet").exists():
        from distillguard.sim import simulate

        scale = 1.0 if events is None else events / EVENTS_PER_SCALE
        t0 = time.perf_counter()
        simulate(scenario, scale=scale, seed=11, out=data, fmt="parquet", family="holdout", progress=False)
        print(f"simulated {scenario} scale {scale:.3g} in {time.perf_counter() - t0:.0f} s -> {data}", flush=True)
    return data


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        p = psutil.Process(proc.pid)
        for q in [p, *p.children(recursive=True)]:
            try:
                total += q.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def measured(cmd: list[str]) -> dict:
    """Run ``cmd``; its last stdout line is JSON. Adds wall_s and peak_tree_rss_gb."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc))
            done.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    done.set()
    th.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = err.strip().splitlines()[-5:] if err else [str(proc.returncode)]
        raise SystemExit("run failed: " + " | ".join(tail))
    res = json.loads(out.strip().splitlines()[-1])
    res["wall_s"] = round(wall, 2)
    res["peak_tree_rss_gb"] = round(peak[0] / 2**30, 2)
    return res


def child(engine: str, data: Path, out: Path, master: str) -> None:
    """One scan in this process, timed by stage; prints a JSON line."""
    import resource
    import tempfile

    t_all = time.perf_counter()
    stages: dict[str, float] = {}
    from distillguard.report import write_outputs
    from distillguard.scan import run_scan, store_inputs

    events, accounts = data / "events.parquet", data / "accounts.parquet"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        if engine == "spark":
            from distillguard.engines.spark import get_session, scan_inputs

            t0 = time.perf_counter()
            spark = get_session(master)
            stages["spark session start"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            inputs, counts = scan_inputs([events], out / "quarantine.jsonl", accounts, spark=spark, tmp=tmp)
            stages["read + validate (Spark)"] = time.perf_counter() - t0
        else:
            from distillguard.ingest import ingest_files
            from distillguard.store import EventStore

            store = EventStore(Path(tmp) / "bench.duckdb")
            t0 = time.perf_counter()
            counts = ingest_files([str(events)], store, quarantine_path=out / "quarantine.jsonl",
                                  accounts=str(accounts), progress=False)
            stages["ingest (DuckDB)"] = time.perf_counter() - t0
            inputs = store_inputs(store)
        result = run_scan(*inputs)
        stages.update(result.timings)
        t0 = time.perf_counter()
        write_outputs(result, out, counts.as_dict())
        stages["outputs"] = time.perf_counter() - t0
    stages["total in process"] = time.perf_counter() - t_all
    actions: dict[str, int] = {}
    for a in result.accounts.column("action").to_pylist():
        actions[a] = actions.get(a, 0) + 1
    print(json.dumps({
        "engine": engine, "master": master if engine == "spark" else None, "events": counts.accepted,
        "accounts": result.accounts.num_rows, "campaigns": len(result.campaigns), "actions": actions,
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "self_maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }))


def scan(engine: str, data: Path, master: str) -> dict:
    out = data / f"out-{engine}"
    cmd = [sys.executable, __file__, "--child", engine, "--data", str(data), "--out", str(out), "--master", master]
    res = measured(cmd)
    res["data"] = str(data)
    return res


def show(label: str, r: dict) -> None:
    print(f"\n== {label}: {r['engine']}{' ' + r['master'] if r.get('master') else ''} ==")
    print(f"events {r['events']:,}  accounts {r['accounts']:,}  campaigns {r['campaigns']}  actions {r['actions']}")
    print(f"wall {r['wall_s']:.1f} s ({r['events'] / r['wall_s']:,.0f} events/s)  peak RSS (process tree) "
          f"{r['peak_tree_rss_gb']:.2f} GB")
    print("stages (s): " + ", ".join(f"{k} {v}" for k, v in r["stages_s"].items()))


def agreement(a: dict, b: dict) -> dict:
    import pyarrow.parquet as pq

    x = pq.read_table(Path(a["data"]) / f"out-{a['engine']}" / "accounts.parquet").sort_by("account_id").to_pylist()
    y = pq.read_table(Path(b["data"]) / f"out-{b['engine']}" / "accounts.parquet").sort_by("account_id").to_pylist()
    same_ids = [r["account_id"] for r in x] == [r["account_id"] for r in y]
    return {
        "same_accounts": same_ids,
        "action_differences": sum(p["action"] != q["action"] for p, q in zip(x, y)) if same_ids else None,
        "max_risk_difference": max((abs(p["risk"] - q["risk"]) for p, q in zip(x, y)), default=0.0) if same_ids else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000, help="events of the large DuckDB run")
    ap.add_argument("--compare-events", type=int, default=1_000_000, help="events of the DuckDB/Spark comparison")
    ap.add_argument("--master", default="local[2]", help="Spark master of the comparison")
    ap.add_argument("--reported-scale", action="store_true", help="also scan the reported-scale preset on DuckDB")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--data", type=Path, default=None, help="data folder (default bench-data/)")
    ap.add_argument("--child", choices=("duckdb", "spark"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.out, args.master)
        return
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    root = args.data or ROOT / "bench-data"
    report: dict = {"cpus": os.cpu_count()}
    if not args.skip_compare:
        data = simulated(root / f"default-{args.compare_events}", "default", args.compare_events)
        duck = scan("duckdb", data, args.master)
        show(f"compare {args.compare_events:,}", duck)
        spk = scan("spark", data, args.master)
        show(f"compare {args.compare_events:,}", spk)
        agree = agreement(duck, spk)
        print(f"\nSpark / DuckDB wall time: {spk['wall_s'] / duck['wall_s']:.1f}x; agreement: {agree}")
        report["compare"] = {"duckdb": duck, "spark": spk, "agreement": agree}
    if not args.skip_large:
        data = simulated(root / f"default-{args.events}", "default", args.events)
        big = scan("duckdb", data, args.master)
        show(f"large {args.events:,}", big)
        ok = big["wall_s"] <= 600 and big["peak_tree_rss_gb"] <= 8
        print(f"target <= 600 s and <= 8 GB: {'met' if ok else 'NOT met'}")
        report["large"] = big
    if args.reported_scale:
        data = simulated(root / "reported-scale", "reported-scale", None)
        rep = scan("duckdb", data, args.master)
        show("reported-scale", rep)
        report["reported_scale"] = rep
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench-spark.json").write_text(json.dumps(report, indent=1))
    print(f"\nwritten {root / 'bench-spark.json'}")


if __name__ == "__main__":
    main()
