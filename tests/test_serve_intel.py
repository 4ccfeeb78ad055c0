"""Known identifiers and analysts' decisions at decision time, as the scan applies them.

Imported threat intelligence (``KNOWN_INDICATOR``), confirmed campaigns (``CONFIRMED_CAMPAIGN``) and
console allowlists. Provider A scans a ring (one card, one IP) and exports it (``intel export``); provider B imports the real
bundle (``intel import``) and runs the real service on loopback with tokens over a real DuckDB store.
"""
from __future__ import annotations

import json
import random

import httpx
import pyarrow.parquet as pq
import pytest

from distillguard.intel.keys import load_key
from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import RoleAuth, serving
from test_serve_calibration import calls, cli, harvest

RING_CARD, RING_IP, RING_TOOL = "pm_ring", "198.51.100.7", "t13d1516h2_8daaf6152771_e5627efa2ab1"


def short_chat(rng, acc, u):
    """An ordinary user: its own card and address, answers shorter than the questions' tenfold."""
    rows = [{**r, "client_ip": f"10.{u % 250}.{u % 7}.{u % 200 + 10}"}
            for r in calls(rng, acc, 14, lambda: rng.randint(20, 200), lambda: rng.randint(50, 400))]
    return rows, {"account_id": acc, "payment_fingerprint": f"pm_{acc}"}


def users(rng, prefix, n):
    """Events and metadata of ``n`` ordinary users."""
    events, accounts = [], []
    for u in range(n):
        rows, meta = short_chat(rng, f"{prefix}-{u}", u)
        events += rows
        accounts.append(meta)
    return events, accounts


def write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """B's store holding A's exported ring, and the consortium key."""
    tmp = tmp_path_factory.mktemp("intel")
    rng = random.Random(3)
    events, accounts = users(rng, "a-user", 40)
    for h in range(10):
        events += [{**r, "client_ip": RING_IP, "client_fingerprint": RING_TOOL} for r in harvest(rng, f"a-ring-{h}")]
        accounts.append({"account_id": f"a-ring-{h}", "payment_fingerprint": RING_CARD})
    key, bundle, db_a, db_b = tmp / "consortium.key", tmp / "bundle.json", tmp / "a.duckdb", tmp / "b.duckdb"
    cli("scan", write(tmp / "a-events.jsonl", events), "--accounts", write(tmp / "a-accounts.jsonl", accounts),
        "--db", db_a, "--out", tmp / "a", "--quiet")
    cli("intel", "keygen", "--out", key)
    cli("intel", "export", "--db", db_a, "--key-file", key, "--out", bundle)
    kinds = {o["pattern"].split("'")[1] for o in json.loads(bundle.read_text())["objects"] if o["type"] == "indicator"}
    assert {"payment_fingerprint", "client_ip", "client_fingerprint"} <= kinds
    cli("intel", "import", bundle, "--db", db_b, "--key-file", key)
    return tmp, db_b, load_key(key)


def decide(c, body) -> dict:
    d = c.post("/v1/decide", json=body).json()
    assert "decision_id" in d, d
    return d


def reasons(d) -> dict:
    return {r["code"]: r for r in d["reasons"]}


def test_an_account_using_an_imported_identifier_is_challenged_before_any_scan(peer):
    tmp, db, key = peer
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, intel_key=key))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        card = decide(c, {"account_id": "b-card", "account": {"payment_fingerprint": RING_CARD.upper()}})
        ip = decide(c, {"account_id": "b-ip", "client_ip": RING_IP})
        for d, kind in ((card, "payment_fingerprint"), (ip, "client_ip")):
            r = reasons(d)["KNOWN_INDICATOR"]
            assert d["action"] == "challenge" and d["rule_id"] == "known-indicator", d
            assert r["details"]["source"] == "intel" and r["weight"] > 0
            hits = r["details"]["evidence"]["known_indicator"]
            assert kind in {h["kind"] for h in hits} and all(h["indicator_id"].startswith("indicator--") for h in hits)
        # remembered for the account: its next request, from elsewhere, still carries the match
        assert "KNOWN_INDICATOR" in reasons(decide(c, {"account_id": "b-ip", "client_ip": "192.0.2.1"}))
        stranger = decide(c, {"account_id": "b-stranger", "client_ip": "192.0.2.1", "account": {"payment_fingerprint": "pm_x"}})
        assert stranger["action"] == "allow" and "KNOWN_INDICATOR" not in reasons(stranger)
    # without the consortium key the service matches nothing (as a scan without --intel-key)
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, persist=False)).start(background=False)
    try:
        assert "KNOWN_INDICATOR" not in reasons(engine.decide({"account_id": "b-ip2", "client_ip": RING_IP}, record=False))
    finally:
        engine.stop()


