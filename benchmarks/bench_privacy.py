"""Privacy benchmark: what redaction before storage and encryption at rest cost (docs/privacy.md).

Usage: python benchmarks/bench_privacy.py [--n N] [--events N] [--skip-scan] [--repeat R]

In one run, each measurement in a fresh child process:

1. ingest: bench_ingest's canonical JSONL (``--n`` events, default 1M) with
   personal data planted in 5% of the prompts (e-mail, phone, card, API key):
   DuckDB's ``read_json`` into a table (the baseline), our ingest with
   ``--prompts full`` and with the default ``redacted``. Target: redacted
   >= 0.4 of ``read_json``.
2. scan: bench_scan's simulated world (``--events``, default 1M) with the same
   personal data planted in 5% of prompts, ``distillguard scan`` with
   ``--prompts full`` and the default, and ``distillguard evaluate`` of both
   on the simulator's labels. Target: redaction costs at most 15% of scan
   throughput; detection figures unchanged within noise.
3. encryption: the same Parquet written into a plain and an encrypted DuckDB
   file and read back (``httpfs``'s OpenSSL when installed, else DuckDB's
   mbedtls fallback, which is slower: an upper bound).
Not a test: the machine may be shared; ``--repeat`` keeps the best of each.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import DATA, generate, run_child  # noqa: E402
from bench_scan import ensure_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLANT = ("' reach me at user' || (h % 9973) || '@example.com or +1 415 555 ' || lpad(CAST(h % 10000 AS VARCHAR), 4, '0') "
         "|| ', card 4539 5787 6362 1486, key sk-proj-Q7xZ9vLk2mN4pR8sT1uW3yB5cD6eF0gH2jK' || (h % 97)")


def planted_jsonl(n: int) -> Path:
    """bench_ingest's events with personal data in every 20th prompt."""
    jsonl, parquet = DATA / f"events_{n}.jsonl", DATA / f"events_{n}.parquet"
    out = DATA / f"events_{n}_pii.jsonl"
    if out.exists():
        return out
    if not parquet.exists():
        generate(n, jsonl, parquet)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    tmp = out.with_suffix(".tmp")
    con.execute(f"""COPY (SELECT * EXCLUDE (h) REPLACE (strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS ts,
                        CASE WHEN h % 20 = 0 THEN prompt || {PLANT} ELSE prompt END AS prompt)
                    FROM (SELECT *, hash(event_id) AS h FROM read_parquet('{parquet}')) ORDER BY ts)
                    TO '{tmp}' (FORMAT json)""")
    con.close()
    tmp.rename(out)
    return out


def planted_parquet(events: Path) -> Path:
    """The simulated events with personal data appended to every 20th prompt (as ingest's data)."""
    out = events.with_name("events_pii.parquet")
    if not out.exists():
        duckdb.execute(f"""COPY (SELECT * EXCLUDE (h) REPLACE (CASE WHEN h % 20 = 0 THEN prompt || {PLANT} ELSE prompt END AS prompt)
                           FROM (SELECT *, hash(event_id) AS h FROM read_parquet('{events}')))
                           TO '{out}' (FORMAT parquet)""")
    return out


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def bench_ingest(n: int, repeat: int) -> None:
    src = planted_jsonl(n)
    runs: dict[str, list] = {"read_json": [], "full": [], "redacted": []}
    for _ in range(repeat):  # interleaved: the machine may be shared
        runs["read_json"].append(run_child("duckdb", src, "priv_base"))
        runs["full"].append(run_child("ours", src, "priv_full", "full"))
        runs["redacted"].append(run_child("ours", src, "priv_red", "redacted"))
    base = best(runs["read_json"])
    print(f"ingest: {n:,} events, JSONL {src.stat().st_size / 1e6:.0f} MB, personal data in 5% of prompts")
    for k in ("read_json", "full", "redacted"):
        r = best(runs[k])
        print(f"  {k:9s} {r['seconds']:7.2f} s  {r['accepted'] / r['seconds']:>10,.0f} ev/s  "
              f"cpu {r['cpu_seconds']:6.1f} s  rss {r['peak_rss_mb']:5.0f} MB  ratio to read_json {base['seconds'] / r['seconds']:.2f} "
              f"(cpu {base['cpu_seconds'] / r['cpu_seconds']:.2f})")
    full, red = best(runs["full"]), best(runs["redacted"])
    print(f"  redaction adds {100 * (red['seconds'] / full['seconds'] - 1):.0f}% to ingest time "
          f"(target: redacted >= 0.40 of read_json: {'PASS' if base['seconds'] / red['seconds'] >= 0.4 else 'BELOW'})")


def scan_once(events: Path, accounts: Path, out: Path, prompts: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "scan", str(events), "--accounts", str(accounts),
                           "--out", str(out), "--quiet", "--json", "--prompts", prompts], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"scan failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": wall, "ingest": s["timings_s"]["ingest"], "campaigns": s["campaigns"], "actions": s["actions"]}


