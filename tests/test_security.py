"""The service probed as an attacker would (issue #14), on loopback, with the service as shipped.

One test (or a parametrised set) per probe of the issue's table, each of which
passed on the code before the fix: who may call what (401/403 everywhere but
/healthz), one-shot challenges, labels, gateways that cannot be talked past
(the real LiteLLM proxy half lives in tests/test_litellm_proxy.py),
analyst_decisions under the audit chain, signed case files and audit head,
console identity, non-finite numbers, restart, byte order marks, private views,
ids with ``/``; then the credential life cycle itself.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time

import duckdb
import httpx
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import auth_headers, fixture_store, make_token, serving

from test_serve import ENFORCE, enforce_policy

ROLES = ("gateway", "verifier", "analyst", "reader")


@pytest.fixture(scope="module", autouse=True)
def signing_keys(tmp_path_factory):
    """A key pair for this module; the service (in-process) and CLI subprocesses find it through $DISTILLGUARD_KEYS."""
    from distillguard.signing import init_keys

    folder = tmp_path_factory.mktemp("keys")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILLGUARD_KEYS", str(folder))
        init_keys(folder)
        yield folder


class Service:
    def __init__(self, url, db, engine):
        self.url, self.db, self.engine = url, db, engine
        self.tok = {r: make_token(db, r, f"{r}-bot" if r != "analyst" else "alice") for r in ROLES}

    def h(self, role=None, **extra):
        return {**(auth_headers(self.tok[role]) if role else {}), **extra}

    def call(self, method, path, role=None, **kw):
        headers = {**self.h(role), **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def decide(self, **body):
        r = self.call("POST", "/v1/decide", "gateway", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def audit(self, action=None, where=lambda row: True):
        """Audit rows of ``action`` matching ``where``, once the journal has drained (the service flushes every 0.2 s)."""
        deadline = time.monotonic() + 10
        while True:
            with self.engine.journal.db_lock:
                con = duckdb.connect(str(self.db))
                try:
                    rows = con.execute("SELECT analyst, action, target_kind, target_id, details_json FROM audit_log "
                                       "ORDER BY seq").fetchall()
                finally:
                    con.close()
            hit = [r for r in rows if (action is None or r[1] == action) and where(r)]
            if hit or time.monotonic() > deadline:
                return hit
            time.sleep(0.1)


def _store(path):
    """The fixture store with the campaign evidence a scan writes (members, hubs, example prompts)."""
    db = fixture_store(path)
    ev = {"campaign_id": "C-test", "risk": 0.95, "max_risk": 0.95, "n_accounts": 6, "accounts": [f"camp-{i}" for i in range(6)],
          "n_events": 30, "input_tokens": 360, "output_tokens": 10800, "first_seen": "2026-03-02T00:00:00+00:00",
          "last_seen": "2026-03-02T01:00:00+00:00", "reasons": [{"code": "SHARED_PAYMENT", "weight": 2.1}],
          "link_coverage": {"payment_fingerprint": 1.0}, "signals": {}, "timeline": [],
          "shared": [{"kind": "client_ip", "value": "203.0.113.7", "accounts": 6, "weight": 3.0},
                     {"kind": "payment_fingerprint", "value": "pm_shared", "accounts": 6, "weight": 6.0}],
          "example_prompts": ["SECRET PROMPT TEXT"]}
    con = duckdb.connect(str(db))
    con.execute("UPDATE campaigns SET evidence_json = ?", [json.dumps(ev)])
    con.close()
    return db


def _service(tmp_path, policy_text=None, **security):
    db = _store(tmp_path / "dg.duckdb")
    if policy_text is None:
        policy = enforce_policy(tmp_path)
    else:
        policy = tmp_path / "p.yaml"
        policy.write_text(policy_text)
    engine = Engine(EngineConfig(db=str(db), policy=policy, refresh_seconds=3600, flush_seconds=0.2))
    return serving(engine, **security), db, engine


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    ctx, db, engine = _service(tmp_path_factory.mktemp("sec"))
    with ctx as url:
        yield Service(url, db, engine)


# -- every endpoint but /healthz needs a credential with the right role ----------------------------------
MATRIX = [
    ("POST", "/v1/decide", {"gateway"}), ("POST", "/v1/events", {"gateway"}), ("POST", "/v1/traces", {"gateway"}),
    ("POST", "/v1/accounts/assess", {"gateway"}), ("POST", "/v1/ext_authz/v1/chat/completions", {"gateway"}),
    ("GET", "/v1/ext_authz/v1/models", {"gateway"}), ("POST", "/beta/litellm_basic_guardrail_api", {"gateway"}),
    ("POST", "/v1/challenges/anything/result", {"verifier"}), ("POST", "/v1/decisions/anything/labels", {"analyst"}),
    ("GET", "/v1/campaigns", {"analyst", "reader"}), ("GET", "/v1/campaigns/C-test", {"analyst", "reader"}),
    ("GET", "/v1/accounts/camp-0", {"analyst", "reader"}), ("GET", "/metrics", {"reader"}),
    ("GET", "/", {"analyst"}), ("GET", "/audit", {"analyst"}), ("GET", "/campaigns/C-test", {"analyst"}),
    ("POST", "/actions", {"analyst"}), ("GET", "/openapi.json", set(ROLES)),
    ("POST", "/v1/some-route-added-later", set()), ("DELETE", "/v1/accounts/camp-0", set()),  # default deny
]


@pytest.mark.parametrize("method, path, allowed", MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
def test_every_endpoint_needs_a_credential_of_an_allowed_role(svc, method, path, allowed):
    body = {"json": {}} if method == "POST" else {}
    assert svc.call(method, path, **body).status_code == 401
    r = svc.call(method, path, headers={"Authorization": "Bearer dg_not-a-real-token"}, **body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for role in ROLES:
        r = svc.call(method, path, role, **body)
        refused = r.status_code == 401 or (r.status_code == 403 and "may not call" in r.text)  # the gate, not the handler
        assert (not refused) if role in allowed else (r.status_code == 403 and refused), (role, r.status_code)


def _every_route(routes):
    """The app's routes, those of included routers (the console) too."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        yield from _every_route(inner.routes) if inner is not None else [r]


