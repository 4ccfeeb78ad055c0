"""Helpers for tests and benchmarks: a fixture store, a real uvicorn server on loopback, credentials.

Every route but ``/healthz`` needs a token (docs/security.md). In a test::

    with serving(engine) as url:
        h = auth_headers(make_token(engine.config.db, "gateway"))
        httpx.post(url + "/v1/decide", json=..., headers=h)

``make_token`` writes a real token into the store exactly as
``distillguard auth create-token`` does (the running service sees it at
once); for an engine without a store, ``serving(engine, tokens={tok: (name,
role)})`` hands tokens to the app directly. A client that only needs to
*reach* endpoints (not to test who may) can use ``RoleAuth(db)``: it sends,
per request, a token of the first role ``access.yaml`` allows there.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pyarrow as pa

__all__ = ["free_port", "serving", "redis_server", "fixture_store", "T0", "make_token", "auth_headers", "RoleAuth"]

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_token(db, role: str, name: str | None = None) -> str:
    """A new bearer token for ``role`` in the store ``db`` (as ``auth create-token`` makes it)."""
    from distillguard.auth import create_token

    token, _ = create_token(db, role, name or f"test-{role}", actor="test")
    return token


def auth_headers(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class RoleAuth(httpx.Auth):
    """An ``httpx.Auth`` sending, per request, a token of the first role the access rules allow for it.

    Tokens are made in ``db`` on first use, one per role, named ``test-<role>``.
    """

    def __init__(self, db):
        from distillguard.auth import AccessRules

        self.db = db
        self.rules = AccessRules.load()
        self.tokens: dict[str, str] = {}

    def token(self, role: str) -> str:
        if role not in self.tokens:
            self.tokens[role] = make_token(self.db, role)
        return self.tokens[role]

    def auth_flow(self, request):
        roles = self.rules.roles(request.method, request.url.path)
        if roles:
            from distillguard.auth import ROLES

            request.headers["Authorization"] = f"Bearer {self.token(next(r for r in ROLES if r in roles))}"
        yield request


@contextlib.contextmanager
def serving(engine, max_body_bytes: int = 1024 * 1024, timeout: float = 30.0, **security):
    """Run the service for ``engine`` under uvicorn in a thread; yields its base URL.

    ``security`` goes to :func:`distillguard.serve.app.create_app` (``tokens``,
    ``trusted_proxy_header``, ``trusted_proxies``, ``insecure_no_auth``).
    """
    import uvicorn

    from distillguard.serve import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, max_body_bytes=max_body_bytes, **security), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False, proxy_headers=False))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    t0 = time.monotonic()
    while not server.started:
        if not th.is_alive() or time.monotonic() - t0 > timeout:
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(timeout=15)


@contextlib.contextmanager
def redis_server(workdir):
    """A real ``redis-server`` on a free loopback port, no persistence; yields its URL (database 0).

    Raises ``RuntimeError`` when the Debian package is missing (``make deps-system`` installs it).
    """
    import shutil
    import subprocess

    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is missing: `make deps-system` installs it")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(200):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        r.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


TEMPLATE = ("You are grading answers. Think step by step and show your full reasoning before the verdict. "
            "Question {i}: what is {a} times {b}? Give the rubric score from 1 to 10 and explain each criterion.")


def fixture_store(path, n_campaign_accounts: int = 6, n_benign: int = 6):
    """A small store with events, account metadata and the tables a scan writes.

    One campaign ``C-test`` of ``camp-*`` accounts sharing a card
    (``pm_shared``), an IP (``203.0.113.7``) and a prompt template; benign
    ``user-*`` accounts. Template indicators are the band keys the scan's
    :func:`~distillguard.link.memberships.templates` computes.
    """
    from distillguard.link import memberships as mb
    from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA
    from distillguard.store import EventStore

    rows, accounts = [], []
    for i in range(n_campaign_accounts):
        acc = f"camp-{i}"
        accounts.append({"account_id": acc, "created_at": T0, "payment_fingerprint": "pm_shared", "email_domain": "mail.test"})
        for j in range(5):
            rows.append({"event_id": f"e-{acc}-{j}", "ts": T0 + timedelta(minutes=10 * j + i), "account_id": acc,
                         "client_ip": "203.0.113.7", "user_agent": "harvester/1.0", "model": "orion-2",
                         "prompt": TEMPLATE.format(i=j, a=i + 3, b=j + 7), "input_tokens": 60, "output_tokens": 1800})
    for i in range(n_benign):
        acc = f"user-{i}"
        accounts.append({"account_id": acc, "created_at": T0 - timedelta(days=30 + i), "payment_fingerprint": f"pm_{i}",
                         "email_domain": "example.org"})
        for j in range(3):
            rows.append({"event_id": f"e-{acc}-{j}", "ts": T0 + timedelta(hours=j, minutes=i), "account_id": acc,
                         "client_ip": f"198.51.100.{i + 1}", "user_agent": "Mozilla/5.0", "model": "orion-2",
                         "prompt": f"hi, can you help me plan a trip to city number {i}?", "input_tokens": 20,
                         "output_tokens": 200, "conversation_id": f"conv-{i}"})
    events = pa.Table.from_pylist([{f.name: r.get(f.name) for f in EVENT_SCHEMA} for r in rows], schema=EVENT_SCHEMA)
    meta = pa.Table.from_pylist([{f.name: a.get(f.name) for f in ACCOUNT_SCHEMA} for a in accounts], schema=ACCOUNT_SCHEMA)
    samples = pa.table({"account_id": [r["account_id"] for r in rows if r["account_id"].startswith("camp-")],
                        "prompt": [r["prompt"] for r in rows if r["account_id"].startswith("camp-")]})
    tmpl = mb.templates(samples, per_account=8)
    keys = sorted(set(tmpl.column("value").to_pylist()))
    with EventStore(path) as store:
        store.append_events([events])
        store.append_accounts(meta)
        con = store.con
        ar = [{"run_id": "run-1", "account_id": f"camp-{i}", "risk": 0.95, "action": "throttle", "campaign_id": "C-test",
               "reasons": ["SHARED_PAYMENT", "COT_ELICITATION"], "rule_id": "throttle-high-risk", "n_events": 5,
               "org_id": None, "reasons_json": '[{"code": "SHARED_PAYMENT", "weight": 2.1, "terms": ["link_payment_fingerprint"], "evidence": {}}, {"code": "COT_ELICITATION", "weight": 1.5, "terms": ["cot_elicitation"], "evidence": {}, "strong": true, "campaign_shared": true}]'}
              for i in range(n_campaign_accounts)]
        ar += [{"run_id": "run-1", "account_id": f"user-{i}", "risk": 0.01, "action": "allow", "campaign_id": None,
                "reasons": [], "rule_id": "default", "n_events": 3, "org_id": None, "reasons_json": "[]"} for i in range(n_benign)]
        schema = pa.schema([("run_id", pa.string()), ("account_id", pa.string()), ("risk", pa.float64()), ("action", pa.string()),
                            ("campaign_id", pa.string()), ("reasons", pa.list_(pa.string())), ("rule_id", pa.string()),
                            ("n_events", pa.int64()), ("org_id", pa.string()), ("reasons_json", pa.string())])
        con.register("_ar", pa.Table.from_pylist(ar, schema=schema))
        con.execute("CREATE OR REPLACE TABLE account_results AS SELECT * FROM _ar")
        con.execute(
            "CREATE OR REPLACE TABLE campaigns AS SELECT 'run-1' AS run_id, 'C-test' AS campaign_id, 0.95 AS risk, "
            "'throttle' AS action, CAST(? AS BIGINT) AS n_accounts, CAST(? AS BIGINT) AS n_events, "
            "TIMESTAMPTZ '2026-03-02 00:00:00+00' AS first_seen, TIMESTAMPTZ '2026-03-02 01:00:00+00' AS last_seen, "
            "['SHARED_PAYMENT', 'COT_ELICITATION'] AS reasons, '{\"campaign_id\": \"C-test\"}' AS evidence_json",
            [n_campaign_accounts, 5 * n_campaign_accounts])
        ind = [("payment_fingerprint", "pm_shared", 6.0), ("client_ip", "203.0.113.7", 3.0), ("subnet", "203.0.113.0/24", 1.0),
               ("user_agent", "harvester/1.0", 1.0)] + [("template", k, 1.0) for k in keys]
        con.register("_ind", pa.table({"campaign_id": ["C-test"] * len(ind), "kind": [k for k, _, _ in ind],
                                       "value": [v for _, v, _ in ind], "weight": [w for _, _, w in ind]}))
        con.execute("CREATE OR REPLACE TABLE campaign_indicators AS SELECT * FROM _ind")
        con.execute("CREATE TABLE IF NOT EXISTS scan_runs (run_id VARCHAR, finished_at TIMESTAMPTZ, n_events BIGINT, "
                    "n_accounts BIGINT, n_campaigns BIGINT, policy_sha256 VARCHAR, timings_json VARCHAR)")
    return path
