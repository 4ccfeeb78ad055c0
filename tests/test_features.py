"""Behaviour features: hand-computed values on a tiny store, and portable SQL."""
import datetime as dt

import ibis
import pyarrow as pa
import pytest

from distillguard.features import FEATURE_COLUMNS, account_features, events_table
from distillguard.schema import EVENT_SCHEMA
from distillguard.store import EventStore

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def _events(rows):
    full = [{"event_id": str(i), **r} for i, r in enumerate(rows)]
    return pa.Table.from_pylist(full, schema=EVENT_SCHEMA)


@pytest.fixture
def features():
    rows = []
    # "bot": one request every hour for 48 hours, 10 in / 1000 out, n=2, logprobs on half.
    for h in range(48):
        rows.append(dict(ts=T0 + dt.timedelta(hours=h), account_id="bot", model="old", input_tokens=10,
                         output_tokens=1000, n=2, logprobs=h % 2 == 0, temperature=0.0, prompt=f"q{h}"))
    # "human": 4 requests in one conversation, in two hours of one day.
    for i, m in enumerate([0, 5, 60, 70]):
        rows.append(dict(ts=T0 + dt.timedelta(minutes=m), account_id="human", model="old", input_tokens=100,
                         output_tokens=100, conversation_id="c1", prompt="same"))
    # "pivot": adopts model "new" (first seen 3 days in) within the hour.
    for i in range(4):
        rows.append(dict(ts=T0 + dt.timedelta(days=3, minutes=10 * i), account_id="pivot",
                         model="new" if i else "old", prompt=f"p{i}"))
    store = EventStore(":memory:")
    store.append_events([_events(rows)])
    out = account_features(store.ibis().table("events")).to_pyarrow().to_pylist()
    return {r["account_id"]: r for r in out}


def test_volume_tokens_and_parameters(features):
    bot = features["bot"]
    assert bot["n_events"] == 48
    assert bot["output_ratio"] == pytest.approx(100.0)
    assert bot["fanout_share"] == 1.0 and bot["n_mean"] == 2.0
    assert bot["logprobs_share"] == pytest.approx(0.5)
    assert bot["temperature_zero_share"] == 1.0
    assert bot["prompt_distinct_share"] == 1.0


def test_timing_regular_round_the_clock_vs_human(features):
    bot, human = features["bot"], features["human"]
    assert bot["hour_entropy"] == pytest.approx(1.0)  # every hour of the day equally
    assert bot["gap_cv"] == pytest.approx(0.0, abs=1e-9)  # perfectly regular
    assert bot["gap_median"] == pytest.approx(3600)
    assert human["active_hours"] == 2
    assert human["hour_entropy"] < 0.3
    assert human["conversation_share"] == pytest.approx(0.25)  # one thread, four turns
    assert bot["conversation_share"] == 1.0  # no threads: every request stands alone


def test_model_pivot_share(features):
    assert features["pivot"]["pivot_share"] == pytest.approx(0.75)
    assert features["bot"]["pivot_share"] == 0.0


def test_features_are_an_unbound_expression_that_compiles_to_sql():
    sql = ibis.to_sql(account_features(events_table()), dialect="duckdb")
    assert "GROUP BY" in sql and "account_id" in sql


def test_feature_columns_are_declared():
    assert FEATURE_COLUMNS[0] == "account_id" and "hour_entropy" in FEATURE_COLUMNS


def test_end_user_sample_takes_the_busiest_end_users_of_router_accounts_only():
    import json

    from distillguard.features.samples import end_user_sample

    rows = []
    for u, n in (("big", 6), ("mid", 3), ("small", 1)):  # a router with three end users
        for i in range(n):
            rows.append(dict(ts=T0 + dt.timedelta(minutes=len(rows)), account_id="router", prompt=f"{u} {i}",
                             extra=json.dumps({"end_user": u})))
    rows.append(dict(ts=T0, account_id="router", prompt="no end user"))
    rows.append(dict(ts=T0, account_id="app", prompt="one end user only", extra=json.dumps({"user": "u1"})))
    rows.append(dict(ts=T0, account_id="openai", prompt="x", extra='{"safety_identifier": "s-1", "n_retry": 2}'))
    rows.append(dict(ts=T0, account_id="openai", prompt="y", extra='{"safety_identifier": "s-2"}'))
    store = EventStore(":memory:")
    store.append_events([_events(rows)])
    out = end_user_sample(store.ibis().table("events"), top_end_users=2, per_end_user=2).to_pyarrow().to_pylist()
    got = {(r["account_id"], r["end_user"]) for r in out}
    assert got == {("router", "big"), ("router", "mid"), ("openai", "s-1"), ("openai", "s-2")}
    big = [r for r in out if r["end_user"] == "big"]
    assert len(big) == 2 and {r["eu_events"] for r in big} == {6}
    assert {r["account_eu_events"] for r in out if r["account_id"] == "router"} == {10}
