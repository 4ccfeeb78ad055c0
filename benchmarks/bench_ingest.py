"""Ingest benchmark: our ingest against DuckDB's own readers over the same file.

Run with ``make bench-ingest`` (or ``python benchmarks/bench_ingest.py``).
Generates ``bench-data/events_<N>.jsonl`` and ``.parquet`` (1M canonical
events, ~0.5 GB of JSONL with realistic prompt lengths) when missing, then in
the same run measures, each in a fresh child process:

* baseline: ``CREATE TABLE t AS SELECT * FROM read_json(file)`` into a new
  DuckDB file (resp. ``read_parquet``);
* ours: ``ingest_files([file], EventStore(new file))``.

It prints events/s, the ratio ours/baseline (higher is better, target >= 0.5)
on wall time and on CPU time (steadier on a shared machine), and the peak RSS
of each child. ``BENCH_N=100000`` (or ``--n``) for a quick try;
``BENCH_REPEAT=3`` interleaves runs and keeps the best of each.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"

WORDS = (
    "the of and to in is you that it for explain step by reasoning solve write code function "
    "python rust error test grade rubric answer question data model train think carefully "
    "show your work detail summary translate english french table list json output format "
    "analyse compare evaluate proof lemma theorem integral matrix vector graph tree sort "
    "search optimise agent tool call file repository bug fix refactor review security policy"
).split()


def generate(n: int, jsonl: Path, parquet: Path) -> None:
    import duckdb

    DATA.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute("SET enable_progress_bar=false")
    words = "[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    nw = len(WORDS)
    # prompt length in words: log-normal-ish (median ~45 words, long tail)
    con.execute(
        f"""
        CREATE TABLE ev AS
        WITH base AS (
          SELECT i,
                 hash(i) AS h,
                 least(600, greatest(3, CAST(exp(2.6 + 0.8 * sqrt(-2*ln(random()+1e-9))*cos(6.283*random())) AS INT))) AS plen,
                 least(200, greatest(1, CAST(exp(2.5 + 0.7 * sqrt(-2*ln(random()+1e-9))*cos(6.283*random())) AS INT))) AS rlen
          FROM range({n}) t(i)
        )
        SELECT
          'evt-' || i AS event_id,
          TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(CAST(i * 2592000000000 // {n} AS BIGINT) + (h % 1000000)::BIGINT) AS ts,
          'acct-' || (h % 20000) AS account_id,
          'key-' || (h % 25000) AS api_key_id,
          'org-' || (h % 3000) AS org_id,
          '10.' || (h % 250) || '.' || ((h >> 8) % 250) || '.' || ((h >> 16) % 250) AS client_ip,
          CASE h % 3 WHEN 0 THEN 'python-httpx/0.27' WHEN 1 THEN 'openai-python/1.40.0' ELSE 'curl/8.5' END AS user_agent,
          CASE h % 4 WHEN 0 THEN 'frontier-1' WHEN 1 THEN 'frontier-1-mini' WHEN 2 THEN 'frontier-2' ELSE 'coder-1' END AS model,
          array_to_string(list_transform(range(plen), lambda x: {words}[1 + ((h + x * 7919) % {nw})::INT]), ' ') AS prompt,
          CASE WHEN h % 5 = 0 THEN 'You are a helpful assistant.' END AS system_prompt,
          CASE WHEN h % 10 = 0 THEN array_to_string(list_transform(range(rlen), lambda x: {words}[1 + ((h + x * 104729) % {nw})::INT]), ' ') END AS response,
          (plen * 1.3)::BIGINT AS input_tokens,
          (rlen * 9)::BIGINT AS output_tokens,
          CASE WHEN h % 7 = 0 THEN (h % 2000)::BIGINT END AS reasoning_tokens,
          round(((h % 100) / 100.0), 2)::DOUBLE AS temperature,
          CASE WHEN h % 3 = 0 THEN 1.0 END::DOUBLE AS top_p,
          (CASE h % 4 WHEN 0 THEN 1024 WHEN 1 THEN 4096 ELSE 2048 END)::BIGINT AS max_output_tokens,
          1::BIGINT AS n,
          (h % 50 = 0) AS logprobs,
          CASE WHEN h % 50 = 0 THEN 5 END::BIGINT AS top_logprobs,
          CASE WHEN h % 6 = 0 THEN 'high' END AS reasoning_effort,
          'conv-' || (h % 300000) AS conversation_id,
          (h % 20 = 0) AS is_batch,
          CASE WHEN h % 40 = 0 THEN 'error' ELSE 'ok' END AS status
        FROM base
        """
    )
    tmp = jsonl.with_suffix(".tmp")
    con.execute(
        f"""COPY (SELECT * REPLACE (strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS ts) FROM ev ORDER BY ts)
            TO '{tmp}' (FORMAT json)"""
    )
    tmp.rename(jsonl)
    con.execute(f"COPY (SELECT * FROM ev ORDER BY ts) TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()


CHILD = r"""
import json, os, resource, sys, time
kind, src, db = sys.argv[1], sys.argv[2], sys.argv[3]
prompts = sys.argv[4] if len(sys.argv) > 4 else None  # store.prompts (default: redacted)
_ru = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = _ru.ru_utime + _ru.ru_stime
t0 = time.perf_counter()
if kind == "duckdb":
    import duckdb
    con = duckdb.connect(db)
    fn = "read_parquet" if src.endswith(".parquet") else "read_json"
    con.execute(f"CREATE TABLE events AS SELECT * FROM {fn}('{src}')")
    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    res = {"accepted": n}
else:
    from distillguard.ingest import ingest_files
    from distillguard.privacy import StorePrivacy
    from distillguard.store import EventStore
    with EventStore(db, privacy=StorePrivacy(prompts=prompts) if prompts else None) as store:
        r = ingest_files([src], store, progress=False)
    res = {"read": r.read, "accepted": r.accepted, "quarantined": r.quarantined, "duplicates": r.duplicates}
res["seconds"] = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent (which may have just generated the data)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
res["peak_rss_mb"] = int(hwm[0].split()[1]) / 1024 if hwm else ru.ru_maxrss / 1024
res["cpu_seconds"] = ru.ru_utime + ru.ru_stime - cpu0
print(json.dumps(res))
"""


def run_child(kind: str, src: Path, tag: str, prompts: str | None = None) -> dict:
    db = DATA / f"_bench_{tag}.duckdb"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(src), str(db), *([prompts] if prompts else [])],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    db.unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "1000000")))
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "1")))
    args = ap.parse_args()
    jsonl = DATA / f"events_{args.n}.jsonl"
    parquet = DATA / f"events_{args.n}.parquet"
    if not (jsonl.exists() and parquet.exists()):
        t0 = time.perf_counter()
        print(f"generating {args.n:,} events into {DATA} ...", flush=True)
        generate(args.n, jsonl, parquet)
        print(f"  done in {time.perf_counter() - t0:.1f}s", flush=True)
    print(f"JSONL {jsonl.stat().st_size / 1e6:.0f} MB, Parquet {parquet.stat().st_size / 1e6:.0f} MB, {args.n:,} events")
    ok = True
    for label, src in (("jsonl", jsonl), ("parquet", parquet)):
        bases, ourss = [], []
        for _ in range(args.repeat):  # interleaved, best of each: the machine may be shared
            bases.append(run_child("duckdb", src, label + "_base"))
            ourss.append(run_child("ours", src, label + "_ours"))
        base = min(bases, key=lambda r: r["seconds"])
        ours = min(ourss, key=lambda r: r["seconds"])
        ratio = base["seconds"] / ours["seconds"]
        cpu_ratio = base["cpu_seconds"] / ours["cpu_seconds"]
        print(
            f"{label:8s} duckdb {base['accepted'] / base['seconds']:>10,.0f} ev/s ({base['seconds']:.2f}s wall, "
            f"{base['cpu_seconds']:.1f}s cpu, rss {base['peak_rss_mb']:.0f} MB) | "
            f"ours {ours['accepted'] / ours['seconds']:>10,.0f} ev/s ({ours['seconds']:.2f}s wall, "
            f"{ours['cpu_seconds']:.1f}s cpu, rss {ours['peak_rss_mb']:.0f} MB) | "
            f"ratio {ratio:.2f} (cpu {cpu_ratio:.2f}) | read {ours['read']:,} accepted {ours['accepted']:,} "
            f"quarantined {ours['quarantined']:,}", flush=True
        )
        ok &= ratio >= 0.5 and ours["peak_rss_mb"] <= 1536 and ours["accepted"] == args.n
    print("PASS" if ok else "BELOW TARGET")


if __name__ == "__main__":
    main()
