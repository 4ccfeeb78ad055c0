"""Whole-file JSONL ingest (DuckDB's reader) against the block-by-block path, on messy files."""
from __future__ import annotations

import gzip
import json
import random

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distillguard.ingest import ingest_files
from distillguard.ingest import jsonl_stream
from distillguard.ingest.jsonl import JsonlSource
from distillguard.ingest.lines import RecordLines
from distillguard.store import EventStore


def _messy_lines(n: int, seed: int, unknown_keys: bool) -> list[bytes]:
    """Mostly good records with every kind of trouble scattered through them."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rec = {"event_id": f"e{i}", "ts": f"2026-03-01T{i % 24:02d}:00:00Z", "account_id": f"acct-{i % 97}",
               "prompt": "explain step by step " * rng.randint(1, 40), "input_tokens": rng.randint(1, 900)}
        if unknown_keys and i % 7 == 0:
            rec["latency_ms"] = rng.randint(1, 5000)
        r = rng.random()
        if r < 0.01:
            line = b'{"ts": "2026-03-01T00:00:00Z", "account_id": '  # cut off
        elif r < 0.02:
            line = json.dumps({**rec, "input_tokens": -3}).encode()
        elif r < 0.03:
            line = json.dumps({**rec, "ts": "yesterday"}).encode()
        elif r < 0.04:
            line = json.dumps(rec).encode().replace(b"explain", b"expl\xffain")
        elif r < 0.05:
            line = b"[1, 2, 3]"
        elif r < 0.06:
            line = json.dumps({k.upper(): v for k, v in rec.items()}).encode()  # Python maps the case
        elif r < 0.07:
            line = json.dumps({**rec, "event_id": f"e{max(0, i - 500)}"}).encode()  # repeats an earlier id
        elif r < 0.08:
            line = rng.choice([b"", b"   ", b"\t\x0b\x0c \r"])  # blank: not a record
        elif r < 0.09:
            line = json.dumps(rec).encode() + b"\r"  # CRLF
        elif r < 0.10:
            line = b"  " + json.dumps({k: v for k, v in rec.items() if k != "event_id"}).encode() + b"  "
        else:
            line = json.dumps(rec).encode()
        out.append(line)
    return out


def _ingest(path, use_blocks: bool):
    quarantined = []
    with EventStore(":memory:") as s:
        source = JsonlSource()
        ingest = source._ingest_by_block if use_blocks else source.ingest_into
        counts = ingest(str(path), s, quarantined.extend)
        rows = sorted(s.con.execute("SELECT * FROM events").fetchall(), key=lambda r: r[0])
    return counts, rows, sorted((q.line, q.reason, q.raw) for q in quarantined)


@pytest.mark.parametrize("unknown_keys", [False, True], ids=["known-keys", "unknown-keys"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_whole_file_path_agrees_with_block_path(tmp_path, unknown_keys, gz):
    lines = _messy_lines(30_000, seed=7, unknown_keys=unknown_keys)
    payload = b"\n".join(lines) + b"\n"
    path = tmp_path / ("m.jsonl.gz" if gz else "m.jsonl")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    whole, blocks = _ingest(path, use_blocks=False), _ingest(path, use_blocks=True)
    assert whole[0] == blocks[0]
    assert whole[1] == blocks[1]
    assert whole[2] == blocks[2]
    (accepted, duplicates), quarantine = whole[0], whole[2]
    records = sum(1 for ln in lines if ln.strip(b" \t\r\x0b\x0c"))
    assert accepted + duplicates + len(quarantine) == records
    assert duplicates > 100 and len(quarantine) > 900
    # line numbers point at the offending line of the file
    for no, reason, raw in quarantine[:: max(1, len(quarantine) // 50)]:
        assert lines[no - 1].decode("utf-8", "backslashreplace").startswith(raw[:40].rstrip("…"))


def test_reingest_and_overlap_count_as_duplicates(tmp_path):
    lines = _messy_lines(5_000, seed=3, unknown_keys=False)
    half = tmp_path / "half.jsonl"
    half.write_bytes(b"\n".join(lines[: len(lines) // 2]) + b"\n")
    full = tmp_path / "full.jsonl"
    full.write_bytes(b"\n".join(lines) + b"\n")
    with EventStore(tmp_path / "s.duckdb") as s:
        first = ingest_files([half], s, progress=False)
        second = ingest_files([full], s, progress=False)
        again = ingest_files([full], s, progress=False)
        stored = s.count("events")
        distinct = s.con.execute("SELECT count(DISTINCT event_id) FROM events").fetchall()[0][0]
    assert stored == distinct == first.accepted + second.accepted
    assert second.duplicates >= first.accepted
    assert again.accepted == 0 and again.duplicates == second.accepted + second.duplicates
    assert again.quarantined == second.quarantined


def test_a_disagreement_rolls_back_and_reads_by_block(tmp_path, monkeypatch):
    """If DuckDB's records and the file's lines ever disagree, nothing of the attempt stays stored."""
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(_messy_lines(3_000, seed=5, unknown_keys=False)) + b"\n")
    expected = _ingest(path, use_blocks=True)

    def disagree(*args):
        raise jsonl_stream.Fallback("injected")

    monkeypatch.setattr(jsonl_stream, "_failing", disagree)
    assert _ingest(path, use_blocks=False) == expected


@pytest.mark.parametrize("payload, reason", [(b"x", "invalid_json"), (b"1", "not_an_object"), (b"{", "invalid_json")])
def test_a_one_byte_file_is_still_a_record(tmp_path, payload, reason):
    """DuckDB's reader sees no record in a one-byte file; the ingest must not lose it."""
    path = tmp_path / "one.jsonl"
    path.write_bytes(payload)
    counts, rows, quarantine = _ingest(path, use_blocks=False)
    assert counts == (0, 0) and rows == [] and [(q[0], q[1]) for q in quarantine] == [(1, reason)]


