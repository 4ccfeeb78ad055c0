"""Decision-service benchmark: a real load generator on loopback, bounded runs.

Run with ``make bench-serve`` (or ``python benchmarks/bench_serve.py``). In the
same run it starts, each in its own process:

* ``distillguard serve`` on a fixture store (one campaign with card, IP and
  template indicators; benign accounts; running state warmed from the store),
  called with a ``gateway`` bearer token as gateways call it;
* the same service with ``--insecure-no-auth`` on a copy of the store (what
  the token check costs);
* a bare FastAPI endpoint (same uvicorn settings, a small pydantic body in,
  a small JSON object out): the floor any FastAPI service pays.

Then it measures:

1. ``/v1/decide`` latency at a fixed offered rate (open loop: each request is
   due at its scheduled time, latency counts from then, so queueing is not
   hidden), default 1,000 requests/s for 10 s, over 8 keep-alive connections,
   for the bare endpoint, the service with and without token checking, in interleaved rounds (median
   reported, each round's p99 kept). Bodies rotate over known
   campaign members, known benign accounts and new accounts (whose IP and
   prompt template are matched against the campaign map on each request).
2. ``wrk`` (Debian) at saturation, 2 connections, 5 s, for both endpoints.
3. Event intake: batches of 1,000 canonical events on 4 connections for 8 s,
   durably journaled (fsync) before each 2xx.
4. OTLP intake (``/v1/traces``): batches of 500 GenAI chat spans (new semconv,
   prompt on the span, caller in ``enduser.id``) as protobuf (what SDKs and
   Collectors send), protobuf+gzip and OTLP/JSON of the same spans, against
   ``/v1/events`` with the same number of canonical events per batch, in
   interleaved slices, the order balanced over rounds; spans/s accepted (``--only-otlp`` runs just
   this part and the next).
5. Scale-out (``--processes N``, default 2; 1 skips it): a real ``redis-server``, then 1 and N
   ``serve --redis`` processes (the N on one store, each with its own journal), the OTLP protobuf and
   ``/v1/events`` batches round-robin over them in interleaved slices; spans/s and events/s for both,
   their ratio, CPU per item and busy cores, and accepted = rows in the store once they stopped.

Everything shares the machine's cores (2 here); ``--pin`` puts the servers on
CPU 0 and the load generators on CPU 1 with ``taskset`` (worse on a machine
other jobs share: a busy CPU 0 then cannot be escaped). ``--rate``, ``--seconds`` change the fixed-rate run.
Results are printed and written to ``bench-data/bench_serve.json``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-data"

BARE_APP = '''
from typing import Optional
from fastapi import FastAPI
from pydantic import BaseModel
import uvicorn, sys

class Body(BaseModel):
    account_id: Optional[str] = None
    prompt: Optional[str] = None
    client_ip: Optional[str] = None
    model: Optional[str] = None

app = FastAPI()

@app.post("/bare")
async def bare(b: Body) -> dict:
    return {"action": "allow", "risk": 0.0, "account_id": b.account_id}

@app.get("/healthz")
async def health() -> dict:
    return {"status": "ok"}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
'''


PIN = False


def _pin(cpu: int) -> list[str]:
    ok = PIN and shutil.which("taskset") and (os.cpu_count() or 1) >= 2
    return ["taskset", "-c", str(cpu)] if ok else []


def _wait(url: str, proc, timeout=90):
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def _bodies(n=1000) -> list[bytes]:
    from distillguard.serve.testing import TEMPLATE

    out = []
    for i in range(n):
        k = i % 10
        if k < 3:
            b = {"account_id": f"camp-{i % 6}", "model": "orion-2", "prompt": "next question please, in detail"}
        elif k < 7:
            b = {"account_id": f"user-{i % 6}", "model": "orion-2", "client_ip": f"198.51.100.{i % 6 + 1}",
                 "prompt": "can you help me plan a weekend trip with my family?"}
        elif k < 9:
            b = {"account_id": f"new-{i}", "model": "orion-2", "client_ip": f"192.0.2.{i % 250}",
                 "prompt": TEMPLATE.format(i=i, a=i % 13, b=i % 7)}
        else:
            b = {"account_id": f"new-{i}", "model": "orion-2", "client_ip": "203.0.113.7", "prompt": "hello"}
        out.append(json.dumps(b).encode())
    return out


TOKEN = ""  # a gateway token of the measured service (set in main)


def _request(path: str, body: bytes, ctype: str = "application/json", encoding: str | None = None) -> bytes:
    enc = f"content-encoding: {encoding}\r\n" if encoding else ""
    auth = f"authorization: Bearer {TOKEN}\r\n" if TOKEN else ""
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {ctype}\r\n{enc}{auth}"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def _read_response(reader, want_body: bool = False):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return (status, body) if want_body else status


async def fixed_rate(port: int, path: str, bodies: list[bytes], rate: float, seconds: float, conns: int = 8) -> dict:
    """Open-loop load: request i is due at t0 + i/rate; latency from due time to the full response."""
    total = int(rate * seconds)
    reqs = [_request(path, bodies[i % len(bodies)]) for i in range(total)]
    lat: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    t0 = time.perf_counter() + 0.2

    async def producer():
        for i in range(total):
            due = t0 + i / rate
            d = due - time.perf_counter()
            if d > 0:
                await asyncio.sleep(d)
            queue.put_nowait((due, reqs[i]))
        for _ in range(conns):
            queue.put_nowait(None)

    async def worker():
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            item = await queue.get()
            if item is None:
                break
            due, req = item
            writer.write(req)
            status = await _read_response(reader)
            lat.append(time.perf_counter() - due)
            errors += status != 200
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(producer(), *[worker() for _ in range(conns)])
    wall = time.perf_counter() - start
    lat.sort()

    def q(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3)

    return {"offered_rps": rate, "achieved_rps": round(len(lat) / wall, 1), "requests": len(lat), "errors": errors,
            "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": round(lat[-1] * 1000, 3)}


def _canonical_bodies(n_batches: int, batch: int, with_ids: bool, tag: str) -> list[bytes]:
    import random

    rnd = random.Random(7)
    bodies = []
    for b in range(n_batches):
        evs = [{"account_id": f"load-{rnd.randrange(5000)}", "ts": 1772582400 + b * batch + i, "model": "orion-2",
                "prompt": f"question {rnd.randrange(10**6)} about topic {rnd.randrange(100)}", "input_tokens": 40,
                "output_tokens": rnd.randrange(50, 2000), "client_ip": f"10.{b}.{i % 200}.{i % 7}",
                **({"request_id": f"bench-{tag}-{b}-{i}"} if with_ids else {})} for i in range(batch)]
        bodies.append(_request("/v1/events", json.dumps({"events": evs}).encode()))
    return bodies


def _otlp_batches(n_batches: int, batch: int, tag: str) -> list:
    """ExportTraceServiceRequests of GenAI chat spans (new semconv, content on the span, caller in enduser.id)."""
    import random

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(k, v):
        val = AnyValue(int_value=v) if isinstance(v, int) else AnyValue(double_value=v) if isinstance(v, float) \
            else AnyValue(string_value=v)
        return KeyValue(key=k, value=val)

    rnd, ids = random.Random(11), random.Random(f"otlp-ids-{tag}")  # ids random as SDKs make them, per tag
    out = []
    for b in range(n_batches):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.append(kv("service.name", "bench-app"))
        ss = rs.scope_spans.add()
        for i in range(batch):
            s = ss.spans.add()
            s.trace_id, s.span_id = ids.randbytes(16), ids.randbytes(8)
            s.name = "chat orion-2"
            s.start_time_unix_nano = (1772582400 + b * batch + i) * 10**9
            msgs = json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"question {rnd.randrange(10**6)}"
                                                                                    f" about topic {rnd.randrange(100)}"}]}])
            s.attributes.extend([kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "orion-2"),
                                 kv("gen_ai.provider.name", "openai"), kv("enduser.id", f"load-{rnd.randrange(5000)}"),
                                 kv("gen_ai.request.max_tokens", 1024), kv("gen_ai.request.temperature", 0.7),
                                 kv("gen_ai.usage.input_tokens", 40), kv("gen_ai.usage.output_tokens", rnd.randrange(50, 2000)),
                                 kv("client.address", f"10.{b % 250}.{i % 200}.{i % 7}"), kv("gen_ai.input.messages", msgs)])
        out.append(req)
    return out


def _otlp_bodies(encoding: str, n_batches: int, batch: int, tag: str) -> list[bytes]:
    """The same spans as protobuf (as SDKs and Collectors send), protobuf+gzip, or OTLP/JSON."""
    import base64
    import gzip as gz

    from google.protobuf.json_format import MessageToDict

    bodies = []
    for r in _otlp_batches(n_batches, batch, tag):
        if encoding == "json":
            doc = MessageToDict(r)
            for sp in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # OTLP/JSON ids are hex
                sp["traceId"], sp["spanId"] = (base64.b64decode(sp[k]).hex() for k in ("traceId", "spanId"))
            bodies.append(_request("/v1/traces", json.dumps(doc).encode()))
        else:
            raw = r.SerializeToString()
            zipped = encoding == "protobuf+gzip"
            bodies.append(_request("/v1/traces", gz.compress(raw, 1) if zipped else raw, "application/x-protobuf",
                                   "gzip" if zipped else None))
    return bodies


def _accepted(kind: str, batch: int, body: bytes) -> int:
    """How many items of a batch the service accepted, from its answer."""
    if kind == "events":
        return json.loads(body)["accepted"]
    if kind == "json":
        return batch - json.loads(body)["partialSuccess"]["rejectedSpans"]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    return batch - ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans


async def _drive(port: int | list[int], bodies, kind: str, batch: int, seconds: float, conns: int = 4) -> tuple[int, float]:
    """Send distinct batches (an iterator shared by the connections) for ``seconds``: (items accepted, wall).

    With several ports, connection ``i`` goes to ``ports[i % len(ports)]``: batches go round-robin to the
    processes as each answers."""
    got = 0
    stop = time.perf_counter() + seconds
    ports = port if isinstance(port, list) else [port]

    async def worker(port):
        nonlocal got
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for body in bodies:
            writer.write(body)
            status, answer = await _read_response(reader, want_body=True)
            if status == 200:
                got += _accepted(kind, batch, answer)
            if time.perf_counter() >= stop:
                break
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[worker(ports[i % len(ports)]) for i in range(conns)])
    return got, time.perf_counter() - t0


async def intake(port: int, seconds: float, batch: int = 1000, conns: int = 4, n_batches: int = 400,
                 with_ids: bool = True, tag: str = "a") -> dict:
    """Distinct events only (no batch is sent twice); counts what the service says it accepted."""
    sent, wall = await _drive(port, iter(_canonical_bodies(n_batches, batch, with_ids, tag)), "events", batch,
                              seconds, conns)
    return {"events": sent, "seconds": round(wall, 2), "events_per_s": round(sent / wall), "batch": batch,
            "connections": conns, "fsync": True, "event_ids": "given" if with_ids else "computed"}


OTLP_MODES = ("events", "protobuf", "protobuf+gzip", "json")


def balanced_orders(modes: tuple, rounds: int) -> list[tuple]:
    """Each round's mode order, a Williams square (``len(modes)`` even): every mode is first once and
    follows every other mode once in each ``len(modes)`` rounds. A slice pays for the journal drain of
    the slice before it (the flusher runs each second, so a slice's last second drains in the next); in a
    fixed order each mode always had the same predecessor, and the one after ``/v1/events`` came out
    10-20% ahead (docs/serve.md, "Slice order")."""
    n = len(modes)
    first = [0] + [(k + 1) // 2 if k % 2 else n - k // 2 for k in range(1, n)]  # 0, 1, n-1, 2, n-2, ...
    return [tuple(modes[(i + r) % n] for i in first) for r in range(rounds)]


async def otlp_intake(port: int, seconds: float, rounds: int = 8, batch: int = 500) -> dict:
    """/v1/traces in each encoding and /v1/events (the baseline) in interleaved slices (``seconds`` per
    mode in all), so that a machine whose load drifts during the run weighs on all of them alike; in
    balanced orders, back to back: every slice pays for the drain of the one before, as in steady
    intake, and no mode always for the same one. Enough distinct batches that no mode runs out before
    its last slice up to ~32,000 items/s."""
    n = max(80, int(32_000 * seconds / batch))
    bodies = {m: iter(_canonical_bodies(n, batch, True, "o") if m == "events" else _otlp_bodies(m, n, batch, m[0] + m[-1]))
              for m in OTLP_MODES}
    tot = {m: [0, 0.0] for m in OTLP_MODES}
    for order in balanced_orders(OTLP_MODES, rounds):
        for m in order:
            got, wall = await _drive(port, bodies[m], "events" if m == "events" else m, batch, seconds / rounds)
            tot[m][0] += got
            tot[m][1] += wall
    return {m: {"items": got, "seconds": round(wall, 2), "per_s": round(got / wall), "batch": batch, "connections": 4,
                "fsync": True} for m, (got, wall) in tot.items()}


def _serve(db: Path, port: int, *flags: str) -> subprocess.Popen:
    """``distillguard serve`` on ``db`` in its own process (on CPU 0 with ``--pin``)."""
    return subprocess.Popen([*_pin(0), sys.executable, "-m", "distillguard.cli", "serve", "--db", str(db), "--port", str(port),
                             "--refresh-seconds", "3600", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


SCALE_MODES = ("protobuf", "events")


def _stored_events(db: Path) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]


def _journaled_events(db: Path) -> int:
    """Events still in journal files next to ``db`` (a flush that found the store busy at stop leaves them
    for the next start to replay)."""
    n = 0
    for f in db.parent.glob(db.name + ".*journal*"):
        n += sum(1 for line in f.open("rb") if line.startswith(b'{"e"'))
    return n


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of a process so far; with no pid, of the whole machine (all CPUs busy)."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is None:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(f) - f[3] - f[4]) / tick  # all but idle and iowait
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick


def scale_out(fixture: Path, processes: int, seconds: float, rounds: int = 4, batch: int = 500) -> dict:
    """1 and ``processes`` service processes sharing state through one real Redis, each on its own copy of the
    fixture store (the ``processes`` of a group share theirs, each with its own journal), driven in interleaved
    slices (``seconds`` per group and mode in all, 4 connections per process, batches round-robin over the
    processes); then every process is stopped and what it accepted is counted in the store."""
    from distillguard.serve.testing import free_port, redis_server

    tmp = fixture.parent
    groups = {"1": 1, str(processes): processes}
    with redis_server(tmp) as url:
        procs, ports, dbs = {}, {}, {}
        try:
            for g, (name, n) in enumerate(groups.items()):
                dbs[name] = tmp / f"scale-{name}.duckdb"
                shutil.copy(fixture, dbs[name])
                ports[name] = [free_port() for _ in range(n)]
                redis_db = url.rsplit("/", 1)[0] + f"/{g + 1}"  # one Redis database per group
                procs[name] = []
                for i, port in enumerate(ports[name]):  # one after the other: each opens the store to start
                    procs[name].append(_serve(dbs[name], port, "--redis", redis_db, "--journal",
                                              f"{dbs[name]}.{i}.journal.jsonl"))
                    _wait(f"http://127.0.0.1:{port}", procs[name][-1])
            before = {name: _stored_events(db) for name, db in dbs.items()}
            n = max(80, int(32_000 * seconds / batch))
            bodies = {(name, m): iter(_canonical_bodies(n, batch, True, f"s{name}") if m == "events"
                                      else _otlp_bodies(m, n, batch, f"s{name}"))
                      for name in groups for m in SCALE_MODES}
            tot = {k: [0, 0.0] for k in bodies}
            loads = []
            import redis

            redis_pid = redis.Redis.from_url(url).info("server")["process_id"]
            # where the cores went during each group's slices: its service processes, Redis, this load
            # generator, the whole machine (other jobs included)
            cpu = {k: dict.fromkeys(("services", "redis", "load_generator", "machine"), 0.0) for k in bodies}

            def cpu_now(name):
                return {"services": sum(_cpu_s(p.pid) for p in procs[name]), "redis": _cpu_s(redis_pid),
                        "load_generator": time.process_time(), "machine": _cpu_s()}

            async def slices():
                for _ in range(rounds):
                    for name in groups:
                        for m in SCALE_MODES:
                            c0 = cpu_now(name)
                            got, wall = await _drive(ports[name], bodies[name, m], m, batch, seconds / rounds,
                                                     conns=4 * len(ports[name]))
                            for k, v in cpu_now(name).items():
                                cpu[name, m][k] += v - c0[k]
                            tot[name, m][0] += got
                            tot[name, m][1] += wall
                            loads.append(os.getloadavg()[0])

            asyncio.run(slices())
            time.sleep(2)  # the flushers' next round
        finally:
            for ps in procs.values():
                _stop(ps)
    out = {"processes": processes, "batch": batch, "connections_per_process": 4, "redis": True,
           "load_average": [round(min(loads), 1), round(max(loads), 1)]}
    for name in groups:
        accepted = sum(tot[name, m][0] for m in SCALE_MODES)
        stored = _stored_events(dbs[name]) - before[name]
        journaled = _journaled_events(dbs[name])
        out[name] = {m: {"items": tot[name, m][0], "seconds": round(tot[name, m][1], 2),
                         "per_s": round(tot[name, m][0] / tot[name, m][1]),
                         "cores": {k: round(v / tot[name, m][1], 2) for k, v in cpu[name, m].items()},
                         "service_cpu_us_per_item": round(cpu[name, m]["services"] / tot[name, m][0] * 1e6, 1),
                         "redis_cpu_us_per_item": round(cpu[name, m]["redis"] / tot[name, m][0] * 1e6, 1)}
                     for m in SCALE_MODES}
        out[name]["check"] = {"accepted": accepted, "stored": stored, "left_in_journals": journaled,
                              "lost": accepted - stored - journaled}
    return out


def run_wrk(url: str, body: bytes, seconds: int = 5, conns: int = 2) -> dict | None:
    if not shutil.which("wrk"):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                 f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
                 f"wrk.body = {json.dumps(body.decode())}\n")
        script = fh.name
    p = subprocess.run([*_pin(1), "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url],
                       capture_output=True, text=True, timeout=seconds + 30)
    os.unlink(script)
    out = {"raw": p.stdout.strip().splitlines()}
    for line in out["raw"]:
        parts = line.split()
        if line.strip().startswith("99%"):
            out["p99"] = parts[1]
        if line.strip().startswith("50%"):
            out["p50"] = parts[1]
        if line.startswith("Requests/sec"):
            out["rps"] = float(parts[1])
    out.pop("raw")
    return out


class _Done(Exception):
    pass


def gate_cost(n: int = 50_000) -> dict:
    """CPU time per request of the token check (AuthGate in front of an app that does nothing), in process.

    Process CPU time, not wall time: the figure holds on a machine other jobs share, where the fixed-rate
    latencies above move with the neighbours' load.
    """
    from distillguard.auth import AccessRules, AuthGate, Principal, Sessions, TokenBook, token_sha256

    async def inner(scope, receive, send):
        return None

    tok = "dg_" + "x" * 43
    book = TokenBook(None, extra={token_sha256(tok): Principal("bench", "gateway", "token")})
    book.loaded_at = float("inf")  # no reload inside the timed loop
    gate = AuthGate(inner, book, Sessions(), AccessRules.load())
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"authorization", f"Bearer {tok}".encode())]

    async def loop(app):
        t0 = time.process_time()
        for _ in range(n):
            await app({"type": "http", "method": "POST", "path": "/v1/decide", "headers": headers}, None, None)
        return (time.process_time() - t0) / n * 1e6

    bare, gated = asyncio.run(loop(inner)), asyncio.run(loop(gate))
    return {"requests": n, "cpu_us_per_request_without": round(bare, 2), "cpu_us_per_request_with": round(gated, 2),
            "token_check_cpu_us": round(gated - bare, 2)}


def _print_scale_out(r: dict) -> None:
    n = str(r["processes"])
    print(f"scale-out through Redis, 4 interleaved slices per group and mode, batches of {r['batch']}, "
          f"{r['connections_per_process']} connections per process, fsync before 2xx, load average "
          f"{r['load_average'][0]}-{r['load_average'][1]} on {os.cpu_count()} CPUs:")
    for m in SCALE_MODES:
        what = "/v1/traces protobuf" if m == "protobuf" else "/v1/events"
        one, many = r["1"][m]["per_s"], r[n][m]["per_s"]
        print(f"  {what:>20}: 1 process {one:,} /s, {n} processes {many:,} /s ({many / one:.2f}x)")
        for g in ("1", n):
            x = r[g][m]
            c = x["cores"]
            print(f"  {'':>20}  {g} process(es): CPU per item: services {x['service_cpu_us_per_item']} us, redis "
                  f"{x['redis_cpu_us_per_item']} us; cores busy: services {c['services']}, redis {c['redis']}, "
                  f"load generator {c['load_generator']}, whole machine {c['machine']} of {os.cpu_count()}")
    for g in ("1", n):
        c = r[g]["check"]
        verdict = "no loss" if c["lost"] == 0 else f"{c['lost']:,} LOST"
        print(f"  {g} process(es): accepted {c['accepted']:,}, in the store {c['stored']:,}, left in journals "
              f"{c['left_in_journals']:,}: {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--intake-seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved fixed-rate rounds per target (median reported)")
    ap.add_argument("--pin", action="store_true", help="servers on CPU 0, load generators on CPU 1 (taskset)")
    ap.add_argument("--only-otlp", action="store_true", help="only the OTLP intake figures (and the scale-out)")
    ap.add_argument("--processes", type=int, default=2,
                    help="scale-out: this many service processes sharing state through Redis against 1 (1: skip)")
    args = ap.parse_args()
    global PIN
    PIN = args.pin
    sys.path.insert(0, str(ROOT / "src"))
    from distillguard.serve.testing import fixture_store, free_port, make_token

    global TOKEN
    OUT.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    fixture = fixture_store(tmp / "fixture.duckdb")
    token = make_token(fixture, "gateway", "bench")
    db, open_db = tmp / "dg.duckdb", tmp / "open.duckdb"
    shutil.copy(fixture, db)
    shutil.copy(fixture, open_db)
    sport, oport, bport = free_port(), free_port(), free_port()
    serve = _serve(db, sport)
    unauth = _serve(open_db, oport, "--insecure-no-auth")
    bare = subprocess.Popen([*_pin(0), sys.executable, "-c", BARE_APP, str(bport)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results: dict = {"cpu_pinning": bool(_pin(0)), "rate": args.rate, "seconds": args.seconds}
    try:
        _wait(f"http://127.0.0.1:{sport}", serve)
        _wait(f"http://127.0.0.1:{oport}", unauth)
        _wait(f"http://127.0.0.1:{bport}", bare)
        bodies = _bodies()
        if _pin(1):
            os.sched_setaffinity(0, {1})
        TOKEN = token  # the same request bytes everywhere (the bare endpoint and the open service ignore it)
        results["otlp"] = asyncio.run(otlp_intake(sport, args.intake_seconds))
        if args.only_otlp:
            raise _Done
        # warm all three (imports, first-request paths), then measure them in turn
        for port, path in ((bport, "/bare"), (oport, "/v1/decide"), (sport, "/v1/decide")):
            asyncio.run(fixed_rate(port, path, bodies, 500, 1))
        # interleaved rounds, median per target: on a shared machine a neighbour's burst hits one run, not all
        runs: dict[str, list] = {"bare_fixed_rate": [], "decide_fixed_rate": [], "decide_no_auth_fixed_rate": []}
        for _ in range(args.rounds):
            for key, port, path in (("bare_fixed_rate", bport, "/bare"), ("decide_fixed_rate", sport, "/v1/decide"),
                                    ("decide_no_auth_fixed_rate", oport, "/v1/decide")):
                runs[key].append(asyncio.run(fixed_rate(port, path, bodies, args.rate, args.seconds)))
        for key, rs in runs.items():
            results[key] = {k: statistics.median(r[k] for r in rs) for k in rs[0]} | {"rounds": [r["p99_ms"] for r in rs]}
        results["bare_wrk"] = run_wrk(f"http://127.0.0.1:{bport}/bare", bodies[3])
        results["decide_wrk_known_account"] = run_wrk(f"http://127.0.0.1:{sport}/v1/decide", bodies[3])
        results["decide_wrk_new_account_template"] = run_wrk(f"http://127.0.0.1:{sport}/v1/decide", bodies[7])
        results["token_check"] = gate_cost()
        results["intake"] = asyncio.run(intake(sport, args.intake_seconds))
        results["intake_no_ids"] = asyncio.run(intake(sport, args.intake_seconds, n_batches=200, with_ids=False, tag="b"))
    except _Done:
        pass
    finally:
        _stop((serve, unauth, bare))
    try:
        if args.processes > 1:  # after the single-process service stopped: its idle threads stay out of the figures
            results["scale_out"] = scale_out(fixture, args.processes, args.intake_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (OUT / "bench_serve.json").write_text(json.dumps(results, indent=2))
    o = results["otlp"]
    print(f"intake, 8 interleaved slices per mode in balanced orders (~{o['events']['seconds']} s in all for each), batches of "
          f"{o['events']['batch']}, 4 connections, fsync before 2xx:")
    for m in OTLP_MODES:
        what = "/v1/events canonical JSON" if m == "events" else f"/v1/traces {m}"
        print(f"  {what:>28}: {o[m]['per_s']:,} /s ({o[m]['items']:,} accepted)"
              + ("" if m == "events" else f", {o[m]['per_s'] / o['events']['per_s']:.2f} x /v1/events"))
    if "scale_out" in results:
        _print_scale_out(results["scale_out"])
    if args.only_otlp:
        return
    b, o, d = results["bare_fixed_rate"], results["decide_no_auth_fixed_rate"], results["decide_fixed_rate"]
    print(f"fixed rate {args.rate:.0f} req/s for {args.seconds:.0f} s (open loop, 8 connections), median of {args.rounds} "
          "interleaved rounds:")
    print(f"  bare FastAPI               p50 {b['p50_ms']} ms  p99 {b['p99_ms']} ms  max {b['max_ms']} ms  achieved {b['achieved_rps']} req/s")
    for label, r in (("/v1/decide, no auth", o), ("/v1/decide, token check", d)):
        print(f"  {label:<26} p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  max {r['max_ms']} ms  achieved {r['achieved_rps']} req/s"
              f"  errors {r['errors']}  (p99 {r['p99_ms'] / b['p99_ms']:.2f}x bare)")
    g = results["token_check"]
    print(f"token check (AuthGate, in process, {g['requests']:,} requests): {g['token_check_cpu_us']} us CPU per request")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (latencies move with it)")
    for k in ("bare_wrk", "decide_wrk_known_account", "decide_wrk_new_account_template"):
        if results.get(k):
            w = results[k]
            print(f"wrk 2 connections, {k}: {w.get('rps')} req/s, p50 {w.get('p50')}, p99 {w.get('p99')}")
    for key in ("intake", "intake_no_ids"):
        i = results[key]
        print(f"event intake ({i['event_ids']} event ids): {i['events_per_s']:,} events/s ({i['events']:,} events in "
              f"{i['seconds']} s, batches of {i['batch']}, {i['connections']} connections, fsync before 2xx)")
    print(f"written: {OUT / 'bench_serve.json'}")


if __name__ == "__main__":
    main()
