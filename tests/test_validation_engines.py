"""One edge-case file, three engines: the same accepted events (same ids) and the same quarantine reasons.

The field rules are declared once (``distillguard.ingest.fields``); the
reference normaliser, the DuckDB SQL and the Spark expressions are generated
from them, and the fast paths hand every row they cannot prove clean to the
reference. Each row of the file below exercises one rule (an alias, an epoch
in ms, a float's text, a flattened message list, a carried ``extra``, an
HTTP status...); the content-derived ids cover every canonical column, so any
difference in a value's type or text between engines shows up as a different id.
"""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

NAN = float("nan")
_BASE = {"request_id": None, "user": "u", "api_key_id": None, "input_tokens": "5", "output_tokens": 1,
         "temperature": 0.5, "top_p": None, "logprobs": None, "is_batch": None, "status": None, "n": None,
         "reasoning_effort": None, "messages": None, "region": "eu", "extra": None}
_ROWS = [  # (row, expected reason or None when accepted)
    (dict(request_id="r1", timestamp="2026-03-01T10:00:00Z", input_tokens="12", temperature=0.7, top_p="0.9",
          logprobs="yes", is_batch=0, status="success", n=2.0, reasoning_effort=1024, extra='{"a":1}'), None),
    (dict(timestamp="2026-03-01 10:00:01+02:00", input_tokens="12.0",
          messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]), None),
    (dict(timestamp="1772359202123", temperature=1e-5, status="429", extra='{"b":null}', region="us"), None),
    (dict(timestamp="2026-03-01T10:00:03.5", user=None, api_key_id="k9", temperature=0.1 + 0.2, logprobs="T",
          status=" Throttled ", extra="not json"), None),
    (dict(timestamp="garbage"), "bad_ts"),
    (dict(timestamp=""), "missing_ts"),
    (dict(timestamp="2301-01-01T00:00:00Z"), "bad_ts"),
    (dict(timestamp="2026-03-01T10:00:07Z", output_tokens=-8), "negative_value"),
    (dict(timestamp="2026-03-01T10:00:08Z", input_tokens="1e3", temperature=1e20), None),
    (dict(timestamp="2026-03-01T10:00:09Z", top_p="1.5d"), "wrong_type"),
    (dict(timestamp="2026-03-01T10:00:10Z", status="200", top_p=" 0.5 "), None),
    (dict(timestamp="2026-03-01T10:00:11Z", logprobs="maybe"), "wrong_type"),
    (dict(timestamp="2026-03-01T10:00:12Z", is_batch=2), "wrong_type"),
    (dict(timestamp="2026-03-01T10:00:13Z", n=2.5), "wrong_type"),
    (dict(timestamp="2026-03-01T10:00:14Z", reasoning_effort=-1), "negative_value"),
    (dict(timestamp="2026-03-01T10:00:15Z", temperature=NAN), "wrong_type"),
    (dict(timestamp="2026-03-01T10:00:16Z", user=None), "missing_subject"),
    (dict(timestamp="2026-03-01T10:00:17Z", input_tokens="abc"), "wrong_type"),
    (dict(timestamp="2026-03-01T10:00:18Z", input_tokens=" 7"), None),
    (dict(timestamp="2026-03-01T10:00:19Z", status="weird", logprobs="1", is_batch=1, n=1.0), None),
    (dict(timestamp="2026-03-01T10:00:19Z", status="weird", logprobs="1", is_batch=1, n=1.0), None),  # a repeat
]
_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("timestamp", pa.string()), ("user", pa.string()), ("api_key_id", pa.string()),
    ("input_tokens", pa.string()), ("output_tokens", pa.int64()), ("temperature", pa.float64()),
    ("top_p", pa.string()), ("logprobs", pa.string()), ("is_batch", pa.int64()), ("status", pa.string()),
    ("n", pa.float64()), ("reasoning_effort", pa.int64()),
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("region", pa.string()), ("extra", pa.string()),
])
EXPECTED_REASONS = sorted((i + 1, reason) for i, (_, reason) in enumerate(_ROWS) if reason)
COMPARED = ["event_id", "ts", "account_id", "api_key_id", "prompt", "system_prompt", "input_tokens", "output_tokens",
            "temperature", "top_p", "logprobs", "is_batch", "status", "n", "reasoning_effort", "extra"]


