"""``distillguard ingest`` / ``stats`` through the real entry point (exit codes, --json)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_main

DATA = Path(__file__).parent / "data" / "ingest"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "from distillguard.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_ingest_json_counts_and_stats(tmp_path):
    db = tmp_path / "s.duckdb"
    q = tmp_path / "q.jsonl"
    r = cli("ingest", DATA / "events.jsonl", DATA / "events_bad.jsonl", "--db", db, "--quarantine", q, "--json",
            "--accounts", DATA / "accounts.csv")
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout.strip())
    assert counts == {"read": 18, "accepted": 7, "quarantined": 11, "duplicates": 0}
    assert len(q.read_text().splitlines()) == 11 + 3  # events + account rows
    r = cli("ingest", DATA / "events.jsonl", "--db", db, "--json")
    assert json.loads(r.stdout) == {"read": 5, "accepted": 0, "quarantined": 0, "duplicates": 5}
    r = cli("stats", "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["events"] == 7 and s["accounts_metadata"] == 2 and s["first_ts"].startswith("2026-03-01T10:00:00")
    r = cli("stats", "--db", db)
    assert r.returncode == 0 and "events" in r.stdout


def test_human_summary(tmp_path, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "ingest", DATA / "events.csv", "--db", tmp_path / "s.duckdb",
                              "--format", "csv")
    assert code == 0, err
    assert "accepted 2" in out and "quarantined 3" in out


@pytest.mark.parametrize("kind", ["missing", "binary", "empty_gzip", "bad_ext", "wrong_format", "bad_format_name"])
def test_unreadable_input_exits_2(tmp_path, kind, monkeypatch, capsys):
    args = []
    if kind == "missing":
        f = tmp_path / "nope.jsonl"
    elif kind == "binary":
        f = tmp_path / "junk.jsonl"
        f.write_bytes(bytes(range(256)) * 10)
    elif kind == "empty_gzip":
        f = tmp_path / "e.jsonl.gz"
        f.write_bytes(b"")
    elif kind == "bad_ext":
        f = tmp_path / "events.xlsx"
        f.write_text("hello")
    elif kind == "wrong_format":
        f = DATA / "events.jsonl"
        args = ["--format", "parquet"]
    else:
        f = DATA / "events.jsonl"
        args = ["--format", "yaml"]
    code, out, err = run_main(monkeypatch, capsys, "ingest", f, "--db", tmp_path / "s.duckdb", *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distillguard: error:"), err
    assert "Traceback" not in err


def test_corrupt_gzip_and_stats_without_store(tmp_path, monkeypatch, capsys):
    f = tmp_path / "c.jsonl.gz"
    data = gzip.compress(b'{"ts": 1, "account_id": "a"}\n' * 1000)
    f.write_bytes(data[: len(data) // 2])
    code, out, err = run_main(monkeypatch, capsys, "ingest", f, "--db", tmp_path / "s.duckdb")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    code, out, err = run_main(monkeypatch, capsys, "stats", "--db", tmp_path / "none.duckdb")
    assert code == 2 and "no such store" in err


def test_duckdb_memory_is_bounded_and_a_bad_limit_is_one_line(tmp_path, monkeypatch, capsys):
    import duckdb

    from distillguard.store import DEFAULT_MEMORY_LIMIT, EventStore

    def limit(con):
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    def duckdb_says(value):
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{value}'")
        return limit(con)

    with EventStore(tmp_path / "a.duckdb") as store:
        assert limit(store.con) == duckdb_says(DEFAULT_MEMORY_LIMIT) != limit(duckdb.connect())
    with EventStore(tmp_path / "b.duckdb", memory_limit="700MB") as store:
        assert limit(store.con) == duckdb_says("700MB")
    code, out, err = run_main(monkeypatch, capsys, "ingest", DATA / "events.csv", "--db", tmp_path / "c.duckdb",
                              "--memory-limit", "lots", "--json")
    assert code == 2 and err.strip().splitlines() == ["distillguard: error: bad memory limit 'lots' (e.g. 4GB or 500MB)"]


def test_running_out_of_duckdb_memory_names_the_limit(tmp_path, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "scan", DATA / "events.csv", "--out", tmp_path / "o",
                              "--memory-limit", "2MB", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "ran out of memory within --memory-limit 2MB" in err and "Traceback" not in err
