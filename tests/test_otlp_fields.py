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


# -- the fast paths give what the reference gives -----------------------------------------------------------
from unittest import mock  # noqa: E402

from distillguard.ingest import normalize as normalize_module  # noqa: E402
from distillguard.ingest.fields import CHECK_ORDER, INT_LIMIT  # noqa: E402

ODD_VALUES = [None, "", " ", "x", "12", " 12 ", "1e3", "-1", "ok", "OK", " ok", "error", "success", "refused",
              "rate_limited", "throttled", "429", "200", "yes", "true", "high", 0, 1, -1, 7, 2**63 - 1, INT_LIMIT, 2**70,
              True, False, 0.0, -0.0, 0.7, 2.5, -1.5, float("nan"), float("inf"), float("-inf"), 1e300,
              ["a"], [{"role": "user", "content": "u"}], {"role": "system", "content": "s"}, 1772582400, 1772582400.5]


@pytest.mark.parametrize("field", CHECK_ORDER)
def test_fields_taken_as_they_are_get_what_the_coercions_give(field):
    """normalize_fields skips the per-field coercions for values they keep unchanged: with that shortcut off
    (every record through the coercions), every odd value in every field must come out the same, rejections
    included."""
    base, extra = mapped_fixture_records()[0]
    for value in ODD_VALUES:
        rec = {**base, field: value}
        fast = repr(outcome(normalize_fields, rec, extra))  # repr: 1, 1.0 and True differ; nan equals nan
        with mock.patch.object(normalize_module, "_kept_as_is", lambda raw: False):
            assert repr(outcome(normalize_fields, rec, extra)) == fast, (field, value)
            assert repr(outcome(normalize, rec, extra)) == fast, (field, value)


def test_protobuf_attributes_read_in_their_usual_member_first_keep_every_type():
    """Token counts are read as int_value and temperatures as double_value first; a value of any other type
    (or a zero) is read through the oneof, so the attribute keeps its type."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

    values = [AnyValue(int_value=0), AnyValue(int_value=7), AnyValue(double_value=0.0), AnyValue(double_value=2.5),
              AnyValue(string_value=""), AnyValue(string_value="12"), AnyValue(bool_value=False),
              AnyValue(bool_value=True), AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=3)])), AnyValue()]
    expected = [0, 7, 0.0, 2.5, None, "12", False, True, [3], None]
    for key in ("gen_ai.usage.input_tokens", "gen_ai.request.temperature", "gen_ai.request.model"):
        req = ExportTraceServiceRequest()
        spans = req.resource_spans.add().scope_spans.add()
        for i, v in enumerate(values):
            s = spans.spans.add(name="chat", span_id=bytes([i + 1]) * 8)
            s.attributes.append(KeyValue(key=key, value=v))
        got = [it.attrs[key] for it in decode(req.SerializeToString(), "application/x-protobuf", "traces")]
        assert repr(got) == repr(["" if e is None and v.WhichOneof("value") == "string_value" else e
                                  for e, v in zip(expected, values)]), key