@pytest.fixture(scope="module")
def edge_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("edge") / "edge.parquet"
    pq.write_table(pa.Table.from_pylist([{**_BASE, **row} for row, _ in _ROWS], schema=_SCHEMA), path)
    return path


def _events(rows) -> list[tuple]:
    out = set()
    for r in rows:
        r = dict(r)
        r["ts"] = r["ts"].timestamp()  # aware from DuckDB, naive local time from Spark's collect
        out.add(tuple(r[c] for c in COMPARED))
    return sorted(out, key=lambda t: t[0])


def _reference(path):
    """Every row through the reference normaliser, ids from ``EVENT_ID_SQL``."""
    from distillguard.ingest.normalize import Reject, normalize, rows_to_batch
    from distillguard.ingest.sqlfast import connect, fill_event_ids

    accepted, reasons = [], []
    for line, rec in enumerate(pq.read_table(path).to_pylist(), start=1):
        try:
            accepted.append(normalize({k: v for k, v in rec.items() if v is not None and v != ""}))
        except Reject as rej:
            reasons.append((line, rej.reason))
    return _events(fill_event_ids(connect(), rows_to_batch(accepted)).to_pylist()), sorted(reasons)


def _quarantine(path) -> list[tuple]:
    return sorted((q["line"], q["reason"]) for q in map(json.loads, path.read_text().splitlines()))


def _duckdb(path, tmp_path):
    from distillguard.ingest import ingest_files
    from distillguard.store import EventStore

    with EventStore(":memory:") as store:
        counts = ingest_files([str(path)], store, quarantine_path=tmp_path / "q.jsonl", progress=False)
        rows = store.con.sql(f"SELECT {', '.join(COMPARED)} FROM events").to_arrow_table().to_pylist()
    return _events(rows), _quarantine(tmp_path / "q.jsonl"), counts


def test_reference_and_duckdb_agree_on_every_edge_case(edge_file, tmp_path):
    ref_events, ref_reasons = _reference(edge_file)
    duck_events, duck_reasons, counts = _duckdb(edge_file, tmp_path)
    assert ref_reasons == duck_reasons == EXPECTED_REASONS
    assert duck_events == ref_events
    assert len(ref_events) == sum(1 for _, reason in _ROWS if reason is None) - 1  # the repeat is one event
    assert (counts.read, counts.accepted, counts.quarantined, counts.duplicates) == (21, 8, 12, 1)
    by_id = {e[0]: e for e in ref_events}
    assert by_id["r1"][COMPARED.index("reasoning_effort")] == "1024"
    assert any(e[COMPARED.index("system_prompt")] == "be brief" and e[COMPARED.index("prompt")] == "hi"
               for e in ref_events)


needs_spark = pytest.mark.skipif(
    shutil.which("java") is None or __import__("importlib").util.find_spec("pyspark") is None,
    reason="PySpark (distillguard[spark]) and Java 17 are needed",
)


@pytest.mark.slow
@needs_spark
def test_spark_agrees_with_the_reference_on_every_edge_case(edge_file, tmp_path):
    from distillguard.engines.spark import get_session, read_events
    from distillguard.engines.spark_validation import canonical_events

    spark = get_session("local[2]", app_name="distillguard-tests")
    ref_events, ref_reasons = _reference(edge_file)
    quarantine = tmp_path / "q.jsonl"
    events, counts = read_events(spark, [str(edge_file)], quarantine)
    rows = [r.asDict() for r in events.select(*COMPARED).collect()]  # naive local datetimes: compare the instant
    assert _events(rows) == ref_events
    assert _quarantine(quarantine) == ref_reasons == EXPECTED_REASONS
    assert (counts.read, counts.accepted, counts.quarantined, counts.duplicates) == (21, 8, 12, 1)
    # Spark proves the plain rows clean itself; the others went through the reference on the driver.
    ok = [r["_ok"] for r in canonical_events(spark.read.parquet(str(edge_file))).select("_ok").collect()]
    assert [i + 1 for i, v in enumerate(ok) if v] == [1, 20, 21]
