"""State survives a crash (kill -9) and a restart; several processes share state through a real Redis."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import duckdb
import httpx
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import RoleAuth, fixture_store, free_port, serving


def _start(db, port, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "serve", "--db", str(db), "--port", str(port),
                             *map(str, extra)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode())
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("serve did not start")


def test_accepted_events_survive_kill_9_and_restart(tmp_path):
    db = fixture_store(tmp_path / "dg.duckdb")
    port = free_port()
    auth = RoleAuth(db)
    auth.token("gateway"), auth.token("analyst")  # made before the service holds the store
    proc, url = _start(db, port, "--flush-seconds", "3600")  # nothing reaches DuckDB before the crash
    evs = [{"account_id": "durable-1", "ts": f"2026-03-03T00:{m:02d}:00Z", "output_tokens": 100} for m in range(25)]
    assert httpx.post(url + "/v1/events", json={"events": evs}, auth=auth).json()["accepted"] == 25
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.getsize(str(db) + ".journal.jsonl") > 0
    proc, url = _start(db, port)
    try:
        assert httpx.get(url + "/v1/accounts/durable-1", auth=auth).json()["n_events_live"] == 25
        con = duckdb.connect(str(db), read_only=True)  # the journal was replayed into the store at start
        assert con.execute("SELECT count(*) FROM events WHERE account_id = 'durable-1'").fetchall()[0][0] == 25
        con.close()
        # the same batch again is recognised as duplicates
        assert httpx.post(url + "/v1/events", json={"events": evs}, auth=auth).json()["duplicates"] == 25
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM events WHERE account_id = 'durable-1'").fetchall()[0][0] == 25
    con.close()


def test_serve_bad_usage_exits_2(tmp_path):
    p = subprocess.run([sys.executable, "-m", "distillguard.cli", "serve", "--db", str(tmp_path / "x.duckdb"),
                        "--policy", str(tmp_path / "missing.yaml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "missing.yaml" in p.stderr


@pytest.fixture()
def redis_url(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is missing: `make deps-system` installs it")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    r = redis.Redis(port=port)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_two_processes_share_state_through_redis(tmp_path, redis_url):
    from test_serve import enforce_policy

    db1 = fixture_store(tmp_path / "a.duckdb")
    db2 = tmp_path / "b.duckdb"
    shutil.copy(db1, db2)
    pol = enforce_policy(tmp_path)
    e1 = Engine(EngineConfig(db=str(db1), policy=pol, redis=redis_url, refresh_seconds=3600))
    e2 = Engine(EngineConfig(db=str(db2), policy=pol, redis=redis_url, refresh_seconds=3600))
    with serving(e1) as a, serving(e2) as b:
        auth = {a: RoleAuth(db1), b: RoleAuth(db2)}
        assert httpx.get(a + "/healthz", auth=auth[a]).json()["state"] == "redis"
        # the store was warmed into Redis once, not twice
        assert httpx.get(b + "/v1/accounts/camp-0", auth=auth[b]).json()["n_events_live"] == 5
        evs = [{"account_id": "shared-1", "ts": f"2026-03-03T01:{m:02d}:00Z", "input_tokens": 20,
                "output_tokens": 3000, "max_output_tokens": 8000} for m in range(30)]
        assert httpx.post(a + "/v1/events", json={"events": evs[:15]}, auth=auth[a]).json()["accepted"] == 15
        assert httpx.post(b + "/v1/events", json={"events": evs[15:]}, auth=auth[b]).json()["accepted"] == 15
        for u in (a, b):
            assert httpx.get(u + "/v1/accounts/shared-1", auth=auth[u]).json()["n_events_live"] == 30
        db_ = httpx.post(b + "/v1/decide", json={"account_id": "shared-1"}, auth=auth[b]).json()
        assert "HIGH_OUTPUT_RATIO" in {r["code"] for r in db_["reasons"]}
        # a first-request link and a passed challenge made at A hold at B
        d = httpx.post(a + "/v1/decide", json={"account_id": "shared-new", "client_ip": "203.0.113.7"}, auth=auth[a]).json()
        assert d["action"] == "challenge"
        assert httpx.post(b + "/v1/decide", json={"account_id": "shared-new"}, auth=auth[b]).json()["action"] == "challenge"
        assert httpx.post(b + f"/v1/challenges/{d['challenge']['challenge_id']}/result", json={"passed": True}, auth=auth[b]).status_code == 200
        assert httpx.post(a + "/v1/decide", json={"account_id": "shared-new"}, auth=auth[a]).json()["action"] == "allow"
