"""Validation, quarantine records, blank lines, idempotency, and fast-path/reference agreement."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillguard.ingest import ingest_files, read_path
from distillguard.ingest.normalize import Reject, normalize, parse_ts
from distillguard.store import EventStore

DATA = Path(__file__).parent / "data" / "ingest"

EXPECTED_BAD = [
    (2, "invalid_json"), (3, "not_an_object"), (4, "missing_ts"), (5, "bad_ts"), (6, "missing_subject"),
    (7, "negative_value"), (8, "wrong_type"), (9, "wrong_type"), (10, "wrong_type"), (11, "wrong_type"),
    (12, "invalid_utf8"),
]


def test_every_reason_with_line_numbers(tmp_path):
    q = tmp_path / "q.jsonl"
    with EventStore(tmp_path / "s.duckdb") as s:
        r = ingest_files([DATA / "events_bad.jsonl"], s, quarantine_path=q, progress=False)
        # 14 lines, one blank: 13 records read, blank lines not counted
        assert r.as_dict() == {"read": 13, "accepted": 2, "quarantined": 11, "duplicates": 0}
        assert r.read == r.accepted + r.quarantined + r.duplicates
    recs = [json.loads(x) for x in q.read_text().splitlines()]
    assert sorted((x["line"], x["reason"]) for x in recs) == EXPECTED_BAD
    for x in recs:
        assert set(x) >= {"source", "line", "reason", "raw"}
        assert x["source"].endswith("events_bad.jsonl")
    recs.sort(key=lambda x: x["line"])
    assert recs[0]["raw"].startswith('{"ts":"2026-03-01T10:00:00Z","account_id":"broken"')
    assert "\\xff" in recs[-1]["raw"]


def test_raw_is_truncated(tmp_path):
    p = tmp_path / "big.jsonl"
    p.write_text('{"ts": "2026-01-01", "prompt": "' + "x" * 10000 + '"}\n')
    q = tmp_path / "q.jsonl"
    with EventStore(tmp_path / "s.duckdb") as s:
        ingest_files([p], s, quarantine_path=q, progress=False)
    rec = json.loads(q.read_text())
    assert rec["reason"] == "missing_subject" and len(rec["raw"]) <= 2001


def test_idempotent_same_file_twice(tmp_path):
    with EventStore(tmp_path / "s.duckdb") as s:
        files = [DATA / "events.jsonl", DATA / "events.csv", DATA / "events.parquet", DATA / "otlp_genai.json",
                 DATA / "litellm_spendlogs.csv", DATA / "openai_log.jsonl"]
        first = ingest_files(files, s, progress=False)
        n = s.count("events")
        second = ingest_files(files, s, progress=False)
        assert s.count("events") == n == first.accepted
        assert second.accepted == 0 and second.duplicates == first.accepted
        assert second.quarantined == first.quarantined
    # and across processes/connections: reopen the file
    with EventStore(tmp_path / "s.duckdb") as s:
        third = ingest_files([DATA / "events.jsonl"], s, progress=False)
        assert third.accepted == 0 and third.duplicates == 5


def test_duplicates_within_a_file(tmp_path):
    p = tmp_path / "dup.jsonl"
    line = '{"ts": "2026-01-01T00:00:00Z", "account_id": "a", "prompt": "same"}\n'
    p.write_text(line * 3 + '{"event_id": "x", "ts": 1, "account_id": "b"}\n' * 2)
    with EventStore(tmp_path / "s.duckdb") as s:
        r = ingest_files([p], s, progress=False)
        assert r.as_dict() == {"read": 5, "accepted": 2, "quarantined": 0, "duplicates": 3}


def test_deterministic_ids_are_stable_across_formats(tmp_path):
    """An event without an id gets the same derived id from JSONL and from CSV."""
    j = tmp_path / "a.jsonl"
    j.write_text('{"ts": "2026-01-01T00:00:00Z", "account_id": "a", "prompt": "p", "input_tokens": 3}\n')
    c = tmp_path / "a.csv"
    c.write_text("ts,account_id,prompt,input_tokens\n2026-01-01T00:00:00Z,a,p,3\n")
    ids = []
    for p in (j, c):
        with EventStore(tmp_path / f"{p.suffix}.duckdb") as s:
            ingest_files([p], s, progress=False)
            ids.append(s.con.execute("SELECT event_id FROM events").fetchone()[0])
    assert ids[0] == ids[1] and len(ids[0]) == 32


def _read_all(path, fmt=None):
    ev, q = [], []
    _, batches = read_path(path, fmt)
    for b in batches:
        ev += b.events.to_pylist()
        q += [(x.line, x.reason) for x in b.quarantined]
    return ev, q


@pytest.mark.parametrize("name", ["events.jsonl", "events_bad.jsonl", "events.parquet", "events_aliases.parquet"])
def test_fast_path_agrees_with_read(tmp_path, name):
    """``ingest_into`` (SQL straight into the store) and ``read`` (Arrow batches) give the same rows."""
    ev, q = _read_all(DATA / name)
    qf = tmp_path / "q.jsonl"
    with EventStore(tmp_path / "s.duckdb") as s:
        r = ingest_files([DATA / name], s, quarantine_path=qf, progress=False)
        cur = s.con.execute("SELECT * FROM events")
        names = [d[0] for d in cur.description]
        stored = [dict(zip(names, row)) for row in cur.fetchall()]
    key = lambda e: e["event_id"]
    assert sorted(stored, key=key) == sorted(ev, key=key)
    got_q = [(x["line"], x["reason"]) for x in map(json.loads, qf.read_text().splitlines())] if qf.exists() else []
    assert sorted(got_q) == sorted(q)
    assert r.accepted == len(ev) and r.quarantined == len(q)


def test_python_and_sql_paths_agree_on_values(tmp_path):
    """A row the SQL path accepts normalises to the same values in the reference normaliser."""
    ev, _ = _read_all(DATA / "events.jsonl")
    lines = [json.loads(x) for x in (DATA / "events.jsonl").read_text().splitlines() if x.strip()]
    for stored, raw in zip(sorted(ev, key=lambda e: e["ts"]), sorted(lines, key=lambda r: parse_ts(
            r.get("ts", r.get("Timestamp"))))):
        ref = normalize(raw)
        for k, v in ref.items():
            if k in ("event_id", "extra") or v is None:
                continue
            assert stored[k] == v, (k, stored[k], v)


@pytest.mark.parametrize(
    "value, expected",
    [("2026-03-01T10:00:00Z", "2026-03-01T10:00:00+00:00"), ("2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00+00:00"),
     ("2026-03-01T05:00:00-05:00", "2026-03-01T10:00:00+00:00"), ("2026-03-01 10:00:00", "2026-03-01T10:00:00+00:00"),
     (1772359200, "2026-03-01T10:00:00+00:00"), (1772359200000, "2026-03-01T10:00:00+00:00"),
     ("1772359200", "2026-03-01T10:00:00+00:00"), (1772359200.5, "2026-03-01T10:00:00.500000+00:00")],
)
def test_parse_ts(value, expected):
    assert parse_ts(value).isoformat() == expected


@pytest.mark.parametrize(
    "record, reason",
    [({"ts": "2026-01-01", "account_id": "a", "n": True}, "wrong_type"),
     ({"ts": "2026-01-01", "account_id": "a", "n": "3.5"}, "wrong_type"),
     ({"ts": "2026-01-01", "account_id": "a", "top_p": [1]}, "wrong_type"),
     ({"ts": "2026-01-01", "account_id": "a", "reasoning_tokens": -1}, "negative_value"),
     ({"ts": True, "account_id": "a"}, "bad_ts"),
     ({"ts": "2026-13-45", "account_id": "a"}, "bad_ts"),
     ({"ts": "2026-01-01", "account_id": ""}, "missing_subject"),
     ({"ts": "", "account_id": "a"}, "missing_ts")],
)
def test_normalize_rejects(record, reason):
    with pytest.raises(Reject) as exc:
        normalize(record)
    assert exc.value.reason == reason


def test_extra_and_prompt_messages():
    out = normalize({"ts": 0, "user": "u", "messages": [{"role": "system", "content": "S"},
                                                        {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                     "Color": "red", "extra": '{"a": 1}'})
    assert out["prompt"] == "hi" and out["system_prompt"] == "S" and out["account_id"] == "u"
    assert json.loads(out["extra"])["Color"] == "red"


def test_blank_lines_only(tmp_path):
    p = tmp_path / "blank.jsonl"
    p.write_text("\n  \n\t\n\n")
    with EventStore(tmp_path / "s.duckdb") as s:
        assert ingest_files([p], s, progress=False).as_dict() == {"read": 0, "accepted": 0, "quarantined": 0,
                                                                  "duplicates": 0}


def test_crlf_and_no_trailing_newline(tmp_path):
    p = tmp_path / "crlf.jsonl"
    p.write_bytes(b'{"ts": "2026-01-01", "account_id": "a"}\r\n{"ts": "2026-01-02", "account_id": "b"}')
    with EventStore(tmp_path / "s.duckdb") as s:
        assert ingest_files([p], s, progress=False).accepted == 2


def test_exported_extra_round_trips(tmp_path):
    """An ``extra`` column/key written by an export (JSON object text) comes back as the same extra."""
    j = tmp_path / "x.jsonl"
    j.write_text('{"event_id": "a", "ts": "2026-01-01T00:00:00Z", "account_id": "u", "extra": "{\\"end_user\\":\\"e1\\"}"}\n'
                 '{"event_id": "b", "ts": "2026-01-01T00:00:00Z", "account_id": "u", "extra": null}\n'
                 '{"event_id": "c", "ts": "2026-01-01T00:00:00Z", "account_id": "u", "extra": {"k": 1}, "z": 2}\n')
    with EventStore(tmp_path / "s.duckdb") as s:
        assert ingest_files([j], s, progress=False).accepted == 3
        got = dict(s.con.execute("SELECT event_id, extra FROM events").fetchall())
        assert json.loads(got["a"]) == {"end_user": "e1"} and got["b"] is None
        assert json.loads(got["c"]) == {"k": 1, "z": 2}
        p = tmp_path / "x.parquet"
        s.con.execute(f"COPY (SELECT * FROM events) TO '{p}' (FORMAT parquet)")
    with EventStore(tmp_path / "t.duckdb") as t:
        assert ingest_files([p], t, progress=False).accepted == 3
        assert dict(t.con.execute("SELECT event_id, extra FROM events").fetchall()) == got
