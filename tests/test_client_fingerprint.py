"""Client fingerprints (JA4 / JA3 TLS, HTTP/2 SETTINGS): one canonical field from every intake path, and a link kind
that ties accounts through a rare fingerprint whatever IPs and user agents they rotate, but never through a popular
library's, nor through values a client draws per connection."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import duckdb
import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from distillguard.ingest import ingest_files
from distillguard.store import EventStore

RARE = "t13d0912h2_a4b1c3d2e5f6_9c8b7a6d5e4f"  # the operator's harvest tooling
POPULAR = ("t13d1516h2_8daaf6152771_02713d6af862", "t13d1517h2_8daaf6152771_b1ff8ab2d16f")  # everyone's browsers
BROWSERS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0", "Mozilla/5.0 (Macintosh) Safari/605.1.15",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0", "Mozilla/5.0 (iPhone) Mobile/15E148")
TOPICS = ("tide pools", "sourdough starters", "binary search", "the French revolution", "compound interest",
          "photosynthesis", "TCP handshakes", "bike gears", "tax brackets", "volcanoes", "git rebase", "jazz chords")
ASKS = ("Can you give me a short summary of {t}?", "What should a beginner know about {t}?", "Any tips on {t} for me?",
        "Write two sentences about {t}.", "Is there a good book on {t}?")
COT = ("Think step by step and show all of your reasoning before answering: {q}",
       "Reason through this carefully, writing out every intermediate step: {q}",
       "Give your complete chain of thought, then the final answer: {q}")
QUESTIONS = ("how many primes are below {n}?", "what is {n} times 37?", "prove that {n} is not a perfect square",
             "if a train leaves at {n} km/h, when does it arrive?", "how many ways can {n} items be paired?")
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _stored(path, fmt=None) -> dict:
    """event_id -> client_fingerprint of a file ingested into a real store."""
    with EventStore(":memory:") as store:
        result = ingest_files([str(path)], store, fmt=fmt, progress=False)
        assert result.quarantined == 0
        return dict(store.con.execute("SELECT event_id, client_fingerprint FROM events").fetchall())


# -- intake ------------------------------------------------------------------------------------------------------


def test_fingerprint_aliases_map_onto_one_field_ja4_first(tmp_path):
    rows = [
        {"event_id": "ja4", "ts": "2026-03-01T08:00:00Z", "account_id": "a", "ja4": "t13d1516h2_x_y"},
        {"event_id": "waf", "ts": "2026-03-01T08:00:00Z", "account_id": "a", "ja4Fingerprint": "t13d1516h2_x_z"},
        {"event_id": "cf", "ts": "2026-03-01T08:00:00Z", "account_id": "a", "JA3Hash": "e7d705a3286e19ea42f587b344ee6865"},
        {"event_id": "h2", "ts": "2026-03-01T08:00:00Z", "account_id": "a", "h2_settings_fp": "1:65536;4:6291456|15663105"},
        {"event_id": "both", "ts": "2026-03-01T08:00:00Z", "account_id": "a", "ja3": "e7d705a3", "ja4": "t13d_first",
         "http2_fingerprint": "2:0"},
        {"event_id": "canon", "ts": "2026-03-01T08:00:00Z", "account_id": "a", "client_fingerprint": "mine", "ja4": "t13"},
        {"event_id": "none", "ts": "2026-03-01T08:00:00Z", "account_id": "a"},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _stored(path) == {"ja4": "t13d1516h2_x_y", "waf": "t13d1516h2_x_z", "cf": "e7d705a3286e19ea42f587b344ee6865",
                             "h2": "1:65536;4:6291456|15663105", "both": "t13d_first", "canon": "mine", "none": None}
    table = pa.table({"request_id": ["c1", "c2"], "timestamp": ["2026-03-01T08:00:00Z"] * 2, "user": ["a", "b"],
                      "ja3_hash": ["e7d705a3", None], "tls_fingerprint": ["ignored", "tls-b"]})
    pacsv.write_csv(table, tmp_path / "events.csv")
    pq.write_table(table, tmp_path / "events.parquet")
    assert _stored(tmp_path / "events.csv") == _stored(tmp_path / "events.parquet") == {"c1": "e7d705a3", "c2": "tls-b"}


def test_otlp_span_attribute_tls_client_ja3(tmp_path):
    """OpenTelemetry's semantic convention for the TLS client fingerprint, on the model-call span."""
    from pathlib import Path

    doc = json.loads((Path(__file__).parent / "data" / "otel" / "openinference.traces.json").read_text())
    span = next(s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"] if s["name"] == "ChatCompletion")
    span["attributes"].append({"key": "tls.client.ja3", "value": {"stringValue": "e7d705a3286e19ea42f587b344ee6865"}})
    path = tmp_path / "calls.traces.json"
    path.write_text(json.dumps(doc))
    assert list(_stored(path).values()) == ["e7d705a3286e19ea42f587b344ee6865"]


def _traced_request(ja3: str) -> bytes:
    """openai-v2's capture (the model span names nobody; the app's request span names the caller), with the TLS
    fingerprint on the app's server span, where the handshake is seen."""
    from pathlib import Path

    doc = json.loads((Path(__file__).parent / "data" / "otel" / "openai-v2-latest-span.traces.json").read_text())
    server = next(s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
                  if s["name"] == "handle_request")
    server["attributes"].append({"key": "tls.client.ja3", "value": {"stringValue": ja3}})
    return json.dumps(doc).encode()


def test_otlp_takes_the_fingerprint_from_the_server_span_of_the_calls_trace(tmp_path):
    path = tmp_path / "calls.traces.json"
    path.write_bytes(_traced_request("e7d705a3286e19ea42f587b344ee6865"))
    with EventStore(":memory:") as store:
        assert ingest_files([str(path)], store, progress=False).accepted == 1
        assert store.con.execute("SELECT account_id, client_fingerprint FROM events").fetchall() == [
            ("acct-capture-1", "e7d705a3286e19ea42f587b344ee6865")]


def test_the_services_otlp_intake_takes_it_from_the_trace_too(tmp_path):
    from test_serve_otlp import JSON, TOKENS, client, post, stored

    from distillguard.serve import Engine, EngineConfig
    from distillguard.serve.testing import fixture_store, serving

    engine = Engine(EngineConfig(db=str(fixture_store(tmp_path / "dg.duckdb")), refresh_seconds=3600, flush_seconds=0.2))
    with serving(engine, tokens=TOKENS) as url, client(url) as c:
        assert post(c, "traces", _traced_request("e7d705a3286e19ea42f587b344ee6865"), JSON).status_code == 200
        ev, = stored(engine, "account_id = 'acct-capture-1'")
    assert ev["client_fingerprint"] == "e7d705a3286e19ea42f587b344ee6865"


def test_litellm_spend_log_headers_carry_the_cdns_fingerprint(tmp_path):
    row = {"request_id": "ll-1", "api_key": "hk-1", "user": "u-1", "model": "m", "startTime": "2026-03-02T09:00:00+00:00",
           "prompt_tokens": 7, "completion_tokens": 70, "spend": 0.01,
           "metadata": {"headers": {"CloudFront-Viewer-JA3-Fingerprint": "e7d705a3",
                                    "CloudFront-Viewer-JA4-Fingerprint": "t13d1516h2_8daaf6152771_02713d6af862"}}}
    path = tmp_path / "spend.json"
    path.write_text(json.dumps([row]))
    assert _stored(path, fmt="litellm") == {"ll-1": "t13d1516h2_8daaf6152771_02713d6af862"}


def test_a_fingerprint_that_is_not_text_is_quarantined_and_a_number_becomes_text(tmp_path):
    rows = [{"ts": "2026-03-01T08:00:00Z", "account_id": "a", "ja4": {"a": "t13d"}},
            {"ts": "2026-03-01T08:00:00Z", "account_id": "a", "ja3": ["x", "y"]},
            {"event_id": "n", "ts": "2026-03-01T08:00:00Z", "account_id": "a", "ja3": 771}]
    path, quarantine = tmp_path / "events.jsonl", tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with EventStore(":memory:") as store:
        result = ingest_files([str(path)], store, quarantine_path=str(quarantine), progress=False)
        assert (result.read, result.accepted, result.quarantined) == (3, 1, 2)
        assert store.con.execute("SELECT client_fingerprint FROM events").fetchall() == [("771",)]
    bad = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert [(b["line"], b["reason"]) for b in bad] == [(1, "wrong_type"), (2, "wrong_type")]
    assert all("client_fingerprint" in b["detail"] for b in bad)


def test_events_without_a_fingerprint_keep_the_content_ids_they_always_had(tmp_path):
    """The id of an event with no id is its content's MD5: adding the column must not re-id old logs (a re-ingest
    into a store written before would store every event twice). The literal is the id issued before the column."""
    path = tmp_path / "rec.jsonl"
    path.write_text(json.dumps({"ts": "2026-03-01T08:00:00Z", "account_id": "acct-1", "model": "m", "prompt": "hello",
                                "user_agent": "curl/8.5", "input_tokens": 5}) + "\n")
    assert list(_stored(path)) == ["076d00fe98b61e4bcd698e65ffc15e8e"]
    with_fp = tmp_path / "fp.jsonl"
    with_fp.write_text(path.read_text().replace('"input_tokens"', '"ja4": "t13d", "input_tokens"'))
    assert list(_stored(with_fp)) != ["076d00fe98b61e4bcd698e65ffc15e8e"]  # a fingerprint is content


def test_a_store_written_before_the_column_gains_it_and_keeps_its_events(tmp_path):
    from distillguard.schema import EVENT_SCHEMA
    from distillguard.store.duckdb_store import ddl_for

    db = tmp_path / "old.duckdb"
    old = pa.schema([f for f in EVENT_SCHEMA if f.name != "client_fingerprint"])
    con = duckdb.connect(str(db))
    con.execute(ddl_for("events", old))
    con.execute("INSERT INTO events (event_id, ts, account_id, user_agent) VALUES ('old-1', TIMESTAMPTZ '2026-03-01 08:00:00+00', 'a', 'ua')")
    con.close()
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps({"event_id": "new-1", "ts": "2026-03-01T09:00:00Z", "account_id": "a", "ja4": "t13d"}) + "\n")
    with EventStore(db) as store:
        assert ingest_files([str(path)], store, progress=False).accepted == 1
        rows = store.con.execute("SELECT event_id, user_agent, client_fingerprint FROM events ORDER BY event_id").fetchall()
    assert rows == [("new-1", None, "t13d"), ("old-1", "ua", None)]


