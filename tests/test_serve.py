"""distillguard serve: a real uvicorn server on loopback, driven over HTTP with httpx."""
from __future__ import annotations

from datetime import timedelta

import duckdb
import httpx
import pyarrow as pa
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import T0, TEMPLATE, RoleAuth, fixture_store, serving

ENFORCE = """
version: 1
mode: enforce
fail: {fail}
ttl_seconds: {{allow: 300, monitor: 300, challenge: 3600, throttle: 900, block: 86400}}
throttle: {{retry_after_seconds: 30, max_requests_per_minute: 5}}
challenge: {{kind: step_up_verification, url: https://verify.example.test/step-up}}
allowlist: {{accounts: [user-allow], orgs: []}}
serve: {{immunity_seconds: 120}}
rules:
  - {{id: allowlisted, priority: 0, when: {{allowlisted: true}}, action: allow}}
  - {{id: analyst-confirmed, priority: 5, when: {{any_reason: [ANALYST_CONFIRMED]}}, action: block}}
  - {{id: block-campaign-high-risk, priority: 10, when: {{risk_at_least: 0.97, in_campaign: true}}, action: block}}
  - {{id: throttle-high-risk, priority: 20, when: {{risk_at_least: 0.9}}, action: throttle}}
  - {{id: challenge-elevated, priority: 30, when: {{risk_at_least: 0.5}}, action: challenge}}
  - {{id: monitor, priority: 40, when: {{risk_at_least: 0.2}}, action: monitor}}
  - {{id: default, priority: 100, when: {{}}, action: allow}}
"""


def enforce_policy(tmp_path, fail="open"):
    p = tmp_path / "serve-policy.yaml"
    p.write_text(ENFORCE.format(fail=fail))
    return p


@pytest.fixture()
def store(tmp_path):
    return fixture_store(tmp_path / "dg.duckdb")


@pytest.fixture()
def service(store, tmp_path):
    engine = Engine(EngineConfig(db=str(store), policy=enforce_policy(tmp_path), refresh_seconds=3600, flush_seconds=0.2))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(store)) as c:
        c.engine = engine
        yield c


def test_known_campaign_member_gets_the_scan_risk_and_the_policy_action(service):
    d = service.post("/v1/decide", json={"account_id": "camp-1", "prompt": "anything"}).json()
    assert d["action"] == "throttle" and d["rule_id"] == "throttle-high-risk"
    assert d["campaign_id"] == "C-test" and d["risk"] == pytest.approx(0.95)
    assert {"SHARED_PAYMENT", "COT_ELICITATION"} <= {r["code"] for r in d["reasons"]}
    assert d["throttle"]["retry_after_seconds"] == 30 and d["mode"] == "enforce" and d["ttl_seconds"] == 900
    assert service.post("/v1/decide", json={"account_id": "user-1"}).json()["action"] == "allow"
    assert service.post("/v1/decide", json={"account_id": "user-allow"}).json()["rule_id"] == "allowlisted"


@pytest.mark.parametrize("body, code", [
    ({"account": {"payment_fingerprint": "PM_SHARED"}}, "SHARED_PAYMENT"),
    ({"client_ip": "203.0.113.7"}, "SHARED_INFRA"),
    ({"prompt": TEMPLATE.format(i=99, a=12, b=31), "client_ip": "203.0.113.99"}, "TEMPLATE_REUSE"),  # template + subnet
])
def test_a_new_account_linked_to_a_campaign_is_challenged_at_its_first_request(service, body, code):
    acc = f"fresh-{code}"
    d = service.post("/v1/decide", json={"account_id": acc, **body}).json()
    assert d["action"] == "challenge", d
    assert d["campaign_id"] == "C-test"
    r = next(r for r in d["reasons"] if r["code"] == code)
    assert r["details"]["campaign_id"] == "C-test"
    # an identifier of its own (card, IP, subnet) ties it to the ring: member evidence the campaign corroborates
    assert "RING_EVIDENCE" in {r["code"] for r in d["reasons"]}
    assert d["challenge"]["url"].startswith("https://verify.example.test/step-up?challenge_id=")
    # the link is remembered: the next request, without the attribute, is still challenged
    assert service.post("/v1/decide", json={"account_id": acc}).json()["action"] == "challenge"


