"""The service's OTLP intake checks mapped records with ``normalize_fields`` (no key matching); file
ingest uses ``normalize``. Both must give the same event or the same rejection, on what the real
instrumentation sent (tests/data/otel) and on records built to be rejected."""
from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.ingest.normalize import Reject, normalize, normalize_fields
from distillguard.ingest.otlp import decode, model_records

DATA = Path(__file__).parent / "data" / "otel"
TYPES = {".pb": "application/x-protobuf", ".json": "application/json"}


def outcome(fn, rec, extra):
    try:
        return fn(rec, extra)
    except Reject as rej:
        return ("reject", rej.reason, rej.detail)


def mapped_fixture_records() -> list:
    out = []
    for ext, ctype in TYPES.items():
        by_producer: dict[str, list] = {}
        for path in sorted(DATA.glob(f"*{ext}")):
            producer, signal = path.name.split(".")[:2]
            by_producer.setdefault(producer, []).extend(decode(path.read_bytes(), ctype, signal))
        for items in by_producer.values():
            out.extend(model_records(items)[0])
    return out


def test_every_fixture_call_normalizes_the_same_both_ways():
    pairs = mapped_fixture_records()
    assert len(pairs) >= 12  # one call per producer, in both encodings
    for rec, extra in pairs:
        got = outcome(normalize_fields, rec, extra)
        assert got == outcome(normalize, rec, extra)
        assert isinstance(got, dict) and got["account_id"]


@pytest.mark.parametrize("change", [
    {"ts": None}, {"ts": "yesterday"}, {"input_tokens": -3}, {"input_tokens": "12"}, {"output_tokens": 2.5},
    {"temperature": "hot"}, {"logprobs": "yes"}, {"logprobs": "maybe"}, {"model": True}, {"model": ""},
    {"status": 429}, {"reasoning_effort": 2048}, {"identity": {"end_user": "", "key_user": None, "key": "k-1"}},
    {"identity": {"end_user": None, "key_user": None, "key": None}}, {"prompt": [{"role": "system", "content": "s"},
                                                                                 {"role": "user", "content": "u"}]},
    {"system_prompt": None, "prompt": None}, {"input_tokens": "1e3", "max_output_tokens": 2**70},
])
def test_bad_and_odd_values_get_the_same_event_or_rejection(change):
    rec, extra = mapped_fixture_records()[0]
    rec = {**rec, **change}
    assert outcome(normalize_fields, rec, extra) == outcome(normalize, rec, extra)
