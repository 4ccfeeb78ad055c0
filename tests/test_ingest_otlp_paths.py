"""``distillguard ingest`` with OTLP exports among its paths: read together once, repeats reported."""
from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.ingest import ingest_files
from distillguard.store import EventStore

DATA = Path(__file__).parent / "data" / "otel"


def _ingest(tmp_path, *names, fmt=None):
    tmp_path.mkdir(exist_ok=True)
    with EventStore(tmp_path / "dg.duckdb") as store:
        res = ingest_files([DATA / n for n in names], store, fmt=fmt, progress=False)
        return res, store.count("events")


@pytest.mark.parametrize("name", ["openinference.traces.json", "openinference.traces.pb"])
def test_a_file_given_twice_is_ingested_once_and_its_repeat_counted_as_duplicates(tmp_path, name):
    once, n = _ingest(tmp_path / "a", name)
    assert once.accepted == n > 0
    twice, n2 = _ingest(tmp_path / "b", name, name)
    assert (twice.accepted, twice.duplicates, n2) == (n, n, n)
    assert [f["accepted"] for f in twice.files] == [n, 0] and twice.files[1]["duplicates"] == n
    assert twice.read == twice.accepted + twice.quarantined + twice.duplicates


def test_a_trace_export_and_its_log_export_join_whatever_their_order_and_repeats(tmp_path):
    spans, logs = "openai-v2-latest-event.traces.pb", "openai-v2-latest-event.logs.pb"
    joined, n = _ingest(tmp_path / "a", spans, logs)
    assert joined.quarantined == 0 and n == joined.accepted > 0
    again, n2 = _ingest(tmp_path / "b", logs, spans, logs)
    assert (again.accepted, again.quarantined, n2) == (n, 0, n) and again.duplicates == n


def test_each_file_format_is_detected_once(tmp_path, monkeypatch):
    from distillguard.ingest import detect

    seen = []
    real = detect.detect_format
    monkeypatch.setattr(detect, "detect_format", lambda p, *a, **k: seen.append(Path(p).name) or real(p, *a, **k))
    _ingest(tmp_path, "openinference.traces.json", "openllmetry.traces.json")
    assert sorted(seen) == ["openinference.traces.json", "openllmetry.traces.json"]