def test_every_registered_route_has_an_access_rule(tmp_path):
    """A route added without a rule in access.yaml would be refused to everyone (default deny): name it here."""
    from distillguard.serve.app import create_app
    from distillguard.auth import AccessRules

    app = create_app(Engine(EngineConfig(db=str(tmp_path / "s.duckdb"))), start_engine=False)
    rules = AccessRules.load()
    seen, missing = 0, []
    for r in _every_route(app.routes):
        path = re.sub(r"\{[^}]+\}", "x", r.path)
        for method in getattr(r, "methods", None) or ():
            seen += 1
            if not (rules.is_open(method, path) or rules.roles(method, path)):
                missing.append(f"{method} {r.path}")
    assert seen > len(MATRIX) and not missing, missing


def test_healthz_is_the_only_open_endpoint(svc):
    assert svc.call("GET", "/healthz").status_code == 200
    r = svc.call("GET", "/", headers={"accept": "text/html"})
    assert r.status_code == 401 and 'name="token"' in r.text  # a browser gets the sign-in form, not the console


# -- challenges ------------------------------------------------------------------------------------------
def test_a_challenge_result_needs_a_verifier_and_a_live_challenge_id_and_counts_once(svc):
    d = svc.decide(account_id="sec-chal-1", client_ip="203.0.113.7")
    assert d["action"] == "challenge"
    cid, did = d["challenge"]["challenge_id"], d["decision_id"]
    assert cid != did and cid in d["challenge"]["url"] and did not in d["challenge"]["url"]
    path = f"/v1/challenges/{cid}/result"
    assert svc.call("POST", path, json={"passed": True}).status_code == 401
    for role in ("gateway", "analyst", "reader"):
        assert svc.call("POST", path, role, json={"passed": True}).status_code == 403
    assert svc.call("POST", f"/v1/challenges/{did}/result", "verifier", json={"passed": True}).status_code == 404
    assert svc.call("POST", "/v1/challenges/guessed-id/result", "verifier", json={"passed": True}).status_code == 404
    r = svc.call("POST", path, "verifier", json={"passed": True})
    assert r.status_code == 200 and r.json()["account_id"] == "sec-chal-1" and r.json()["immune_until"]
    for passed in (True, False):
        assert svc.call("POST", path, "verifier", json={"passed": passed}).status_code == 409
    assert svc.decide(account_id="sec-chal-1", client_ip="203.0.113.7")["action"] == "allow"
    rows = svc.audit("challenge_passed", lambda r: r[3] == "sec-chal-1")
    assert [r[:4] for r in rows] == [("verifier-bot", "challenge_passed", "account", "sec-chal-1")]