# -- linkage: a real scan ----------------------------------------------------------------------------------------


def _traffic(path, seed: int = 7) -> None:
    """240 ordinary users on two popular browser fingerprints (200 and 40 of them); a ring of 6 harvesting accounts
    on the operator's rare fingerprint, each request from another IP and browser user agent; 6 accounts whose
    client draws a new fingerprint per connection from a small space (so values collide across them)."""
    rng = random.Random(seed)
    rows = []

    def at():
        return (T0 + timedelta(seconds=rng.randint(0, 3 * 86400))).isoformat()

    for a in range(240):
        ip = f"73.{a // 200}.{a % 200}.{rng.randint(2, 250)}"
        for _ in range(rng.randint(8, 20)):
            rows.append({"account_id": f"user-{a:03d}", "ts": at(), "model": "m-1", "client_ip": ip,
                         "user_agent": BROWSERS[a % 4], "ja4": POPULAR[a >= 200],
                         "prompt": rng.choice(ASKS).format(t=rng.choice(TOPICS)),
                         "input_tokens": rng.randint(10, 40), "output_tokens": rng.randint(50, 300)})
    for a in range(6):
        for _ in range(40):
            rows.append({"account_id": f"ring-{a}", "ts": at(), "model": "m-1",
                         "client_ip": ".".join(str(rng.randint(11, 200)) for _ in range(4)),
                         "user_agent": rng.choice(BROWSERS), "ja4": RARE, "max_tokens": 4096,
                         "prompt": rng.choice(COT).format(q=rng.choice(QUESTIONS).format(n=rng.randint(10, 9999))),
                         "input_tokens": rng.randint(20, 40), "output_tokens": rng.randint(800, 2000)})
    for a in range(6):
        for _ in range(20):
            rows.append({"account_id": f"rand-{a}", "ts": at(), "model": "m-1", "client_ip": f"88.1.{a}.9",
                         "user_agent": BROWSERS[a % 4], "h2_settings_fp": f"2:{rng.randint(0, 40)}:3:100:4:65535",
                         "prompt": rng.choice(ASKS).format(t=rng.choice(TOPICS)),
                         "input_tokens": rng.randint(10, 40), "output_tokens": rng.randint(50, 300)})
    rows.sort(key=lambda r: r["ts"])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """The traffic scanned by the CLI into a real store (what ``serve`` reads)."""
    where = tmp_path_factory.mktemp("clientfp")
    _traffic(where / "events.jsonl")
    p = subprocess.run([sys.executable, "-m", "distillguard.cli", "scan", str(where / "events.jsonl"), "--db",
                        str(where / "dg.duckdb"), "--out", str(where / "scan"), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return where


def test_a_rare_fingerprint_links_the_ring_across_rotating_ips_and_user_agents(scanned):
    accounts = {r["account_id"]: r for r in pq.read_table(scanned / "scan" / "accounts.parquet").to_pylist()}
    ring = {accounts[f"ring-{i}"]["campaign_id"] for i in range(6)}
    assert len(ring) == 1 and None not in ring
    campaign = next(c for c in json.loads((scanned / "scan" / "campaigns.json").read_text())["campaigns"]
                    if c["campaign_id"] in ring)
    shared = {(s["kind"], s["value"]): s["accounts"] for s in campaign["shared"]}
    assert shared[("client_fingerprint", RARE)] == 6
    assert campaign["link_coverage"]["client_fingerprint"] == 1.0
    assert not any(k in ("client_ip", "user_agent") for k, _ in shared)  # rotated: nothing else of the client is shared
    assert "SHARED_INFRA" in accounts["ring-0"]["reasons"]


def test_the_console_graph_draws_the_fingerprint_hub(scanned):
    from distillguard.console.data import graph_data

    campaign = json.loads((scanned / "scan" / "campaigns.json").read_text())["campaigns"][0]
    con = duckdb.connect(str(scanned / "dg.duckdb"), read_only=True)
    graph = graph_data(con, campaign)
    hub = f"h:client_fingerprint:{RARE}"
    assert hub in {n["data"]["id"] for n in graph["nodes"]}
    assert sorted(e["data"]["source"] for e in graph["edges"] if e["data"]["target"] == hub) == [
        f"a:ring-{i}" for i in range(6)]


def test_popular_and_per_connection_fingerprints_link_nobody(scanned):
    from distillguard.link import load_rules
    from distillguard.link.memberships import infrastructure

    with EventStore(scanned / "dg.duckdb") as store:
        held = infrastructure(store.ibis().table("events")).to_pyarrow().to_pylist()
        n = store.con.execute("SELECT count(DISTINCT account_id) FROM events").fetchone()[0]
    holders: dict[str, set] = {}
    for r in held:
        if r["kind"] == "client_fingerprint":
            holders.setdefault(r["value"], set()).add(r["account_id"])
    rule = next(r for r in load_rules() if r.kind == "client_fingerprint")
    assert {v: len(a) for v, a in holders.items()} == {POPULAR[0]: 200, POPULAR[1]: 40, RARE: 6}  # rand-*: none held
    assert rule.hub_weight(200, n) == 0 and rule.hub_weight(6, n) > 0
    # 40 holders is under the small-scan floor (50 holders below 1,000 accounts), as for a user agent: a weak
    # link among accounts that share nothing else, which forms no campaign
    assert 0 < rule.hub_weight(40, n) < rule.hub_weight(6, n) / 2
    accounts = pq.read_table(scanned / "scan" / "accounts.parquet").to_pylist()
    assert all(r["campaign_id"] is None for r in accounts if not r["account_id"].startswith("ring-"))
    indicators = duckdb.connect(str(scanned / "dg.duckdb"), read_only=True).execute(
        "SELECT DISTINCT value FROM campaign_indicators WHERE kind = 'client_fingerprint'").fetchall()
    assert indicators == [(RARE,)]


def test_the_decision_service_links_a_new_account_by_its_requests_fingerprint(scanned):
    """A real service on the scanned store: the fingerprint of one request ties a never-seen account to the ring,
    under the canonical name and under an alias, and at signup; a popular browser's fingerprint ties nobody."""
    from distillguard.serve import Engine, EngineConfig
    from distillguard.serve.testing import RoleAuth, serving

    db = scanned / "dg.duckdb"
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, flush_seconds=0.2))

    def request(acc, **fp):
        return {"account_id": acc, "client_ip": "192.0.2.55", "user_agent": BROWSERS[0], "model": "m-1",
                "prompt": "What should a beginner know about volcanoes?", **fp}

    def linked(decision):
        return [s for r in decision["reasons"] if r["code"] == "SHARED_INFRA" for s in r["details"].get("shared", [])]

    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        by_field = c.post("/v1/decide", json=request("newcomer-1", client_fingerprint=RARE)).json()
        by_alias = c.post("/v1/decide", json=request("newcomer-2", ja4=RARE)).json()
        popular = c.post("/v1/decide", json=request("newcomer-3", client_fingerprint=POPULAR[0])).json()
        bare = c.post("/v1/decide", json=request("newcomer-4")).json()
        signup = c.post("/v1/accounts/assess", json={"account_id": "signup-1", "client_fingerprint": RARE}).json()
    for d in (by_field, by_alias, signup):
        assert linked(d) == [{"kind": "client_fingerprint", "value": RARE}], d
        assert d["risk"] > bare["risk"]
    assert linked(popular) == [] and popular["risk"] == bare["risk"]


