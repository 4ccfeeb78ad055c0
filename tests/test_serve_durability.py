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
from distillguard.serve.testing import RoleAuth, fixture_store, free_port, redis_server, serving


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
    try:
        with redis_server(tmp_path) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


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


def _events(acc: str, n: int, t0: int = 1772582400) -> list[dict]:
    return [{"account_id": acc, "ts": (t0 + i) * 1_000_000, "model": "orion-2", "output_tokens": 100 + i} for i in range(n)]


def test_redis_state_keeps_an_update_written_between_read_and_write(redis_url):
    """Process A reads an account, process B writes it, then A writes: A's compare-and-set must lose that key,
    read it again and fold onto B's update (a plain SET would drop B's events)."""
    from distillguard.serve.state import RedisState

    a, b = RedisState(redis_url), RedisState(redis_url)
    a.apply(_events("shared", 3) + _events("alone", 2))
    real_mget, calls = a.r.mget, []

    def mget_then_b_writes(keys):
        got = real_mget(keys)
        calls.append(len(keys))
        if len(calls) == 1:
            b.apply(_events("shared", 4, t0=1772590000))
        return got

    a.r.mget = mget_then_b_writes
    a.apply(_events("shared", 5, t0=1772600000) + _events("alone", 1, t0=1772600000))
    assert calls == [2, 1]  # the second read is of the one key B changed, not of both
    assert a.account("shared").n == 3 + 4 + 5 and b.account("shared").n == 12
    assert a.account("alone").n == 3


def test_redis_state_concurrent_writers_lose_no_event(redis_url):
    """Four writers (two connections each to the same Redis) fold overlapping batches at once."""
    import threading

    from distillguard.serve.state import RedisState

    accounts = [f"acc-{i}" for i in range(5)]

    def writer(k: int):
        st = RedisState(redis_url)
        for b in range(40):
            st.apply([ev for j, acc in enumerate(accounts) for ev in _events(acc, 1 + (b + j + k) % 3, 1772582400 + 10 * b)])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = RedisState(redis_url)
    for j, acc in enumerate(accounts):
        assert st.account(acc).n == sum(1 + (b + j + k) % 3 for b in range(40) for k in range(4))


def test_a_journal_has_one_writer(tmp_path):
    """A second service on the same journal would rotate the file under the first: it is refused in one line."""
    from distillguard.errors import UsageError
    from distillguard.serve.journal import Journal

    first = Journal(None, str(tmp_path / "j.jsonl"))
    with pytest.raises(UsageError, match="own --journal"):
        Journal(None, str(tmp_path / "j.jsonl"))
    Journal(None, str(tmp_path / "other.jsonl")).close()  # another journal is fine
    first.close()
    Journal(None, str(tmp_path / "j.jsonl")).close()  # and the path is free again once the first closed


def test_events_drained_from_memory_are_stored_as_read_back_from_the_journal(tmp_path, monkeypatch):
    """The flusher stores this process's journaled events from memory; the rows equal those the file gives."""
    from distillguard.serve import journal

    evs = [{"account_id": f"mem-{i % 3}", "ts": f"2026-03-03T00:{i:02d}:00.123456Z", "output_tokens": 10 * i,
            "temperature": 0.7, "prompt": f"mail me at user{i}@example.com", "logprobs": i % 2 == 0,
            "custom_field": {"nested": i}} for i in range(40)]

    def stored(name: str, held: int) -> list:
        monkeypatch.setattr(journal, "HELD_EVENTS", held)
        db = fixture_store(tmp_path / f"{name}.duckdb")
        engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, flush_seconds=3600)).start()
        try:
            assert engine.ingest(evs)["accepted"] == 40
            assert bool(engine.journal._held or engine.journal._live) == (held > 0)
            assert engine.journal.flush() == 40
        finally:
            engine.stop()
        con = duckdb.connect(str(db), read_only=True)
        rows = con.execute("SELECT * FROM events WHERE account_id LIKE 'mem-%' ORDER BY event_id").fetchall()
        con.close()
        return rows

    from_memory, from_file = stored("memory", journal.HELD_EVENTS), stored("file", 0)
    assert len(from_memory) == 40 and from_memory == from_file
    assert all("<EMAIL>" in str(r) for r in from_memory)  # redacted once, either way