def test_block_and_benign_decision_ids_cannot_be_used_as_challenges(svc):
    """The old probe: passed:true on a block decision's id, passed:false on a benign user's id."""
    blocked = svc.decide(account_id="user-5")
    label = svc.call("POST", f"/v1/decisions/{blocked['decision_id']}/labels", "analyst", json={"label": "fraudulent"})
    assert label.status_code == 200
    blocked = svc.decide(account_id="user-5")
    assert blocked["action"] == "block"
    benign = svc.decide(account_id="user-0")
    assert benign["action"] == "allow"
    for d, passed in ((blocked, True), (benign, False)):
        assert svc.call("POST", f"/v1/challenges/{d['decision_id']}/result", "verifier", json={"passed": passed}).status_code == 404
    assert svc.decide(account_id="user-5")["action"] == "block" and svc.decide(account_id="user-0")["action"] == "allow"


def test_decision_and_challenge_ids_are_unguessable(svc):
    ids = [svc.decide(account_id=f"sec-id-{i}")["decision_id"] for i in range(40)]
    assert len(set(ids)) == 40 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)  # 128 random bits
    assert len(set(i[:6] for i in ids)) > 30, "no shared prefix and counter"
    d = svc.decide(account_id="sec-id-chal", client_ip="203.0.113.7")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", d["challenge"]["challenge_id"])  # 192 random bits
    r = svc.call("POST", "/v1/ext_authz/v1/chat/completions", "gateway", json={},
                 headers={"x-user-id": "sec-id-envoy", "x-forwarded-for": "203.0.113.7"})
    leaked = r.headers["x-distillguard-decision-id"]  # what reaches the end user
    assert svc.call("POST", f"/v1/challenges/{leaked}/result", "verifier", json={"passed": True}).status_code == 404


def test_a_challenge_expires_with_its_ttl(tmp_path):
    ctx, db, engine = _service(tmp_path, ENFORCE.format(fail="open").replace("challenge: 3600", "challenge: 1"))
    with ctx as url:
        s = Service(url, db, engine)
        d = s.decide(account_id="sec-exp", client_ip="203.0.113.7")
        assert d["action"] == "challenge" and d["ttl_seconds"] == 1
        time.sleep(1.3)
        assert s.call("POST", f"/v1/challenges/{d['challenge']['challenge_id']}/result", "verifier",
                      json={"passed": True}).status_code == 404


# -- labels ------------------------------------------------------------------------------------------------
def test_labels_need_an_analyst_token_and_are_audited_under_its_name(svc):
    d = svc.decide(account_id="camp-4")
    assert d["action"] == "throttle"
    path = f"/v1/decisions/{d['decision_id']}/labels"
    assert svc.call("POST", path, json={"label": "legitimate"}).status_code == 401
    for role in ("gateway", "verifier", "reader"):
        assert svc.call("POST", path, role, json={"label": "legitimate"}).status_code == 403
    assert svc.decide(account_id="camp-4")["action"] == "throttle"
    assert svc.call("POST", path, "analyst", json={"label": "legitimate", "note": "partner"}).status_code == 200
    assert svc.decide(account_id="camp-4")["action"] == "allow"
    rows = svc.audit("label", lambda r: r[3] == "camp-4")
    assert rows and rows[0][0] == "alice" and json.loads(rows[0][4])["label"] == "legitimate"