def test_a_shared_template_alone_is_watched_not_challenged(service):
    """Customers reuse the public problem sets and document templates that rings use too."""
    d = service.post("/v1/decide", json={"account_id": "fresh-template-only", "prompt": TEMPLATE.format(i=7, a=3, b=4)}).json()
    assert d["action"] == "monitor" and d["campaign_id"] == "C-test"
    assert [r["code"] for r in d["reasons"]] == ["TEMPLATE_REUSE"] and d["reasons"][0]["weight"] < 0.5


def test_an_unlinked_new_account_is_allowed(service):
    d = service.post("/v1/decide", json={"account_id": "stranger", "client_ip": "192.0.2.55",
                                         "prompt": "what's a good recipe for pancakes?"}).json()
    assert d["action"] == "allow" and d["campaign_id"] is None and d["risk"] < 0.2


def test_signup_assessment_links_a_card(service):
    d = service.post("/v1/accounts/assess", json={"account_id": "signup-1", "payment_fingerprint": "pm_shared",
                                                  "created_at": "2026-03-05T10:00:00Z", "email": "x@mail.test"}).json()
    assert d["action"] == "challenge" and d["campaign_id"] == "C-test"
    assert "SHARED_PAYMENT" in {r["code"] for r in d["reasons"]}
    d2 = service.post("/v1/accounts/assess", json={"account_id": "signup-2", "payment_fingerprint": "pm_unrelated"}).json()
    assert d2["action"] == "allow"


def test_online_features_equal_the_batch_feature_query(service, tmp_path):
    """The running aggregates give the same feature columns as features.account_features on the same events."""
    from distillguard.features import account_features
    from distillguard.schema import EVENT_SCHEMA
    from distillguard.store import EventStore

    evs = []
    for j in range(40):
        evs.append({"event_id": f"x-{j}", "ts": (T0 + timedelta(hours=30, minutes=7 * j + (j % 3))).isoformat(),
                    "account_id": "online-1", "model": "orion-2" if j < 25 else "orion-9", "prompt": f"q {j % 17} " * 5,
                    "input_tokens": 10 + j, "output_tokens": 900 + 5 * j, "max_output_tokens": 4000 if j % 2 else None,
                    "n": 1 + (j % 4 == 0), "logprobs": j % 3 == 0, "temperature": 0.0 if j % 5 == 0 else 0.7,
                    "reasoning_effort": "high" if j % 2 else "low", "conversation_id": None if j % 4 else f"c{j % 8}",
                    "client_ip": f"10.0.0.{j % 3}", "user_agent": "ua", "status": "error" if j == 7 else "ok"})
    r = service.post("/v1/events", json={"events": evs}).json()
    assert r["accepted"] == 40
    view = service.get("/v1/accounts/online-1").json()
    online = view["features"]
    # the batch expression on the same 40 events plus the store's (for model release times)
    eng = service.engine
    db = tmp_path / "batch.duckdb"
    con = duckdb.connect(str(eng.config.db))
    base = con.sql("SELECT * FROM events").to_arrow_table()
    con.close()
    from distillguard.serve.journal import events_to_table
    from distillguard.ingest.normalize import normalize

    mine = events_to_table([normalize(e) for e in evs])
    with EventStore(db) as s:
        s.append_events([base.cast(EVENT_SCHEMA), mine])
        batch = account_features(s.ibis().table("events")).to_pyarrow()
    row = next(r for r in batch.to_pylist() if r["account_id"] == "online-1")
    for col, v in row.items():
        if col in ("first_ts", "last_ts"):
            continue
        if isinstance(v, float):
            assert online[col] == pytest.approx(v, rel=1e-6, abs=1e-9), col
        else:
            assert online[col] == v, col