def test_held_journal_lines_give_the_table_the_events_give(tmp_path):
    """Arrow's JSON reader on the journal's lines (the flusher's path, GIL released) gives the table that
    ``from_pylist`` gives on the same events: every column, odd values included, a line longer than a block."""
    from datetime import datetime, timedelta, timezone

    import orjson

    from distillguard.ingest.normalize import normalize
    from distillguard.serve.journal import Journal, events_to_table, lines_to_table

    evs = [normalize({"account_id": f"odd-{i}", "ts": f"2026-03-03T00:00:{i:02d}.{(999999 - i * 7919) % 10**6:06d}Z",
                      "prompt": ["ünïcødé 🚀 \"quoted\" \\ \n\t", "x" * (3 << 20), "", None][i % 4],
                      "output_tokens": [0, 2**62, None][i % 3], "temperature": [0, 0.1 + 0.2, 1e-300, None][i % 4],
                      "logprobs": [True, False, None][i % 3], "top_p": 1, "status": ["ok", "error"][i % 2],
                      "request_id": f"r-{i}", "custom": {"k": i}}) for i in range(12)]
    j = Journal(None, str(tmp_path / "j.jsonl"), fsync=False)
    j.append(evs[:5])
    j.append(evs[5:])
    lines, longest = b"".join(b for b, _, _ in j._live), max(m for _, _, m in j._live)
    assert longest > 3 << 20
    assert lines == (tmp_path / "j.jsonl").read_bytes()  # held lines are the file's
    got, want = lines_to_table(lines, longest), events_to_table(evs)
    assert got.schema == want.schema and got.to_pylist() == want.to_pylist()
    assert events_to_table(Journal.read(str(tmp_path / "j.jsonl"))[0]).to_pylist() == want.to_pylist()
    j.close()
    # a journal an earlier version left (every time as epoch microseconds) is read back the same
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"".join(orjson.dumps({"e": {**e, "ts": (e["ts"] - datetime(1970, 1, 1, tzinfo=timezone.utc))
                                                 // timedelta(microseconds=1)}}) + b"\n" for e in evs))
    assert events_to_table(Journal.read(str(old))[0]).to_pylist() == want.to_pylist()


@pytest.mark.parametrize("held", [True, False])
def test_events_of_an_account_forgotten_before_the_drain_are_not_stored(tmp_path, monkeypatch, held):
    """An account erased while its events wait in the journal: those up to the erasure are dropped, later ones kept
    (from memory and from the file alike)."""
    from datetime import datetime, timedelta, timezone

    from distillguard.erasure import forget
    from distillguard.ingest.normalize import normalize
    from distillguard.serve import journal
    from distillguard.store import EventStore

    monkeypatch.setattr(journal, "HELD_EVENTS", journal.HELD_EVENTS if held else 0)
    db = fixture_store(tmp_path / "dg.duckdb")
    later = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    evs = [normalize({"account_id": acc, "ts": ts, "request_id": f"{acc}-{k}"})
           for k, (acc, ts) in enumerate([("gone-1", "2026-03-03T00:00:00Z"), ("kept-1", "2026-03-03T00:00:00Z"),
                                          ("gone-1", "2026-03-04T00:00:00Z"), ("gone-1", later)])]
    j = journal.Journal(str(db), str(tmp_path / "j.jsonl"))
    j.append(evs)
    assert bool(j._live) == held
    with EventStore(str(db)) as store:
        forget(store, "gone-1", "test")
    assert j.flush() == 2
    j.close()
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT account_id, event_id FROM events WHERE account_id IN ('gone-1', 'kept-1') "
                       "ORDER BY account_id").fetchall()
    con.close()
    assert [a for a, _ in rows] == ["gone-1", "kept-1"]