# -- gateways ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers, body", [
    ({"x-distillguard-account": "user-1"}, {}),
    ({"x-end-user-id": "user-1"}, {"user": "user-1"}),
    ({}, {"max_tokens": -1, "logprobs": "maybe", "temperature": "hot", "user": "u" * 513}),
], ids=["account-header", "end-user-and-body-user", "malformed-params"])
def test_envoy_judges_the_verified_account_whatever_the_client_adds(svc, headers, body):
    r = svc.call("POST", "/v1/ext_authz/v1/chat/completions", "gateway", json={"model": "m", **body},
                 headers={"x-user-id": "camp-1", **headers})
    assert r.status_code == 429 and r.headers["x-distillguard-action"] == "throttle"


def test_envoy_never_takes_the_account_from_the_body(svc):
    r = svc.call("POST", "/v1/ext_authz/v1/chat/completions", "gateway", json={"user": "camp-1"})
    assert r.headers.get("x-distillguard-fail") == "open" and "x-distillguard-action" not in r.headers


def test_litellm_generic_guardrail_judges_the_key_owner_not_the_end_user(svc):
    body = {"texts": ["hi"], "input_type": "request",
            "request_data": {"user_api_key_user_id": "camp-2", "user_api_key_end_user_id": "user-2"}}
    assert svc.call("POST", "/beta/litellm_basic_guardrail_api", "gateway", json=body).json()["action"] == "BLOCKED"
    body["request_data"] = {"user_api_key_user_id": "camp-2", "user_api_key_org_id": {"not": "a string"}}
    assert svc.call("POST", "/beta/litellm_basic_guardrail_api", "gateway", json=body).json()["action"] == "BLOCKED"


# -- integrity: analyst decisions, audit log, case files -----------------------------------------------------
@pytest.fixture()
def case_store(tmp_path):
    from distillguard.audit import record_action

    db = _store(tmp_path / "case.duckdb")
    for reason in ("shared cards", "same template"):
        record_action(db, action="confirm", target_kind="campaign", target_id="C-test", analyst="alice", reason=reason)
    return db


def _verify(folder, db=None):
    from distillguard.case import verify_case

    return verify_case(folder, db)


def test_editing_analyst_decisions_breaks_the_chain(case_store):
    from distillguard.audit import verify_audit_chain

    assert verify_audit_chain(case_store) == (True, None)
    con = duckdb.connect(str(case_store))
    con.execute("UPDATE analyst_decisions SET members_json = '[\"camp-0\"]' WHERE seq = 1")  # the next scan obeys this
    con.close()
    assert verify_audit_chain(case_store)[0] is False
    con = duckdb.connect(str(case_store))
    con.execute("DELETE FROM analyst_decisions WHERE seq = 2")
    con.execute("UPDATE analyst_decisions SET members_json = (SELECT members_json FROM analyst_decisions WHERE seq = 1)")
    con.close()
    assert verify_audit_chain(case_store)[0] is False


@pytest.mark.parametrize("edit", ["delete-last", "rewrite-and-rechain"])
def test_truncating_or_rechaining_the_audit_log_fails_the_signed_head(case_store, edit):
    from distillguard.audit import (
        _DECISION_FIELDS, _ROW_FIELDS, GENESIS, _decision_digest, row_hash, trusted_public_key, verify_audit_chain,
        verify_audit_signature,
    )

    assert verify_audit_signature(case_store, trusted_public_key()) is None
    con = duckdb.connect(str(case_store))
    if edit == "delete-last":
        con.execute("DELETE FROM analyst_decisions WHERE seq = 2")
        con.execute("DELETE FROM audit_log WHERE seq = 2")
    else:  # rewrite decision 1 and its audit row, recompute every digest and hash by the published rules
        con.execute("UPDATE analyst_decisions SET analyst = 'mallory' WHERE seq = 1")
        con.execute("UPDATE audit_log SET analyst = 'mallory' WHERE seq = 1")
        prev = GENESIS
        for r in con.execute(f"SELECT {', '.join(_ROW_FIELDS)} FROM audit_log ORDER BY seq").fetchall():
            row = dict(zip(_ROW_FIELDS, r))
            d = dict(zip(_DECISION_FIELDS, con.execute(f"SELECT {', '.join(_DECISION_FIELDS)} FROM analyst_decisions "
                                                       "WHERE seq = ?", [row["seq"]]).fetchall()[0]))
            row["details_json"] = json.dumps({**json.loads(row["details_json"]), "decision_sha256": _decision_digest(d)},
                                             sort_keys=True, separators=(",", ":"))
            h = row_hash(prev, row)
            con.execute("UPDATE audit_log SET details_json = ?, prev_hash = ?, row_hash = ? WHERE seq = ?",
                        [row["details_json"], prev, h, row["seq"]])
            con.execute("UPDATE analyst_decisions SET audit_hash = ? WHERE seq = ?", [h, row["seq"]])
            prev = h
    con.close()
    assert verify_audit_chain(case_store) == (True, None)  # the hashes alone are consistent again ...
    assert verify_audit_signature(case_store, trusted_public_key()) is not None  # ... the signed head is not