def test_the_rings_client_fingerprint_is_matched_per_request_as_a_weak_kind(peer):
    """The harvest tool's JA4 counts beside the ring's card, never alone (a popular client build is shared)."""
    tmp, db, key = peer
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, intel_key=key))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        alone = decide(c, {"account_id": "b-tool", "client_ip": "192.0.2.9", "client_fingerprint": RING_TOOL})
        assert "KNOWN_INDICATOR" not in reasons(alone)
        both = decide(c, {"account_id": "b-tool-card", "client_fingerprint": RING_TOOL,
                          "account": {"payment_fingerprint": RING_CARD}})
        hits = reasons(both)["KNOWN_INDICATOR"]["details"]["evidence"]["known_indicator"]
        assert {"client_fingerprint", "payment_fingerprint"} <= {h["kind"] for h in hits}


def test_the_service_acts_on_an_intel_match_as_the_scan_does(peer):
    tmp, db, key = peer
    rng = random.Random(5)
    events, accounts = users(rng, "b-user", 30)
    rows, _ = short_chat(rng, "b-reused-card", 99)  # ordinary-looking traffic, on the ring's card
    events += rows
    accounts.append({"account_id": "b-reused-card", "payment_fingerprint": RING_CARD})
    out = tmp / "b-scan"
    key_file = tmp / "consortium.key"
    cli("scan", write(tmp / "b-events.jsonl", events), "--accounts", write(tmp / "b-accounts.jsonl", accounts),
        "--db", db, "--out", out, "--intel-key", key_file, "--quiet")
    scan = {r["account_id"]: r for r in pq.read_table(out / "accounts.parquet").to_pylist()}
    assert "KNOWN_INDICATOR" in scan["b-reused-card"]["reasons"] and scan["b-reused-card"]["action"] == "challenge"

    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, intel_key=key))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        assert c.get("/healthz").json()["calibration"] == "reference"  # a small scan: its stored baselines are the reference
        scanned = decide(c, {"account_id": "b-reused-card"})
        assert scanned["action"] == scan["b-reused-card"]["action"] and scanned["rule_id"] == scan["b-reused-card"]["rule_id"]
        assert "KNOWN_INDICATOR" in reasons(scanned)
        # an account first seen after the scan, on the same card: the scan's verdict at its first request
        later = decide(c, {"account_id": "b-later", "account": {"payment_fingerprint": RING_CARD}})
        assert (later["action"], later["rule_id"]) == (scan["b-reused-card"]["action"], scan["b-reused-card"]["rule_id"])
        assert reasons(later)["KNOWN_INDICATOR"]["weight"] == pytest.approx(reasons(scanned)["KNOWN_INDICATOR"]["weight"])
        assert decide(c, {"account_id": "b-user-1"})["action"] == scan["b-user-1"]["action"] == "allow"


def test_a_campaign_an_analyst_confirms_blocks_its_card_at_once(peer, tmp_path):
    """The scan blocks an identifier of a confirmed campaign (CONFIRMED_CAMPAIGN); so does the service, without a rescan."""
    import shutil

    from distillguard.audit import record_action

    db = tmp_path / "a.duckdb"
    shutil.copy(peer[0] / "a.duckdb", db)
    campaign = json.loads((peer[0] / "a" / "campaigns.json").read_text())["campaigns"][0]
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        before = decide(c, {"account_id": "fresh-1", "account": {"payment_fingerprint": RING_CARD}})
        assert before["action"] == "challenge" and "SHARED_PAYMENT" in reasons(before), before  # a link, not a verdict
        with engine.journal.db_lock:
            record_action(str(db), action="confirm", target_kind="campaign", target_id=campaign["campaign_id"],
                          analyst="ana", reason="reviewed prompts and payment overlap")
        engine.refresh()  # what the background refresh does every --refresh-seconds
        for acc in ("fresh-1", "fresh-2"):
            d = decide(c, {"account_id": acc, "account": {"payment_fingerprint": RING_CARD}})
            r = reasons(d)["CONFIRMED_CAMPAIGN"]
            assert d["action"] == "block" and d["rule_id"] == "confirmed-campaign", d
            assert r["details"]["evidence"]["known_indicator"][0]["source"] == f"analyst:{campaign['campaign_id']}"
        assert decide(c, {"account_id": "fresh-3", "account": {"payment_fingerprint": "pm_other"}})["action"] == "allow"


def test_an_account_an_analyst_allowlists_in_the_console_is_allowed_by_the_service(peer, tmp_path):
    """The scan applies console allowlists (``analyst_overrides``); the service does too, from its next refresh."""
    import shutil

    from distillguard.audit import record_action

    db = tmp_path / "a.duckdb"
    shutil.copy(peer[0] / "a.duckdb", db)
    ring = json.loads((peer[0] / "a" / "campaigns.json").read_text())["campaigns"][0]["accounts"]
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        assert decide(c, {"account_id": ring[0]})["action"] == "block"
        with engine.journal.db_lock:
            record_action(str(db), action="allowlist", target_kind="account", target_id=ring[0], analyst="ana",
                          reason="licensed distillation partner")
        engine.refresh()
        d = decide(c, {"account_id": ring[0]})
        assert (d["action"], d["rule_id"]) == ("allow", "allowlisted"), d
        assert decide(c, {"account_id": ring[1]})["action"] == "block"  # only the account allowlisted
