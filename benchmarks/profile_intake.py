"""CPU per item of OTLP protobuf intake and of ``/v1/events``, in one process, stage by stage.

No HTTP: the service's engine (its GC settings, journal fsynced) fed the
bench's batches (``bench_serve``: 500 GenAI chat spans per export, the same
number of canonical events per ``/v1/events`` batch). Prints CPU µs per item
(``time.process_time``: neighbours on a shared machine move it less than wall
time) for each stage of the OTLP path, for both paths whole, and for the
journal drain of each (the OTLP drain as CPU of the flushing thread alone: the
most it can hold the GIL, since the JSON parse and the insert run in Arrow's
and DuckDB's threads). For a sampled profile of the same run::

    py-spy record -r 500 -f raw -o intake.txt -- python benchmarks/profile_intake.py

(``py-spy`` is in the ``dev`` extra.)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=40, help="batches of 500 per path")
    args = ap.parse_args()
    import bench_serve as bs
    from distillguard.ingest.normalize import normalize_fields
    from distillguard.ingest.otlp import decode
    from distillguard.serve.engine import Engine, EngineConfig
    from distillguard.serve.models import EventsBatch
    from distillguard.serve.otlp import JoinBuffer
    from distillguard.serve.testing import fixture_store

    db = fixture_store(Path(tempfile.mkdtemp(prefix="profile-intake-")) / "dg.duckdb")
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, flush_seconds=3600)).start()
    n = args.batches * 500
    spans = [r.SerializeToString() for r in bs._otlp_batches(args.batches, 500, "p")]
    events = [b.split(b"\r\n\r\n", 1)[1] for b in bs._canonical_bodies(args.batches, 500, True, "p")]

    def per_item(fn) -> float:
        t0 = time.process_time()
        fn()
        return (time.process_time() - t0) / n * 1e6

    stages: dict[str, float] = {}
    for raw in spans:  # each stage alone, on a fresh buffer (nothing stored)
        for name, fn in (("decode", lambda: decode(raw, "application/x-protobuf", "traces")),
                         ("join and map", lambda: JoinBuffer().add(got)),
                         ("checks (normalize_fields)", lambda: [normalize_fields(c.record, c.extra) for c in got]),
                         ("privacy.records", lambda: engine.privacy.records(got))):
            t0 = time.process_time()
            got = fn()
            stages[name] = stages.get(name, 0.0) + (time.process_time() - t0) / n * 1e6
    buf = JoinBuffer()
    whole = {
        "/v1/events": per_item(lambda: [engine.ingest(EventsBatch.model_validate_json(b).events) for b in events]),
        "/v1/events drain": per_item(engine.journal.flush),
        "OTLP protobuf": per_item(lambda: [engine.ingest_pairs([(c.record, c.extra) for c in buf.add(
            decode(raw, "application/x-protobuf", "traces"))]) for raw in spans]),
    }
    t0, own0 = time.process_time(), time.thread_time()
    engine.journal.flush()
    whole["OTLP drain"] = (time.process_time() - t0) / n * 1e6
    # the flushing thread's own CPU: the most it holds the GIL for (Arrow's and DuckDB's threads run without it)
    whole["OTLP drain, flushing thread"] = (time.thread_time() - own0) / n * 1e6
    engine.stop()
    print(f"CPU µs per item, {n:,} items per path, one process:")
    for k, v in stages.items():
        print(f"  OTLP stage {k:<28} {v:6.2f}")
    for k, v in whole.items():
        print(f"  {k:<39} {v:6.2f}")
    print(f"  OTLP / /v1/events (intake):             {whole['OTLP protobuf'] / whole['/v1/events']:.2f}x")
    print(json.dumps({"stages": stages, "whole": whole}))


if __name__ == "__main__":
    main()
