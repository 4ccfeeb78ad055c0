"""Behaviour features: hand-computed values, SQL snapshots per backend, and the stream fold against the batch."""
import datetime as dt
from pathlib import Path

import ibis
import pyarrow as pa
import pytest
from conftest import snapshot

from distillguard.features import account_features, events_table
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


SNAPSHOTS = Path(__file__).parent / "snapshots" / "test_features"


@pytest.mark.parametrize("backend", ["duckdb", "pyspark"])
def test_feature_sql_matches_the_snapshot(backend):
    """The SQL each backend runs for the features, compiled from the unbound expression (no connection, no
    Spark session: Ibis's own PySpark dialect; the Spark engine patches three operations, docs/spark.md).
    A change to a feature shows here as a reviewed diff; regenerate with DISTILLGUARD_UPDATE_SNAPSHOTS=1."""
    if backend == "pyspark":
        pytest.importorskip("pyspark")
        ibis.pyspark  # noqa: B018 - loading the backend registers its compile options; no session is started
    sql = ibis.to_sql(account_features(events_table()), dialect=backend).strip() + "\n"
    assert sql == snapshot(SNAPSHOTS / backend / "out.sql", sql), f"SQL of the features changed on {backend}: review, then regenerate the snapshot"


def _event_rows():
    """Events with nulls and edge values in every field a feature reads."""
    values = {
        "n": [None, 1, 2], "logprobs": [None, False, True], "top_logprobs": [None, 0, 5], "temperature": [None, 0.0, 0.7],
        "reasoning_effort": [None, "HIGH", "low"], "is_batch": [None, True], "status": [None, "ok", "refused", "error"],
        "conversation_id": [None, "c1"], "prompt": [None, "", "héllo"], "input_tokens": [None, 7], "max_output_tokens": [None, 99],
    }
    rows = []
    for i in range(24):
        row = {k: v[i % len(v)] for k, v in values.items()}
        rows.append(dict(row, ts=T0 + dt.timedelta(hours=5 * i, seconds=i), account_id=f"a{i % 3}", model=["m", None][i % 2]))
    return rows


def test_every_per_event_value_means_the_same_in_sql_and_in_python():
    """The one declaration evaluates to the same value per event in the batch (DuckDB) and the stream (Python)."""
    from distillguard.features import BEHAVIOUR
    from distillguard.features.aggregators import to_us

    rows = _event_rows()
    store = EventStore(":memory:")
    store.append_events([_events(rows)])
    t = store.ibis().table("events").order_by("event_id")
    exprs = {a.names[0]: a.x for a in BEHAVIOUR.aggregators if getattr(a, "x", None) is not None}
    sql = t.select(**{k: e.ibis(t) for k, e in exprs.items()}).to_pyarrow().to_pylist()
    stored = t.to_pyarrow().to_pylist()
    for ev, want in zip(stored, sql):
        for name, e in exprs.items():
            got = e.py()(ev, to_us(ev["ts"]))
            want_v = want[name]
            if hasattr(want_v, "timestamp"):
                want_v = to_us(want_v)
            if name == "active_days":
                want_v = (want_v - dt.date(1970, 1, 1)).days
            assert got == want_v, (name, ev, got, want_v)