@pytest.mark.slow  # a Spark session
@pytest.mark.skipif(__import__("shutil").which("java") is None or __import__("importlib").util.find_spec("pyspark") is None,
                    reason="PySpark (distillguard[spark]) and Java 17 are needed")
def test_spark_reads_the_fingerprint_and_gives_the_content_ids_duckdb_gives(tmp_path):
    """Parquet without event ids: Spark's canonical events carry the same fingerprint and the same content ids as
    the DuckDB ingest, for rows with a fingerprint (an alias column) and rows without."""
    from distillguard.engines.spark import get_session
    from distillguard.engines.spark_inputs import read_events

    table = pa.table({"timestamp": ["2026-03-01T08:00:00Z", "2026-03-01T08:01:00Z", "2026-03-01T08:02:00Z"],
                      "user": ["a", "b", "c"], "prompt": ["hi", "hello", "hey"], "input_tokens": [3, 4, 5],
                      "JA4": ["t13d1516h2_x_y", None, "t13d0912h2_a_b"]})
    pq.write_table(table, tmp_path / "events.parquet")
    events, result = read_events(get_session("local[2]", app_name="distillguard-tests"), [tmp_path / "events.parquet"])
    spark_rows = {(r["event_id"], r["client_fingerprint"]) for r in events.select("event_id", "client_fingerprint").collect()}
    assert result.accepted == 3
    assert spark_rows == set(_stored(tmp_path / "events.parquet").items())