def test_a_forged_case_file_fails_verification(case_store, tmp_path):
    from distillguard import signing
    from distillguard.case import export_case
    from distillguard.case.export import MANIFEST, _signed_bytes, chain_hash, file_sha256

    out = tmp_path / "case"
    export_case("C-test", case_store, out, pdf=False)
    assert _verify(out, case_store)["ok"]
    rows = list(csv.reader((out / "accounts.csv").open()))
    with (out / "accounts.csv").open("w", newline="") as f:
        csv.writer(f).writerows([r for r in rows if r[0] != "camp-3"])  # drop a member
    m = json.loads((out / MANIFEST).read_text())
    for f in m["files"]:
        f["sha256"], f["bytes"] = file_sha256(out / f["path"]), (out / f["path"]).stat().st_size
    m["chain"] = chain_hash(m["audit_head"]["hash"], m["files"])  # by the published rule
    (out / MANIFEST).write_text(json.dumps(m))
    r = _verify(out)
    assert not r["ok"] and any("signature" in p for p in r["problems"])
    forger = signing.init_keys(tmp_path / "forger")[0].parent  # signed, but with someone else's key
    m["signature"] = signing.sign(signing.load_private(forger), _signed_bytes(m))
    (out / MANIFEST).write_text(json.dumps(m))
    r = _verify(out)
    assert not r["ok"] and any("not the trusted key" in p for p in r["problems"])
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "case", "verify", str(out), "--db", str(case_store)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "TAMPERED" in proc.stdout


# -- console identity --------------------------------------------------------------------------------------
def _csrf(svc):
    page = svc.call("GET", "/campaigns/C-test", "analyst").text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_a_typed_name_or_forwarded_header_is_never_the_analyst(svc):
    form = {"csrf": _csrf(svc), "action": "escalate", "target_kind": "campaign", "target_id": "C-test",
            "reason": "legal hold", "analyst": "mallory", "back": "/"}
    r = svc.call("POST", "/actions", "analyst", data=form, headers={"x-forwarded-user": "mallory"}, follow_redirects=False)
    assert r.status_code == 303
    rows = svc.audit("escalate")
    assert rows[-1][0] == "alice"