def test_partials_merge_to_the_fold_of_all_events_and_survive_json():
    """Per-day partial aggregates merge into the whole (incremental scans); a partial round-trips through JSON."""
    import orjson

    from distillguard.features import BEHAVIOUR

    rows = sorted(_event_rows(), key=lambda r: r["ts"])
    for acc in ("a0", "a1"):
        mine = [r for r in rows if r["account_id"] == acc]
        whole, first, second = BEHAVIOUR.start(), BEHAVIOUR.start(), BEHAVIOUR.start()
        for i, ev in enumerate(mine):
            BEHAVIOUR.add(whole, ev)
            BEHAVIOUR.add(first if i < len(mine) // 2 else second, ev)
        merged = BEHAVIOUR.merge(first, second)
        ctx = {"released": {"m": to_us_of(rows[0]["ts"])}, "start_us": to_us_of(rows[0]["ts"])}
        want = BEHAVIOUR.row(acc, whole, ctx)
        again = BEHAVIOUR.load(orjson.loads(orjson.dumps(BEHAVIOUR.dump(merged))))
        for got in (BEHAVIOUR.row(acc, merged, ctx), BEHAVIOUR.row(acc, again, ctx)):
            assert got.keys() == want.keys()
            for k, v in want.items():
                assert got[k] == (v if v is None or isinstance(v, (str, dt.datetime)) else pytest.approx(v)), (acc, k)


def to_us_of(ts):
    from distillguard.features.aggregators import to_us

    return to_us(ts)


def test_distinct_counts_exactly_up_to_k_then_estimates_and_merges():
    from distillguard.features.aggregators import Distinct
    from distillguard.features.expr import col

    d = Distinct("d", col("v"), k=1024)
    exact, big, other = d.start(), d.start(), d.start()
    for i in range(1000):
        d.add(exact, {"v": f"x{i % 500}"}, 0)
    assert d.values(exact, None)["d"] == 500
    for i in range(20_000):
        d.add(big, {"v": f"x{i}"}, 0)
        d.add(other, {"v": f"x{i + 10_000}"}, 0)
    assert len(big[0]) == 1024  # bounded memory
    assert d.values(big, None)["d"] == pytest.approx(20_000, rel=0.1)
    assert d.values(d.merge(big, other), None)["d"] == pytest.approx(30_000, rel=0.1)
    assert d.values(d.merge(exact, big), None)["d"] == pytest.approx(20_000, rel=0.1)  # x0..x499 counted once


def test_end_user_sample_takes_the_busiest_end_users_of_router_accounts_only_and_pools_the_others():
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
    got = {(r["account_id"], r["end_user"], r["busiest"]) for r in out}
    assert got == {("router", "big", True), ("router", "mid", True), ("router", "small", False),
                   ("openai", "s-1", True), ("openai", "s-2", True)}
    big = [r for r in out if r["end_user"] == "big"]
    assert len(big) == 2 and {r["eu_events"] for r in big} == {6}
    assert {r["account_eu_events"] for r in out if r["account_id"] == "router"} == {10}


def test_gaps_keep_every_gap_up_to_the_sample_then_a_bounded_reservoir():
    """The fold keeps each gap while under the sample (inlined), then samples through ``keep``: bounded, mean exact."""
    from distillguard.features.timing import Gaps

    g = Gaps("mean", "std", "median", sample=8)
    few, many = g.start(), g.start()
    times = [i * 2_000_000 + (i % 3) * 1_000_000 for i in range(100)]
    for us in times[:6]:
        g.add(few, {}, us)
    assert few[5] == [(b - a) / 1e6 for a, b in zip(times[:5], times[1:6])]
    for us in times:
        g.add(many, {}, us)
    gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
    assert many[0] == 99 and len(many[5]) == 8 and set(many[5]) <= set(gaps)
    assert g.values(many, None)["mean"] == pytest.approx(sum(gaps) / len(gaps))


def test_partials_kept_in_place_fold_and_dump_as_each_aggregator_alone():
    """A feature set keeps partials of width > 1 (means, distincts, gaps, peak hour) in one list per account; folded,
    merged and dumped they are what each aggregator gives on its own partial, past every bound (sketch, reservoir,
    trimmed hours) too, and the JSON form is the aggregators' own."""
    import random

    import orjson

    from distillguard.features.aggregators import Count, Distinct, Mean
    from distillguard.features.expr import col
    from distillguard.features.featureset import FeatureSet
    from distillguard.features.timing import Gaps, HourHistogram, PeakHour

    units = (Count("n"), Distinct("d", col("v"), k=8), Mean("m", col("x")), Gaps("gm", "gs", "gmed", sample=4),
             Distinct("h", col("v"), hashed=True, k=8), PeakHour("p", keep=3), HourHistogram("e", "a"))
    fs = FeatureSet(*units)
    events = [({"v": f"v{i % 13}", "x": None if i % 5 == 0 else i * 0.5}, 1_700_000_000_000_000 + i * 1_900_000_000)
              for i in range(60)]
    alone = [u.start() for u in units]
    parts, first, second = fs.start(), fs.start(), fs.start()
    random.seed(3)
    for i, (ev, us) in enumerate(events):
        fs.add(parts, ev, us)
        fs.add(first if i < 30 else second, ev, us)
    random.seed(3)
    for ev, us in events:
        alone = [u.add(s, ev, us) for u, s in zip(units, alone)]
    assert len(parts) == 1 + 2 + 2 + 6 + 2 + 2 + 1
    assert orjson.dumps(fs.dump(parts)) == orjson.dumps([u.dump(s) for u, s in zip(units, alone)])
    want = {k: v for u, s in zip(units, alone) for k, v in u.values(s, None).items()}
    assert fs.row("a", parts) == {"account_id": "a", **want}
    assert fs.row("a", fs.load(orjson.loads(orjson.dumps(fs.dump(parts))))) == fs.row("a", parts)
    merged = fs.row("a", fs.merge(first, second))
    exact = ("n", "d", "h", "m", "gm", "p", "a")
    assert {k: merged[k] for k in exact} == {k: want[k] for k in exact}