def test_request_values_match_the_scan_memberships():
    import ibis

    from distillguard.link import memberships as mb
    from distillguard.link.kinds import account_values, request_values
    from distillguard.privacy.keyed import hash_ip

    ips = ["203.0.113.7", "2001:DB8:ab:1::5", "10.1.2.3", "not-an-ip", "::1", hash_ip("198.51.100.7", bytes(32)), None]
    uas = ["ua", "ua", None, "ua2", "", "ua", "ua"]
    fps = ["t13d1516h2_a_b", None, "t13d1516h2_a_b", "", "e7d705a3", None, "2:0:4:65535"]
    t = ibis.memtable(pa.table({"account_id": [f"a{i}" for i in range(len(ips))], "client_ip": ips, "user_agent": uas,
                                "client_fingerprint": fps}))
    want = {(r["account_id"], r["kind"], r["value"]) for r in mb.infrastructure(t).to_pyarrow().to_pylist()}
    got = {(f"a{i}", k, v) for i, (ip, ua, fp) in enumerate(zip(ips, uas, fps))
           for k, v in request_values({"client_ip": ip, "user_agent": ua, "client_fingerprint": fp})}
    assert got == want and any(k == "subnet" and v.startswith("h:") for _, k, v in got)
    assert sum(k == "client_fingerprint" for _, k, _ in got) == 4
    meta = pa.table({"account_id": ["a", "b", "c"], "payment_fingerprint": ["FP1", None, "fp2"],
                     "email_domain": ["Mail.example", "x.example", None]})
    want = {(r["account_id"], r["kind"], r["value"]) for r in mb.account_metadata(meta).to_pylist()}
    got = {(m["account_id"], k, v) for m in meta.to_pylist() for k, v in account_values(m)}
    assert got == want


def test_behaviour_observed_online_raises_the_risk(service):
    evs = [{"ts": (T0 + timedelta(days=2, minutes=3 * j)).isoformat(), "account_id": "harvest-1", "input_tokens": 30,
            "output_tokens": 3000, "max_output_tokens": 8000, "prompt": f"topic {j}: explain everything"} for j in range(30)]
    assert service.post("/v1/events", json={"events": evs}).json()["accepted"] == 30
    d = service.post("/v1/decide", json={"account_id": "harvest-1"}).json()
    assert d["risk"] >= 0.5 and d["action"] in ("challenge", "throttle")
    r = next(r for r in d["reasons"] if r["code"] == "HIGH_OUTPUT_RATIO")
    assert r["details"]["source"] == "online"