def bench_scan(n_events: int, repeat: int) -> None:
    from distillguard.privacy.redact import PREFILTER

    data = ROOT / "bench-data" / f"scan-{n_events}"
    events = planted_parquet(ensure_data(n_events, data))
    n, hits = duckdb.execute(
        "SELECT count(*), count(*) FILTER (WHERE regexp_matches(coalesce(prompt, '') || ' ' || coalesce(response, ''), ?)) "
        f"FROM read_parquet('{events}')", [PREFILTER]).fetchall()[0]
    runs: dict[str, list] = {"full": [], "redacted": []}
    for _ in range(repeat):
        for k in runs:
            runs[k].append(scan_once(events, data / "accounts.parquet", data / f"scan-out-{k}", k))
    full, red = best(runs["full"]), best(runs["redacted"])
    print(f"scan: {n:,} simulated events; {hits / n:.1%} of prompts/responses hold a redaction candidate")
    for k, r in (("full", full), ("redacted", red)):
        print(f"  {k:9s} {r['seconds']:7.2f} s  {n / r['seconds']:>10,.0f} ev/s  (ingest stage {r['ingest']:.2f} s)  "
              f"campaigns {r['campaigns']}  actions {r['actions']}")
    cost = 1 - full["seconds"] / red["seconds"]
    print(f"  redaction costs {cost:.1%} of scan throughput (target <= 15%: {'PASS' if cost <= 0.15 else 'ABOVE'})")
    quality = {k: evaluate(data / "labels.parquet", data / f"scan-out-{k}") for k in runs}
    print(f"  detection (distillguard evaluate, simulator labels)   {'full':>8s} {'redacted':>8s}")
    for name in quality["full"]:
        print(f"    {name:48s} {quality['full'][name]:8.3f} {quality['redacted'][name]:8.3f}")


def evaluate(labels: Path, scan: Path) -> dict[str, float]:
    """The headline figures of ``distillguard evaluate`` on the simulator's labels."""
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "evaluate", "--labels", str(labels), "--scan",
                           str(scan), "--json"], capture_output=True, text=True, check=True)
    s = json.loads(proc.stdout)["systems"]["scan"]
    out = {"ROC AUC": s["roc_auc"], "policy precision": s["policy"]["precision"], "policy recall": s["policy"]["recall"],
           "policy benign FPR": s["policy"]["fpr"], "linkage ARI": s["linkage_ari"],
           "campaigns found": s["campaigns_found"]["found"]}
    out |= {f"recall at FPR {k}": v["recall"] for k, v in s["recall_at_fpr"].items()}
    return out


def bench_encryption(repeat: int) -> None:
    parquet = next(iter(sorted(DATA.glob("events_*.parquet"))), None)
    if parquet is None:
        return
    con = duckdb.connect()
    try:
        con.execute("LOAD httpfs")
        how = "OpenSSL (httpfs)"
    except duckdb.Error:
        con.execute("SET force_mbedtls_unsafe = true")  # measurement only: distillguard itself refuses this
        how = "DuckDB's mbedtls fallback (httpfs not installed here; OpenSSL is faster)"
    times: dict[str, list] = {"plain": [], "encrypted": []}
    for i in range(repeat):  # interleaved, best of each
        for label, opts in (("plain", ""), ("encrypted", " (ENCRYPTION_KEY 'bench-key-0123456789')")):
            f = DATA / f"_enc_{label}.duckdb"
            f.unlink(missing_ok=True)
            con.execute(f"ATTACH '{f}' AS db_{label}{opts}")
            t0 = time.perf_counter()
            con.execute(f"CREATE TABLE db_{label}.events AS SELECT * FROM read_parquet('{parquet}')")
            con.execute("CHECKPOINT db_" + label)
            w = time.perf_counter() - t0
            con.execute(f"DETACH db_{label}")  # read back from the file: blocks are decrypted, not cached
            con.execute(f"ATTACH '{f}' AS db_{label}{opts}")
            t0 = time.perf_counter()
            con.execute(f"SELECT account_id, count(*), count(DISTINCT prompt) FROM db_{label}.events GROUP BY 1").fetchall()
            times[label].append((w, time.perf_counter() - t0))
            con.execute(f"DETACH db_{label}")
            f.unlink()
    pw, ew = min(t[0] for t in times["plain"]), min(t[0] for t in times["encrypted"])
    pr, er = min(t[1] for t in times["plain"]), min(t[1] for t in times["encrypted"])
    print(f"encryption at rest ({how}), {parquet.name}, best of {repeat}:")
    print(f"  write {pw:.2f} s plain, {ew:.2f} s encrypted ({100 * (ew / pw - 1):+.0f}%); "
          f"aggregate read {pr:.2f} s plain, {er:.2f} s encrypted ({100 * (er / pr - 1):+.0f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="events of the ingest benchmark")
    ap.add_argument("--events", type=int, default=1_000_000, help="events of the scan benchmark")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--only-encryption", action="store_true")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    if args.only_encryption:
        bench_encryption(max(args.repeat, 3))
        return
    bench_ingest(args.n, args.repeat)
    bench_encryption(max(args.repeat, 3))
    if not args.skip_scan:
        bench_scan(args.events, args.repeat)


if __name__ == "__main__":
    main()
