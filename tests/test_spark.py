"""The Spark engine (``scan --engine spark``) against the DuckDB engine on a simulated sample.

One SparkSession (``local[2]``) serves the whole test session. The slow tests
run in CI (``make test`` installs the ``spark`` extra and Java 17); they skip
only where PySpark or Java is missing.

Agreement asserted here (docs/spark.md, "Agreement with DuckDB"):
- the same action for every account and risks within 1e-6;
- every per-account feature within 1e-9 relative (``gap_median`` included:
  both engines take the exact, interpolated median);
- the same prompt sample, infrastructure memberships and activity buckets;
- the same ingest counts and quarantine reasons for a date-partitioned lake
  with alias column names and bad rows.
"""
from __future__ import annotations

import json
import math
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import run_main

RISK_TOL = 1e-6
FEATURE_RTOL = 1e-9

needs_spark = pytest.mark.skipif(
    shutil.which("java") is None or __import__("importlib").util.find_spec("pyspark") is None,
    reason="PySpark (distillguard[spark]) and Java 17 are needed",
)


@pytest.fixture(scope="session")
def spark():
    from distillguard.engines.spark import get_session

    session = get_session("local[2]", app_name="distillguard-tests")
    yield session


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The ``smoke`` preset (~7,000 events, 279 accounts, 10 campaigns)."""
    from distillguard.sim import simulate

    out = tmp_path_factory.mktemp("smoke")
    simulate(scenario="smoke", scale=1.0, seed=11, out=out, fmt="parquet", family="train", progress=False)
    return out


@pytest.fixture(scope="session")
def lake(sample, tmp_path_factory):
    """The sample as a lake ``events/date=YYYY-MM-DD/part-N.parquet`` with alias names and bad rows."""
    t = pq.read_table(sample / "events.parquet")
    names = {"event_id": "request_id", "ts": "timestamp", "account_id": "user"}
    t = t.rename_columns([names.get(c, c) for c in t.column_names]).append_column("region", pa.array(["eu"] * len(t)))
    t = t.cast(pa.schema([f.with_nullable(True) for f in t.schema]))
    root = tmp_path_factory.mktemp("lake") / "events"
    days = pc.strftime(t.column("timestamp"), format="%Y-%m-%d")
    for d in sorted(set(days.to_pylist())):
        part = t.filter(pc.equal(days, d))
        (root / f"date={d}").mkdir(parents=True)
        half = len(part) // 2
        pq.write_table(part.slice(0, half), root / f"date={d}" / "part-0.parquet")
        pq.write_table(part.slice(half), root / f"date={d}" / "part-1.parquet")
    bad = t.slice(0, 5).to_pylist()
    bad[0]["timestamp"] = None  # missing_ts
    bad[1]["user"] = bad[1]["api_key_id"] = None  # missing_subject
    bad[2]["input_tokens"], bad[2]["request_id"] = -5, "negative"  # negative_value
    bad[4] = dict(bad[3])  # an event already in the lake, twice more: duplicates, kept once
    pq.write_table(pa.Table.from_pylist(bad, schema=t.schema), root / f"date={min(days.to_pylist())}" / "part-x.parquet")
    (root / "_SUCCESS").write_text("")
    return root


def _duckdb_scan(events_path, accounts_path):
    from distillguard.ingest import ingest_files
    from distillguard.scan import run_scan, store_inputs
    from distillguard.store import EventStore

    store = EventStore(":memory:")
    ingest_files([str(events_path)], store, accounts=str(accounts_path), progress=False)
    return store, run_scan(*store_inputs(store))


def _by(table: pa.Table, keys):
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def _close(a, b, rtol) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))
    return a == b


@pytest.mark.slow
@needs_spark
def test_spark_scan_agrees_with_duckdb(spark, sample, tmp_path):
    from distillguard.engines.spark import scan_inputs
    from distillguard.features import account_features
    from distillguard.features.samples import activity_buckets, end_user_sample, prompt_sample
    from distillguard.link.memberships import infrastructure
    from distillguard.scan import run_scan

    (sev, smeta), counts = scan_inputs([sample / "events.parquet"], tmp_path / "q.jsonl",
                                       accounts=sample / "accounts.parquet", spark=spark)
    store, duck = _duckdb_scan(sample / "events.parquet", sample / "accounts.parquet")
    dev = store.ibis().table("events")
    assert counts.read == counts.accepted == store.count("events")
    assert sev.schema() == dev.schema()

    # The stages' Ibis expressions give the same rows on both engines.
    fs, fd = account_features(sev).to_pyarrow(), account_features(dev).to_pyarrow()
    assert fs.schema == fd.schema
    rows_s, rows_d = _by(fs, ["account_id"]), _by(fd, ["account_id"])
    assert [r["account_id"] for r in rows_s] == [r["account_id"] for r in rows_d]
    for rs, rd in zip(rows_s, rows_d):
        for col in fs.column_names:
            assert _close(rs[col], rd[col], FEATURE_RTOL), (rs["account_id"], col, rs[col], rd[col])
    for expr, keys in ((prompt_sample, ["account_id", "prompt"]), (infrastructure, ["account_id", "kind", "value"]),
                       (activity_buckets, ["account_id", "bucket"]), (end_user_sample, ["account_id", "end_user", "prompt"])):
        assert _by(expr(sev).to_pyarrow(), keys) == _by(expr(dev).to_pyarrow(), keys), expr.__name__

    # The whole scan: same action for every account, risks within 1e-6, the same campaigns.
    spk = run_scan(sev, smeta)
    a, b = _by(spk.accounts, ["account_id"]), _by(duck.accounts, ["account_id"])
    assert [r["account_id"] for r in a] == [r["account_id"] for r in b]
    assert [r["action"] for r in a] == [r["action"] for r in b]
    off = [(x["account_id"], x["risk"], y["risk"], x["reasons"], y["reasons"]) for x, y in zip(a, b)
           if abs(x["risk"] - y["risk"]) > RISK_TOL]
    assert not off, off[:5]
    assert [r["campaign_id"] for r in a] == [r["campaign_id"] for r in b]
    assert [sorted(r["reasons"]) for r in a] == [sorted(r["reasons"]) for r in b]
    camps = lambda res: sorted((c["campaign_id"], c["n_accounts"], c["n_events"], c["first_seen"], c["last_seen"],
                                c["action"], len(c["timeline"])) for c in res.campaigns)
    assert camps(spk) == camps(duck)
    assert spk.n_events == duck.n_events
    store.close()


@pytest.mark.slow
@needs_spark
def test_cli_engine_spark_on_a_lake_matches_duckdb(spark, sample, lake, tmp_path, monkeypatch, capsys):
    runs = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / engine
        code, stdout, stderr = run_main(monkeypatch, capsys, "scan", lake, "--accounts", sample / "accounts.parquet",
                                     "--out", out, "--json", "-q", "--engine", engine, "--spark-master", "local[2]")
        assert code == 0, stderr
        report = json.loads(stdout.strip().splitlines()[-1])
        quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
        runs[engine] = report, quarantine, pq.read_table(out / "accounts.parquet")
        for name in ("accounts.parquet", "campaigns.json", "report.html", "quarantine.jsonl"):
            assert (out / name).exists(), (engine, name)
    (rd, qd, ad), (rs, qs, as_) = runs["duckdb"], runs["spark"]
    assert rs["ingest"] == rd["ingest"]
    ing = rs["ingest"]
    assert ing["read"] == ing["accepted"] + ing["quarantined"] + ing["duplicates"]
    assert (ing["quarantined"], ing["duplicates"]) == (3, 2)  # row 3 of the sample is there three times
    key = lambda q: (q["source"].rsplit("/", 1)[-1], q["line"], q["reason"])
    assert sorted(map(key, qs)) == sorted(map(key, qd))
    assert {q["reason"] for q in qs} == {"missing_ts", "missing_subject", "negative_value"}
    assert all(q["source"].startswith(str(lake)) for q in qs)
    assert as_.schema == ad.schema
    a, b = _by(as_, ["account_id"]), _by(ad, ["account_id"])
    assert [r["action"] for r in a] == [r["action"] for r in b]
    assert max(abs(x["risk"] - y["risk"]) for x, y in zip(a, b)) <= RISK_TOL


def test_unknown_engine_is_a_usage_error(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "scan", tmp_path, "--out", tmp_path / "o", "--engine", "flink")
    assert code == 2
    assert err.strip().splitlines() == ["distillguard: error: unknown engine 'flink' (choose duckdb or spark)"]