def test_console_sign_in_sets_a_strict_http_only_session(svc):
    r = svc.call("POST", "/login", data={"token": svc.tok["reader"], "next": "/"}, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    r = svc.call("POST", "/login", data={"token": svc.tok["analyst"], "next": "/audit"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Secure" not in cookie
    session = {"cookie": cookie.split(";", 1)[0]}
    assert svc.call("GET", "/audit", headers=session).status_code == 200
    assert svc.call("GET", "/metrics", headers=session).status_code == 403  # the session is an analyst's, no more
    assert ("alice", "sign_in") in [r[:2] for r in svc.audit("sign_in")]


@pytest.mark.parametrize("proxies, expected", [(("127.0.0.1/32",), 200), (("10.0.0.0/8",), 401)], ids=["from-proxy", "elsewhere"])
def test_a_trusted_proxy_header_counts_only_from_the_proxy(tmp_path, proxies, expected):
    ctx, db, engine = _service(tmp_path, trusted_proxy_header="X-Forwarded-User", trusted_proxies=proxies)
    with ctx as url:
        r = httpx.get(url + "/audit", headers={"X-Forwarded-User": "carol@corp"})
        assert r.status_code == expected
        if expected == 200:
            csrf = re.search(r'name="csrf" value="([^"]+)"', httpx.get(url + "/campaigns/C-test",
                                                                      headers={"X-Forwarded-User": "carol@corp"}).text).group(1)
            httpx.post(url + "/actions", headers={"X-Forwarded-User": "carol@corp"}, data={
                "csrf": csrf, "action": "confirm", "target_kind": "campaign", "target_id": "C-test", "reason": "seen",
                "analyst": "mallory"})
            assert Service.audit(type("S", (), {"engine": engine, "db": db})(), "confirm")[-1][0] == "carol@corp"


# -- robust input --------------------------------------------------------------------------------------------
NONFINITE = [
    ("/v1/decide", "gateway", '{"account_id": "x", "temperature": NaN}', "temperature"),
    ("/v1/decide", "gateway", '{"account_id": "x", "top_p": Infinity}', "top_p"),
    ("/v1/decide", "gateway", '{"account_id": "x", "temperature": 1e999}', "temperature"),
    ("/v1/decide", "gateway", '{"account_id": "x", "top_p": -Infinity}', "top_p"),
    ("/v1/challenges/x/result", "verifier", '{"passed": NaN}', "passed"),
    ("/v1/challenges/x/result", "verifier", '{"passed": 1e999}', "passed"),
    ("/v1/decisions/x/labels", "analyst", '{"label": NaN}', "label"),
    ("/v1/decisions/x/labels", "analyst", '{"label": Infinity}', "label"),
]


@pytest.mark.parametrize("path, role, body, field", NONFINITE, ids=[b for _, _, b, _ in NONFINITE])
def test_non_finite_numbers_are_a_422_naming_the_field(svc, path, role, body, field):
    r = svc.call("POST", path, role, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["detail"]]


def test_feedback_survives_a_restart(tmp_path):
    db = fixture_store(tmp_path / "dg.duckdb")
    policy = enforce_policy(tmp_path)

    def run(check):
        engine = Engine(EngineConfig(db=str(db), policy=policy, refresh_seconds=3600, flush_seconds=0.2))
        with serving(engine) as url:
            return check(Service(url, db, engine))

    def first(s):
        d = s.decide(account_id="user-1")
        assert s.call("POST", f"/v1/decisions/{d['decision_id']}/labels", "analyst", json={"label": "fraudulent"}).status_code == 200
        d = s.decide(account_id="camp-1")
        assert s.call("POST", f"/v1/decisions/{d['decision_id']}/labels", "analyst", json={"label": "legitimate"}).status_code == 200
        c = s.decide(account_id="fresh-restart", client_ip="203.0.113.7")["challenge"]["challenge_id"]
        assert s.call("POST", f"/v1/challenges/{c}/result", "verifier", json={"passed": True}).status_code == 200
        c = s.decide(account_id="fresh-failed", client_ip="203.0.113.7")["challenge"]["challenge_id"]
        assert s.call("POST", f"/v1/challenges/{c}/result", "verifier", json={"passed": False}).status_code == 200

    def second(s):
        return {a: s.decide(account_id=a, client_ip="203.0.113.7")["action"]
                for a in ("user-1", "camp-1", "fresh-restart", "fresh-failed")}

    run(first)
    assert run(second) == {"user-1": "block", "camp-1": "allow", "fresh-restart": "allow", "fresh-failed": "block"}


@pytest.mark.parametrize("name, text", [
    ("bom.csv", "ts,account_id,prompt\n2026-03-01T00:00:00Z,a1,hello\n2026-03-01T00:01:00Z,a2,hi\n"),
    ("bom.jsonl", '{"ts": "2026-03-01T00:00:00Z", "account_id": "a1"}\n{"ts": "2026-03-01T00:01:00Z", "account_id": "a2"}\n'),
])
def test_a_utf8_byte_order_mark_is_stripped(tmp_path, monkeypatch, capsys, name, text):
    from conftest import run_main

    f = tmp_path / name
    f.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, out, err = run_main(monkeypatch, capsys, "ingest", f, "--db", tmp_path / "s.duckdb")
    assert code == 0 and "accepted 2, quarantined 0" in out, out + err


# -- private views, reads without side effects ---------------------------------------------------------------
def test_readers_get_keyed_hashes_and_no_prompts_analysts_reads_are_audited(svc):
    svc.decide(account_id="sec-view", client_ip="203.0.113.7")  # links the account to the campaign by IP
    before = dict(svc.engine.counters), len(svc.engine.state.decisions)
    for path in ("/v1/campaigns/C-test", "/v1/accounts/sec-view"):
        text = svc.call("GET", path, "reader").text
        assert "203.0.113.7" not in text and "pm_shared" not in text and "SECRET PROMPT" not in text and '"h:' in text
        text = svc.call("GET", path, "analyst").text
        assert "203.0.113.7" in text
    assert svc.call("GET", "/v1/campaigns/C-test", "analyst").json()["evidence"]["example_prompts"] == ["SECRET PROMPT TEXT"]
    assert svc.call("GET", "/v1/accounts/camp-0", "reader").json()["features"]["prompt_chars_mean"] > 0  # numbers stay
    assert svc.engine.counters["decisions"] == before[0]["decisions"] and len(svc.engine.state.decisions) == before[1]
    views = {(r[0], r[3]) for r in svc.audit("view", lambda r: r[3] == "sec-view")} | {(r[0], r[3]) for r in svc.audit("view")}
    assert {("alice", "C-test"), ("alice", "sec-view")} <= views and not any(r[0] == "reader-bot" for r in svc.audit("view"))


def test_ids_with_a_slash_open_in_the_api_and_the_console(svc):
    acc = "org/team/alice"
    r = svc.call("POST", "/v1/events", "gateway", json={"events": [{"account_id": acc, "ts": "2026-03-02T05:00:00Z",
                                                                      "prompt": "hello"}]})
    assert r.json()["accepted"] == 1
    v = svc.call("GET", "/v1/accounts/org%2Fteam%2Falice", "reader")
    assert v.status_code == 200 and v.json()["account_id"] == acc
    deadline = time.monotonic() + 10
    while (page := svc.call("GET", "/accounts/org%2Fteam%2Falice", "analyst")).status_code != 200:
        assert time.monotonic() < deadline, page.status_code  # the event reaches the store with the next flush
        time.sleep(0.2)
    assert acc in page.text


# -- the credentials themselves --------------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_tokens_are_printed_once_stored_as_hashes_listed_and_revoked(svc, tmp_path):
    proc = _cli("auth", "create-token", "--db", svc.db, "--role", "reader", "--name", "dashboard")
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"dg_[A-Za-z0-9_-]{43}", token)
    assert svc.call("GET", "/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200  # works at once
    with svc.engine.journal.db_lock:
        shutil.copy(svc.db, tmp_path / "copy.duckdb")
    con = duckdb.connect(str(tmp_path / "copy.duckdb"), read_only=True)
    stored = con.execute("SELECT token_sha256 FROM auth_tokens WHERE name = 'dashboard'").fetchall()
    con.close()
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(),)]
    assert token.encode() not in (tmp_path / "copy.duckdb").read_bytes()
    listing = _cli("auth", "list", "--db", svc.db).stdout
    assert "dashboard" in listing and token not in listing
    assert _cli("auth", "revoke", "dashboard", "--db", svc.db).returncode == 0
    deadline = time.monotonic() + 5
    while svc.call("GET", "/metrics", headers={"Authorization": f"Bearer {token}"}).status_code != 401:
        assert time.monotonic() < deadline, "a revoked token still works"
        time.sleep(0.2)
    assert {("token_create", "reader token 'dashboard'"), ("token_revoke", "reader token 'dashboard'")} <= {
        (r[1], json.loads(r[4]) and f"reader token '{json.loads(r[4])['name']}'") for r in svc.audit()
        if r[1].startswith("token_")}
    bad = _cli("auth", "create-token", "--db", svc.db, "--role", "admin", "--name", "x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_insecure_mode_is_refused_off_loopback_and_announced_on_it(tmp_path):
    from distillguard.serve.testing import free_port

    db = fixture_store(tmp_path / "dg.duckdb")
    p = _cli("serve", "--db", db, "--insecure-no-auth", "--host", "0.0.0.0")
    assert p.returncode == 2 and "loopback" in p.stderr and p.stderr.count("\n") == 1
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "serve", "--db", str(db), "--port", str(port),
                             "--insecure-no-auth"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/campaigns").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "--insecure-no-auth" in proc.stderr.read()