def test_bad_input_gets_4xx_naming_the_field(service):
    r = service.post("/v1/decide", json={"account_id": "a", "input_tokens": "many"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "input_tokens"
    r = service.post("/v1/decide", json={"prompt": "no subject"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "account_id"]
    r = service.post("/v1/decide", json={"account_id": "a", "ts": "yesterday-ish"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "ts"]
    r = service.post("/v1/decide", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = service.post("/v1/events", json={"events": "nope"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "events"]
    r = service.post("/v1/decisions/x/labels", json={"label": "maybe"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "label"]


def test_oversized_bodies_are_refused_with_413(service):
    big = {"events": [{"account_id": "a", "ts": "2026-03-02T00:00:00Z", "prompt": "x" * 1000}] * 1200}
    assert service.post("/v1/events", json=big).status_code == 413

    def chunks():  # no content-length: counted while streaming
        yield b'{"events": ['
        for _ in range(2000):
            yield b'{"account_id": "a", "ts": 1, "prompt": "' + b"y" * 1000 + b'"},'
        yield b'{"account_id": "a", "ts": 1}]}'

    assert service.post("/v1/events", content=chunks(), headers={"content-type": "application/json"}).status_code == 413
    assert service.get("/healthz").status_code == 200


def test_bad_events_in_a_batch_are_quarantined_and_the_rest_accepted(service):
    evs = [{"account_id": "q-1", "ts": "2026-03-04T00:00:00Z"}, {"account_id": "q-1", "ts": "not a time"},
           {"ts": "2026-03-04T00:00:01Z"}, {"account_id": "q-1", "ts": 1772582400, "output_tokens": -3},
           "just a string", {"user": "q-1", "timestamp": "2026-03-04T00:00:02Z", "prompt_tokens": "12"}]
    r = service.post("/v1/events", json={"events": evs[:4] + evs[5:]})
    out = r.json()
    assert r.status_code == 200 and out["accepted"] == 2 and out["quarantined"] == 3
    assert [e["reason"] for e in out["errors"]] == ["bad_ts", "missing_subject", "negative_value"]
    assert service.post("/v1/events", json={"events": evs[:1]}).json()["duplicates"] == 1
    qfile = service.engine.config.db + ".serve-quarantine.jsonl"
    with open(qfile) as fh:
        assert len(fh.readlines()) == 3
    assert service.get("/v1/accounts/q-1").json()["n_events_live"] == 2


def test_repeats_are_dropped_within_the_latest_ids_and_memory_stays_bounded(monkeypatch):
    """Two generations of ids: a repeat of any of the latest DEDUP_IDS ids (and within a batch) is dropped;
    the oldest go first, a generation at a time, and no more than twice DEDUP_IDS are held."""
    from distillguard.serve import intake

    monkeypatch.setattr(intake, "DEDUP_IDS", 5)
    it = intake.Intake(None, None, None, {}, None, None)
    assert it.remember(["a", "b", "a"]) == [True, True, False]
    assert it.remember([str(i) for i in range(20)]) == [True] * 20
    assert len(it._seen) <= 10
    assert it.remember([str(i) for i in range(15, 20)]) == [False] * 5  # the latest five: always remembered
    assert it.remember(["0", "a"]) == [True, True]  # the oldest: forgotten
    for i in range(100):
        it.remember([f"x{i}"])
        latest = [f"x{j}" for j in range(max(0, i - 4), i + 1)]
        assert len(it._seen) <= 10 and it.remember(latest) == [False] * len(latest)


def test_otlp_traces_are_read_by_the_ingest_otlp_reader(service):
    def span(sid, attrs):
        return {"traceId": "t1", "spanId": sid, "name": "chat", "startTimeUnixNano": "1772582400000000000",
                "attributes": [{"key": k, "value": {"stringValue": v} if isinstance(v, str) else {"intValue": str(v)}}
                               for k, v in attrs.items()]}

    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gw"}}]},
                              "scopeSpans": [{"spans": [
                                  span("s1", {"gen_ai.request.model": "orion-2", "enduser.id": "otel-1",
                                              "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 400}),
                                  span("s2", {"http.method": "GET"}),
                                  span("s3", {"gen_ai.request.model": "orion-2"}),
                              ]}]}]}
    r = service.post("/v1/traces", json=doc)
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == 1
    assert service.get("/v1/accounts/otel-1").json()["n_events_live"] == 1


def test_challenge_passed_grants_immunity_and_labels_steer_decisions(service):
    d = service.post("/v1/decide", json={"account_id": "chal-1", "client_ip": "203.0.113.7"}).json()
    assert d["action"] == "challenge"
    r = service.post(f"/v1/challenges/{d['challenge']['challenge_id']}/result", json={"passed": True}).json()
    assert r["passed"] and r["immune_until"]
    d2 = service.post("/v1/decide", json={"account_id": "chal-1", "client_ip": "203.0.113.7"}).json()
    assert d2["action"] == "allow" and d2["immune_until"] and d2["rule_id"] == "allowlisted"
    # analyst labels
    d = service.post("/v1/decide", json={"account_id": "camp-2"}).json()
    assert service.post(f"/v1/decisions/{d['decision_id']}/labels", json={"label": "legitimate"}).status_code == 200
    assert service.post("/v1/decide", json={"account_id": "camp-2"}).json()["action"] == "allow"
    d = service.post("/v1/decide", json={"account_id": "user-3"}).json()
    service.post(f"/v1/decisions/{d['decision_id']}/labels", json={"label": "fraudulent", "note": "confirmed"})
    d3 = service.post("/v1/decide", json={"account_id": "user-3"}).json()
    assert d3["action"] == "block" and "ANALYST_CONFIRMED" in {r["code"] for r in d3["reasons"]}
    # a failed challenge marks the account
    d = service.post("/v1/decide", json={"account_id": "chal-2", "client_ip": "203.0.113.7"}).json()
    service.post(f"/v1/challenges/{d['challenge']['challenge_id']}/result", json={"passed": False})
    assert service.post("/v1/decide", json={"account_id": "chal-2"}).json()["action"] == "block"
    assert service.post("/v1/challenges/nope/result", json={"passed": True}).status_code == 404
    assert service.post("/v1/decisions/nope/labels", json={"label": "legitimate"}).status_code == 404


def test_views_health_and_metrics(service):
    camps = service.get("/v1/campaigns").json()
    assert [c["campaign_id"] for c in camps] == ["C-test"] and camps[0]["n_indicators"] > 4
    c = service.get("/v1/campaigns/C-test").json()
    assert c["accounts"] == [f"camp-{i}" for i in range(6)]
    assert {i["kind"] for i in c["indicators"]} >= {"payment_fingerprint", "client_ip", "template"}
    assert service.get("/v1/campaigns/none").status_code == 404
    assert service.get("/v1/accounts/nobody").status_code == 404
    acc = service.get("/v1/accounts/camp-0").json()
    assert acc["scan"]["campaign_id"] == "C-test" and acc["n_events_live"] == 5  # warmed from the store
    h = service.get("/healthz").json()
    assert h["status"] == "ok" and h["mode"] == "enforce" and h["campaigns"] == 1 and h["state"] == "memory"
    service.post("/v1/decide", json={"account_id": "camp-0"})
    m = service.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain")
    assert 'distillguard_decisions_total{action="throttle",mode="enforce"}' in m.text
    assert "distillguard_decide_seconds_bucket" in m.text
    spec = service.get("/openapi.json").json()
    for path in ("/v1/decide", "/v1/events", "/v1/traces", "/v1/accounts/assess", "/v1/accounts/{account_id}",
                 "/v1/campaigns", "/v1/campaigns/{campaign_id}", "/v1/decisions/{decision_id}/labels",
                 "/v1/challenges/{challenge_id}/result", "/healthz", "/metrics"):
        assert path in spec["paths"], path


@pytest.mark.parametrize("fail, action", [("open", "allow"), ("closed", "block")])
def test_internal_errors_fail_open_or_closed_as_the_policy_says(store, tmp_path, fail, action, monkeypatch):
    engine = Engine(EngineConfig(db=str(store), policy=enforce_policy(tmp_path, fail), refresh_seconds=3600))

    def boom(*a, **k):
        raise RuntimeError("state unavailable")

    with serving(engine) as url:
        monkeypatch.setattr(engine.online, "score", boom)
        d = httpx.post(url + "/v1/decide", json={"account_id": "user-1"}, auth=RoleAuth(store)).json()
        assert d["action"] == action and d["rule_id"] == f"fail-{fail}"
        assert d["reasons"][0]["code"] == "INTERNAL_ERROR"


def test_the_campaign_map_is_refreshed_in_the_background(store, tmp_path):
    engine = Engine(EngineConfig(db=str(store), policy=enforce_policy(tmp_path), refresh_seconds=0.2))
    auth = RoleAuth(store)
    with serving(engine) as url:
        assert httpx.post(url + "/v1/decide", json={"account_id": "n1", "client_ip": "192.0.2.99"}, auth=auth).json()["action"] == "allow"
        with engine.journal.db_lock:  # a new scan lands in the store
            con = duckdb.connect(str(store))
            con.execute("INSERT INTO campaign_indicators VALUES ('C-test', 'client_ip', '192.0.2.99', 2.0)")
            con.close()
        import time

        time.sleep(0.8)
        d = httpx.post(url + "/v1/decide", json={"account_id": "n2", "client_ip": "192.0.2.99"}, auth=auth).json()
        assert d["action"] == "challenge" and d["campaign_id"] == "C-test"


def test_replay_over_http_reports_harvest_before_detection(service, tmp_path):
    """``distillguard replay --url`` logic: decide, then log, in time order; per-campaign counts."""
    from distillguard.ingest.normalize import normalize
    from distillguard.serve.replay import HttpTarget, replay

    events = []
    for k in range(3):  # three new campaign accounts: one links by IP at its first request
        for j in range(4):
            events.append(normalize({"account_id": f"rp-{k}", "ts": 1772600000 + 60 * j + k, "output_tokens": 10,
                                     "client_ip": "203.0.113.7" if k == 1 else f"192.0.2.{k}"}))
    events.append(normalize({"account_id": "rp-benign", "ts": 1772600001, "client_ip": "192.0.2.200"}))
    labels = {"rp-0": "X", "rp-1": "X", "rp-2": "X", "rp-benign": None}
    target = HttpTarget(str(service.base_url), token=service.auth.token("gateway"))
    report = replay(events, target, labels=labels)
    target.close()
    (c,) = report["campaigns"]
    assert c["campaign_id"] == "X" and c["exchanges"] == 12 and c["accounts"] == 3
    assert c["accounts_stopped_at_first_request"] == 1 and c["harvested_before_detection"] == 1
    assert c["within_target"] and report["benign_accounts_stopped"] == 0
    assert service.get("/v1/accounts/rp-0").json()["n_events_live"] == 4


def test_online_risk_of_a_scanned_account_keeps_the_scans_evidence(store, tmp_path):
    """A verified organisation the scan cleared stays cleared when its running behaviour is updated."""
    import duckdb

    con = duckdb.connect(str(store))
    con.execute("ALTER TABLE account_results ADD COLUMN evidence_json VARCHAR")
    con.execute("""UPDATE account_results SET evidence_json = '{"campaign_declared_org": 1.0}' WHERE account_id = 'user-1'""")
    con.close()
    engine = Engine(EngineConfig(db=str(store), persist=False, warm_max_events=0)).start(background=False)
    try:
        for acc in ("user-1", "user-2"):  # the same heavy output traffic on a cleared and on a plain known account
            engine.ingest([{"account_id": acc, "ts": f"2026-03-02T{h:02d}:{m:02d}:00Z", "prompt": f"summarise report {h}-{m}",
                            "input_tokens": 40, "output_tokens": 1200} for h in range(10) for m in (0, 30)])
        cleared, plain = engine.online.score("user-1")[0], engine.online.score("user-2")[0]
        assert engine.map.accounts["user-1"].evidence == {"campaign_declared_org": 1.0}
        assert cleared < plain and cleared < 0.5 <= plain, (cleared, plain)
    finally:
        engine.stop()


def test_the_service_measures_refusals_against_the_scanned_populations_rate(tmp_path):
    """REFUSAL_PROBING in the service uses the refusal rate the last scan learned, not the 1% reference."""
    import json
    import subprocess
    import sys

    from distillguard.signals.behaviour import RefusalProbing

    def calls(acc, n, refused):
        return [{"event_id": f"{acc}-{i}", "account_id": acc, "ts": f"2026-03-0{1 + i % 7}T{8 + i % 12:02d}:00:00Z",
                 "model": "m", "prompt": f"question {i} from {acc}", "input_tokens": 20, "output_tokens": 200,
                 "status": "refused" if i < refused else "ok"} for i in range(n)]

    rows = [r for u in range(200) for r in calls(f"user-{u}", 40, 6)] + calls("prober", 30, 6)  # users: 15% refused
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    db = tmp_path / "dg.duckdb"
    p = subprocess.run([sys.executable, "-m", "distillguard.cli", "scan", str(events), "--db", str(db), "--out",
                        str(tmp_path / "scan"), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    engine = Engine(EngineConfig(db=str(db), persist=False)).start(background=False)
    try:
        sig = next(s for s in engine.online.signals if isinstance(s, RefusalProbing))
        assert abs(sig.base_rate_ - (200 * 6 + 6) / (200 * 40 + 30)) < 1e-9  # refused calls over all calls of the scan
        prober = pa.table({"account_id": ["prober"], "n_events": [30], "error_share": [0.2]})
        assert sig.score(prober).scores.column("refusal_probing")[0].as_py() < 0.1  # ordinary here
        assert RefusalProbing().score(prober).scores.column("refusal_probing")[0].as_py() >= 0.9  # at the reference
    finally:
        engine.stop()


def test_a_strong_campaign_member_is_challenged_by_the_service_as_by_the_scan(store):
    """The packaged rule challenge-strong-campaign-member holds in the service: it reads the strong codes the scan stored."""
    con = duckdb.connect(str(store))
    own = ('[{"code": "RUBRIC_GRADING", "weight": 0.8, "terms": ["rubric_grading"], "evidence": {}, "strong": true,'
           ' "campaign_shared": true}]')
    apart = own.replace('"campaign_shared": true', '"campaign_shared": false')  # strong, but not its campaign's intent
    for acc, reasons in (("camp-2", own), ("camp-3", apart)):
        con.execute("UPDATE account_results SET risk = 0.3, reasons = ['RUBRIC_GRADING'], reasons_json = ? WHERE account_id = ?",
                    [reasons, acc])
    con.close()
    engine = Engine(EngineConfig(db=str(store), refresh_seconds=3600, flush_seconds=0.2))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(store)) as c:
        d = c.post("/v1/decide", json={"account_id": "camp-2"}).json()
        assert (d["action"], d["rule_id"]) == ("challenge", "challenge-strong-campaign-member"), d
        d = c.post("/v1/decide", json={"account_id": "camp-3"}).json()
        assert (d["action"], d["rule_id"]) == ("monitor", "monitor"), d