def test_progress_reaches_the_file_size(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(_messy_lines(2_000, seed=1, unknown_keys=False)))
    seen = []
    with EventStore(":memory:") as s:
        JsonlSource(on_progress=seen.append).ingest_into(str(path), s, lambda q: None)
    assert seen and seen[-1] == path.stat().st_size and seen == sorted(seen)


def _line_bytes(alphabet):
    return st.lists(st.sampled_from(alphabet), max_size=10).map(b"".join)


TOKENS = [b"{", b"}", b'"a"', b'"ts"', b'"account_id"', b'"2026-01-01"', b":", b"1", b",", b" ", b"\t", b"\x0b",
          b"\x0c", b"\x00", b"\xff", b"\xc3\xa9", b"[", b"]", b'"\\u00e9"', b"null"]


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_line_bytes(TOKENS + [b"\r"]), max_size=25), final_newline=st.booleans())
def test_record_lines_count_records_as_duckdb_does(tmp_path_factory, lines, final_newline):
    """The assumption the whole-file path rests on, checked against DuckDB itself."""
    path = tmp_path_factory.mktemp("rl") / "x.jsonl"
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    duck = duckdb.connect().execute(
        f"SELECT json FROM read_json_objects('{path}', format='newline_delimited', ignore_errors=true)").fetchall()
    found = RecordLines(str(path), block_size=7)  # tiny blocks: lines straddle them
    got = list(found.select(range(RecordLines(str(path)).count())))
    if duck:  # DuckDB reads a one-byte file as no record: the ingest falls back then
        assert found.total == len(duck)
    for (k, no, raw), (text,) in zip(got, duck):
        assert raw.strip(b" \t\r\x0b\x0c") == lines[no - 1].strip(b" \t\r\x0b\x0c")
        if text is not None:
            assert text.encode() == raw.strip(b" \t\r\x0b\x0c")


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(_line_bytes(TOKENS), max_size=20), crlf=st.booleans())
def test_random_files_ingest_as_block_by_block(tmp_path_factory, lines, crlf):
    path = tmp_path_factory.mktemp("eq") / "x.jsonl"
    path.write_bytes((b"\r\n" if crlf else b"\n").join(lines))
    assert _ingest(path, use_blocks=False) == _ingest(path, use_blocks=True)
