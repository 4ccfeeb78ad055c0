"""Every input format into a real DuckDB file."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from distillguard.ingest import ingest_files, read_path
from distillguard.ingest.detect import detect_format
from distillguard.schema import EVENT_SCHEMA
from distillguard.store import EventStore

DATA = Path(__file__).parent / "data" / "ingest"


@pytest.fixture()
def store(tmp_path):
    s = EventStore(tmp_path / "t.duckdb")
    yield s
    s.close()


def rows(store, where="TRUE"):
    cur = store.con.execute(f"SELECT * FROM events WHERE {where} ORDER BY ts, event_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def by_id(store):
    return {r["event_id"]: r for r in rows(store)}


def utc(*a):
    return datetime(*a, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "name, fmt",
    [("events.jsonl", "jsonl"), ("events.jsonl.gz", "jsonl"), ("events.csv", "csv"), ("events.parquet", "parquet"),
     ("lake", "parquet"), ("otlp_genai.json", "otlp"), ("otlp_openinference.jsonl", "otlp"),
     ("litellm_spendlogs.csv", "litellm"), ("litellm_spendlogs.json", "litellm"), ("openai_log.jsonl", "openai")],
)
def test_detect_format(name, fmt):
    assert detect_format(DATA / name) == fmt


def test_read_batches_are_canonical():
    for name in ["events.jsonl", "events.csv", "events.parquet", "otlp_genai.json", "litellm_spendlogs.csv",
                 "openai_log.jsonl", "events_bad.jsonl"]:
        _, batches = read_path(DATA / name)
        for b in batches:
            assert b.events.schema == EVENT_SCHEMA
            for q in b.quarantined:
                assert q.source.endswith(name) and q.line >= 1 and q.reason


def test_jsonl_canonical_aliases_and_time(store):
    r = ingest_files([DATA / "events.jsonl"], store, progress=False)
    assert r.as_dict() == {"read": 5, "accepted": 5, "quarantined": 0, "duplicates": 0}
    ev = by_id(store)
    e1 = ev["e1"]
    assert e1["ts"] == utc(2026, 3, 1, 10)
    assert (e1["account_id"], e1["api_key_id"], e1["org_id"], e1["model"]) == ("acct-1", "key-1", "org-1", "frontier-1")
    assert (e1["input_tokens"], e1["output_tokens"], e1["reasoning_tokens"], e1["max_output_tokens"]) == (12, 340, 120, 1024)
    assert e1["temperature"] == 0.7 and e1["logprobs"] is False and e1["is_batch"] is False and e1["extra"] is None
    e2 = ev["e2"]
    assert e2["ts"] == utc(2026, 3, 1, 10, 30)  # +02:00 -> UTC
    assert json.loads(e2["extra"]) == {"campaign_hint": "x"}
    assert (e2["n"], e2["logprobs"], e2["top_logprobs"]) == (4, True, 5)
    # api key is the subject when there is no account
    k9 = rows(store, "api_key_id = 'key-9'")[0]
    assert k9["account_id"] == "key-9" and k9["ts"] == utc(2026, 3, 1, 10)  # epoch seconds
    a3 = rows(store, "account_id = 'acct-3'")[0]
    assert a3["ts"] == datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=timezone.utc)  # epoch ms
    assert (a3["max_output_tokens"], a3["input_tokens"], a3["temperature"]) == (512, 15, 0.2)  # aliases, numeric strings
    r5 = ev["r5"]  # request_id, Timestamp, User (case-insensitive), session_id, completion_tokens, thinking_budget
    assert (r5["account_id"], r5["conversation_id"], r5["output_tokens"], r5["reasoning_effort"]) == ("acct-4", "s-9", 33, "2048")
    assert r5["ts"] == utc(2026, 3, 2, 13)


def test_gzip_equals_plain(tmp_path):
    with EventStore(tmp_path / "a.duckdb") as a, EventStore(tmp_path / "b.duckdb") as b:
        ingest_files([DATA / "events.jsonl"], a, progress=False)
        ingest_files([DATA / "events.jsonl.gz"], b, progress=False)
        assert rows(a) == rows(b)


def test_csv(store):
    r = ingest_files([DATA / "events.csv"], store, quarantine_path=store.path + ".q", progress=False)
    assert r.as_dict() == {"read": 5, "accepted": 2, "quarantined": 3, "duplicates": 0}
    ev = by_id(store)
    assert ev["c1"]["prompt"] == "Explain, step by step, the proof." and json.loads(ev["c1"]["extra"]) == {"region": "eu"}
    assert ev["c2"]["prompt"] == "multi\nline prompt" and ev["c2"]["account_id"] == "key-2" and ev["c2"]["status"] == "ok"
    assert ev["c2"]["logprobs"] is True and ev["c2"]["extra"] is None
    q = [json.loads(x) for x in Path(store.path + ".q").read_text().splitlines()]
    assert [(x["line"], x["reason"]) for x in q] == [(4, "negative_value"), (5, "bad_ts"), (6, "missing_subject")]


def test_parquet_file_and_lake(store):
    r = ingest_files([DATA / "events.parquet", DATA / "lake"], store, progress=False)
    assert r.as_dict() == {"read": 60, "accepted": 60, "quarantined": 0, "duplicates": 0}
    assert store.count("events") == 60
    assert rows(store, "event_id = 'l2-p3'")[0]["ts"] == utc(2026, 3, 3, 3)
    assert rows(store, "event_id = 'p7'")[0]["input_tokens"] == 7


def test_parquet_aliases_and_bad_rows(store, tmp_path):
    q = tmp_path / "q.jsonl"
    r = ingest_files([DATA / "events_aliases.parquet"], store, quarantine_path=q, progress=False)
    assert r.as_dict() == {"read": 3, "accepted": 1, "quarantined": 2, "duplicates": 0}
    e = rows(store)[0]
    assert (e["event_id"], e["account_id"], e["input_tokens"]) == ("q1", "u1", 5)
    assert json.loads(e["extra"]) == {"country": "fr"}
    assert [(x["line"], x["reason"]) for x in map(json.loads, q.read_text().splitlines())] == [
        (2, "negative_value"), (3, "missing_ts")]


def test_otlp_genai_new_and_old_names(store):
    r = ingest_files([DATA / "otlp_genai.json"], store, progress=False)
    # 4 spans: 2 model calls, 1 HTTP span (skipped, not counted), 1 without a subject
    assert r.as_dict() == {"read": 3, "accepted": 2, "quarantined": 1, "duplicates": 0}
    ev = by_id(store)
    new = ev["eee19b7ec3c1b174"]
    assert new["ts"] == utc(2026, 3, 1, 10)
    assert (new["account_id"], new["client_ip"], new["model"], new["conversation_id"]) == (
        "acct-otel-1", "203.0.113.9", "frontier-1", "conv-77")
    assert (new["input_tokens"], new["output_tokens"], new["n"], new["max_output_tokens"]) == (57, 410, 3, 1024)
    assert (new["temperature"], new["top_p"]) == (0.2, 0.9)
    assert new["prompt"] == "Show your full reasoning: is 221 prime?" and new["system_prompt"] == "Be precise."
    assert new["response"] == "221 = 13 x 17, so no." and new["status"] == "ok"
    assert json.loads(new["extra"])["provider"] == "acme"
    old = ev["aaa19b7ec3c1b175"]
    assert (old["account_id"], old["input_tokens"], old["output_tokens"], old["status"]) == ("acct-otel-2", 11, 22, "error")
    assert old["prompt"] == "Translate to French: good morning" and old["response"] == "Bonjour"
    assert json.loads(old["extra"])["provider"] == "openai"


def test_otlp_openinference(store):
    r = ingest_files([DATA / "otlp_openinference.jsonl"], store, progress=False)
    assert r.as_dict() == {"read": 2, "accepted": 1, "quarantined": 1, "duplicates": 0}
    e = rows(store)[0]
    assert (e["model"], e["input_tokens"], e["output_tokens"]) == ("frontier-1-mini", 30, 90)
    assert (e["logprobs"], e["top_logprobs"], e["n"], e["max_output_tokens"], e["temperature"]) == (True, 20, 8, 16, 0.0)
    assert (e["prompt"], e["system_prompt"], e["response"]) == ("Grade: 2+2=5", "You grade answers.", "Score 0/10")
    assert (e["account_id"], e["conversation_id"]) == ("acct-oi-1", "sess-1")


def test_litellm_csv(store, tmp_path):
    q = tmp_path / "q.jsonl"
    r = ingest_files([DATA / "litellm_spendlogs.csv"], store, quarantine_path=q, progress=False)
    assert r.as_dict() == {"read": 4, "accepted": 2, "quarantined": 2, "duplicates": 0}
    ev = by_id(store)
    a = ev["chatcmpl-1"]
    assert a["account_id"] == "internal-user-1"  # the key's user, not the end user the client named (subject rule)
    assert a["api_key_id"].startswith("88dc28") and a["org_id"] == "team-a" and a["client_ip"] == "198.51.100.23"
    assert (a["prompt"], a["system_prompt"], a["response"]) == ("List 10 rubric criteria", "Be brief.", "1. Accuracy ...")
    assert (a["input_tokens"], a["output_tokens"], a["max_output_tokens"], a["n"], a["logprobs"]) == (20, 40, 256, 2, True)
    assert a["ts"] == datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=timezone.utc) and a["status"] == "ok"
    b = ev["chatcmpl-2"]
    assert (b["account_id"], b["org_id"], b["status"]) == ("internal-user-2", "team-b", "error")
    assert [x["reason"] for x in map(json.loads, q.read_text().splitlines())] == ["wrong_type", "missing_ts"]


def test_litellm_json_subject_falls_back_to_key(store):
    r = ingest_files([DATA / "litellm_spendlogs.json"], store, progress=False)
    assert r.as_dict() == {"read": 2, "accepted": 1, "quarantined": 1, "duplicates": 0}
    e = rows(store)[0]
    assert (e["account_id"], e["prompt"], e["response"]) == ("u-1", "think step by step", "ok")


def test_litellm_missing_columns(store, tmp_path):
    p = tmp_path / "spend.csv"
    p.write_text("request_id,api_key,startTime,model,spend,call_type\nr1,key-a,2026-03-01T00:00:00Z,m,0.1,completion\n")
    r = ingest_files([p], store, progress=False)
    assert r.accepted == 1 and rows(store)[0]["account_id"] == "key-a"


def test_openai_logs(store):
    r = ingest_files([DATA / "openai_log.jsonl"], store, progress=False)
    assert r.as_dict() == {"read": 5, "accepted": 3, "quarantined": 2, "duplicates": 0}
    ev = by_id(store)
    a = ev["chatcmpl-oa1"]
    assert (a["account_id"], a["api_key_id"], a["client_ip"]) == ("acct-oa-1", "key-oa-1", "192.0.2.10")
    assert (a["prompt"], a["system_prompt"], a["response"]) == ("Solve x^2=4, show all steps.", "You are a tutor.",
                                                                "x = 2 or x = -2")
    assert (a["input_tokens"], a["output_tokens"], a["reasoning_tokens"]) == (25, 300, 256)
    assert (a["max_output_tokens"], a["n"], a["logprobs"], a["top_logprobs"], a["reasoning_effort"]) == (
        2048, 5, True, 10, "high")
    assert json.loads(a["extra"])["request.seed"] == 7
    b = ev["resp_2"]
    assert (b["account_id"], b["prompt"], b["response"], b["ts"]) == (
        "acct-oa-2", "Write a haiku", "an old silent pond", utc(2026, 3, 1, 10, 1))
    rl = rows(store, "account_id = 'acct-oa-3'")[0]
    assert rl["status"] == "rate_limited"


def test_accounts(store, tmp_path):
    q = tmp_path / "q.jsonl"
    r = ingest_files([], store, quarantine_path=q, accounts=DATA / "accounts.csv", progress=False)
    assert (r.accounts, r.accounts_quarantined) == (2, 3)
    acc = {a[0]: a for a in store.con.execute("SELECT * FROM accounts").fetchall()}
    assert acc["acct-1"][2] == "example.com" and acc["acct-1"][3] == "pf-1" and acc["acct-1"][6] is True
    assert acc["acct-1"][1] == utc(2026, 2, 1)
    assert json.loads(acc["acct-1"][8]) == {"plan": "free"}
    reasons = [x["reason"] for x in map(json.loads, q.read_text().splitlines())]
    assert reasons == ["missing_subject", "bad_ts", "wrong_type"]
    r = ingest_files([], store, accounts=DATA / "accounts.jsonl", progress=False)
    assert (r.accounts, r.accounts_quarantined) == (2, 1)
    a6 = store.con.execute("SELECT payment_fingerprint, created_at, verified FROM accounts WHERE account_id='acct-6'").fetchone()
    assert a6 == ("pf-9", utc(2026, 2, 1), True)
    assert store.con.execute("SELECT org_id FROM accounts WHERE account_id='acct-7'").fetchone()[0] == "org-7"


def test_bundled_sample(store):
    from importlib.resources import files

    sample = files("distillguard") / "data" / "sample_events.jsonl"
    r = ingest_files([str(sample)], store, progress=False)
    assert r.accepted >= 150 and r.quarantined == 0
    assert store.con.execute("SELECT count(DISTINCT account_id) FROM events").fetchone()[0] >= 3
