"""The store records its privacy settings on first write; later writers, ``forget`` and ``retain`` follow them
(docs/privacy.md, "Settings are the store's"). Real DuckDB files, the CLI as a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pyarrow as pa
import pytest

from distillguard.privacy import StorePrivacy
from distillguard.privacy.redact import Rule
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA
from distillguard.serve.testing import T0
from distillguard.store import EventStore

JANE = "jane@example.com"
CARD = "4539 5787 6362 1486"  # passes Luhn: the card rule's check runs in Python for each candidate


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)


def _events(path, accounts=(JANE, "bob")):
    rows = [{"event_id": f"{a}-{i}", "ts": f"2026-03-0{1 + i}T10:00:00Z", "account_id": a, "model": "m",
             "prompt": f"question {i}", "input_tokens": 5, "output_tokens": 9} for a in accounts for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _one_line_refusal(p, *words):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert all(w in p.stderr for w in words), p.stderr


def _count(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


def test_forget_uses_the_prompt_mode_the_store_was_written_with(tmp_path):
    db = tmp_path / "dg.duckdb"
    assert _cli("ingest", _events(tmp_path / "ev.jsonl"), "--db", db, "--prompts", "full", "--json").returncode == 0
    assert _count(db, f"SELECT count(*) FROM events WHERE account_id = '{JANE}'") == 3  # full: stored as received
    p = _cli("store", "forget", "--db", db, "--account", JANE)  # no --prompts: the store's setting is used
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["found"] and out["rows_deleted"]["events"] == 3 and out["rows_deleted"]["accounts"] == 0
    assert _count(db, "SELECT count(*) FROM events") == 3  # bob's stay


def test_a_writer_with_other_settings_is_refused_and_writes_nothing(tmp_path):
    db = tmp_path / "dg.duckdb"
    ev = _events(tmp_path / "ev.jsonl")
    assert _cli("ingest", ev, "--db", db, "--prompts", "full", "--json").returncode == 0
    more = _events(tmp_path / "more.jsonl", accounts=("carol",))
    _one_line_refusal(_cli("ingest", more, "--db", db, "--prompts", "redacted", "--json"), "prompts full",
                      "--prompts full")
    assert _count(db, "SELECT count(*) FROM events") == 6
    assert _cli("ingest", more, "--db", db, "--prompts", "full", "--json").returncode == 0
    assert _count(db, "SELECT count(*) FROM events") == 9


def test_a_writer_that_names_no_mode_writes_in_the_stores_own(tmp_path):
    db = tmp_path / "dg.duckdb"
    assert _cli("ingest", _events(tmp_path / "ev.jsonl"), "--db", db, "--prompts", "full", "--json").returncode == 0
    more = _events(tmp_path / "more.jsonl", accounts=("carol", "dan@example.com"))
    p = _cli("ingest", more, "--db", db, "--json")  # no --prompts, no store.prompts: the store's mode, full
    assert p.returncode == 0, p.stderr
    assert _count(db, "SELECT count(*) FROM events WHERE account_id = 'dan@example.com'") == 3  # kept as received
    p = _cli("scan", more, "--db", db, "--out", tmp_path / "scan", "--quiet")  # the same for scan --db
    assert p.returncode == 0, p.stderr


def test_a_keyed_store_needs_its_key_and_never_records_it(tmp_path):
    key, other = tmp_path / "id.key", tmp_path / "other.key"
    key.write_text("ab" * 32 + "\n")
    other.write_text("cd" * 32 + "\n")
    db = tmp_path / "dg.duckdb"
    assert _cli("ingest", _events(tmp_path / "ev.jsonl"), "--db", db, "--identifier-key", key, "--json").returncode == 0
    assert _count(db, "SELECT count(*) FROM events WHERE starts_with(account_id, '<EMAIL:')") == 3
    _one_line_refusal(_cli("store", "forget", "--db", db, "--account", JANE), "identifier key", "--identifier-key")
    _one_line_refusal(_cli("store", "forget", "--db", db, "--account", JANE, "--identifier-key", other), "not the key")
    _one_line_refusal(_cli("ingest", _events(tmp_path / "more.jsonl", ("carol",)), "--db", db, "--json"),
                      "identifier key")
    con = duckdb.connect(str(db), read_only=True)
    settings = con.execute("SELECT * FROM privacy_settings").fetchall()
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert len(settings) == 1 and settings[0][3] is None  # a fingerprint, no salt: the key is the salt
    assert "ab" * 16 not in json.dumps(settings) and "privacy_salt" not in tables  # no key, no stray new salt
    p = _cli("store", "forget", "--db", db, "--account", JANE, "--identifier-key", key)
    assert p.returncode == 0 and json.loads(p.stdout)["rows_deleted"]["events"] == 3, p.stderr
    assert _cli("store", "retain", "--db", db, "--keep-days", "1").returncode == 0  # retention needs no key


def test_forget_of_an_unknown_account_says_so_and_exits_1(tmp_path):
    db = tmp_path / "dg.duckdb"
    assert _cli("ingest", _events(tmp_path / "ev.jsonl"), "--db", db, "--json").returncode == 0
    p = _cli("store", "forget", "--db", db, "--account", "jane@example.org")  # a typo
    assert p.returncode == 1 and "nothing of account" in p.stderr and "Traceback" not in p.stderr
    out = json.loads(p.stdout)
    assert not out["found"] and out["rows_deleted"]["events"] == 0 and out["audit_seq"] == 1
    assert _count(db, "SELECT count(*) FROM events") == 6


def _counting(monkeypatch) -> list:
    calls = []
    original = Rule.replace_valid

    def counted(self, text, candidates):
        calls.append(text)
        return original(self, text, candidates)

    monkeypatch.setattr(Rule, "replace_valid", counted)
    return calls


def test_sampled_mode_redacts_only_the_texts_it_keeps_and_python_keeps_the_same(monkeypatch):
    rows = [{f.name: None for f in EVENT_SCHEMA} | {"event_id": f"e{i}", "ts": T0, "account_id": "a",
                                                      "prompt": f"q{i} card {CARD}"} for i in range(2000)]
    privacy = StorePrivacy(prompts="sampled", sample_rate=0.1)
    calls = _counting(monkeypatch)
    with EventStore(":memory:", privacy=privacy) as store:
        store.append_events([pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)])
        kept = {e for e, in store.con.execute("SELECT event_id FROM events WHERE prompt IS NOT NULL").fetchall()}
    assert 150 <= len(kept) <= 250 and len(calls) == len(kept)  # no redaction of what sampling drops
    python_kept = {r["event_id"] for r in rows if privacy.record(dict(r))["prompt"] is not None}
    assert python_kept == kept  # the service's journal keeps the texts the store keeps


def test_the_account_upsert_redacts_each_row_once(monkeypatch):
    import distillguard.privacy.settings as settings

    rows = [{f.name: None for f in ACCOUNT_SCHEMA} | {"account_id": f"user{i}@example.com",
                                                        "signup_path": f"/join?card={CARD}"} for i in range(50)]
    texts, ids, original = _counting(monkeypatch), [], settings.pseudonym
    monkeypatch.setattr(settings, "pseudonym", lambda v, salt: (v is not None and ids.append(v)) or original(v, salt))
    with EventStore(":memory:", privacy=StorePrivacy()) as store:
        store.append_accounts(pa.Table.from_pylist(rows, schema=ACCOUNT_SCHEMA))
        stored = store.con.execute("SELECT count(*), count(*) FILTER (WHERE starts_with(account_id, '<EMAIL:') "
                                   "AND contains(signup_path, '<CARD>')) FROM accounts").fetchall()[0]
    assert stored == (50, 50) and len(texts) == 50 and len(ids) == 50  # one pass of the redaction select


@pytest.mark.parametrize("first, then", [("redacted", "full"), ("none", "sampled")])
def test_event_store_refuses_other_prompt_modes_on_a_written_store(tmp_path, first, then):
    from distillguard.errors import UsageError

    db = tmp_path / "dg.duckdb"
    with EventStore(db, privacy=StorePrivacy(prompts=first)):
        pass
    with pytest.raises(UsageError, match=f"prompts {first}"):
        EventStore(db, privacy=StorePrivacy(prompts=then))
    with EventStore(db) as store:  # no settings given: the store's
        store.append_events([pa.Table.from_pylist([{f.name: None for f in EVENT_SCHEMA} | {
            "event_id": "x", "ts": T0, "account_id": "a", "prompt": "hello"}], schema=EVENT_SCHEMA)])
        assert store.privacy.prompts == first


def test_a_store_from_before_the_record_keeps_its_salt(tmp_path):
    from distillguard.privacy.redact import pseudonym

    db, salt = tmp_path / "old.duckdb", bytes(range(32))
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE privacy_salt (salt VARCHAR)")  # what earlier versions wrote
    con.execute("INSERT INTO privacy_salt VALUES (?)", [salt.hex()])
    con.close()
    with EventStore(db, privacy=StorePrivacy()) as store:
        store.append_events([pa.Table.from_pylist([{f.name: None for f in EVENT_SCHEMA} | {
            "event_id": "x", "ts": T0, "account_id": JANE}], schema=EVENT_SCHEMA)])
        assert store.con.execute("SELECT account_id FROM events").fetchall() == [(pseudonym(JANE, salt),)]
    p = _cli("store", "forget", "--db", db, "--account", JANE)
    assert p.returncode == 0 and json.loads(p.stdout)["rows_deleted"]["events"] == 1, p.stderr
