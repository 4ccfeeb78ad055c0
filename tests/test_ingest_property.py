"""Property-based: random or truncated input never crashes ingest, and counts always add up."""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillguard.ingest import ingest_files
from distillguard.store import EventStore

DATA = Path(__file__).parent / "data" / "ingest"
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**19), st.floats(allow_nan=True),
                        st.text(max_size=20))
field = st.sampled_from(["ts", "account_id", "api_key_id", "input_tokens", "temperature", "logprobs", "prompt",
                         "Timestamp", "USER", "n", "extra", "status", "max_tokens", "misc"])
record = st.dictionaries(field, st.one_of(json_scalar, st.lists(json_scalar, max_size=2)), max_size=8)
line = st.one_of(record.map(lambda r: json.dumps(r).encode()), st.binary(max_size=40).filter(lambda b: b"\n" not in b),
                 st.just(b""), st.just(b"   "), st.just(b"[1]"))


def _check(tmp_path, name, payload):
    p = tmp_path / name
    p.write_bytes(payload)
    q = tmp_path / "q.jsonl"
    q.unlink(missing_ok=True)
    db = tmp_path / "s.duckdb"
    for f in (db, Path(str(db) + ".wal")):
        f.unlink(missing_ok=True)
    with EventStore(db) as s:
        try:
            r = ingest_files([p], s, quarantine_path=q, fmt=None, progress=False)
        except Exception as exc:  # only whole-file refusals are allowed
            from distillguard.errors import UsageError

            assert isinstance(exc, UsageError), repr(exc)
            return None
        assert r.read == r.accepted + r.quarantined + r.duplicates
        assert s.count("events") == r.accepted
        nq = q.read_bytes().count(b"\n") if q.exists() else 0  # not splitlines: U+0085 etc. are not record breaks
        assert nq == r.quarantined
        return r


@SETTINGS
@given(lines=st.lists(line, max_size=12))
def test_random_jsonl_never_crashes(tmp_path, lines):
    payload = b"\n".join(lines)
    r = _check(tmp_path, "r.jsonl", payload)
    if r is not None:
        nonblank = sum(1 for ln in payload.split(b"\n") if ln.strip())
        assert r.read <= nonblank


@SETTINGS
@given(cut=st.integers(0, 10_000), name=st.sampled_from(["events.jsonl", "events_bad.jsonl", "events.csv",
                                                         "otlp_openinference.jsonl", "openai_log.jsonl",
                                                         "litellm_spendlogs.csv"]))
def test_truncated_files_never_crash(tmp_path, cut, name):
    data = (DATA / name).read_bytes()
    _check(tmp_path, name, data[: cut % (len(data) + 1)])


@SETTINGS
@given(rows=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=5), max_size=6))
def test_random_csv_never_crashes(tmp_path, rows):
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["ts", "account_id", "input_tokens", "other"])
    w.writerows(rows)
    _check(tmp_path, "r.csv", buf.getvalue().encode())
