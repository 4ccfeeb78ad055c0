"""Analyst console end to end: real scan, real uvicorn server on loopback, Debian's Chromium via Playwright.

Attacker-controlled text (a ``<script>`` and an ``<img onerror>``) is planted in
the prompts and user agents of one campaign's accounts before the scan; every
page is then opened in the browser and must not run it. Screenshots go to
``test-artifacts/console/``.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
PAYLOAD_PROMPT = ("<script>window.__pwned=1;document.title='PWNED'</script>"
                  "<img src=x onerror=\"window.__pwned=1;document.title='PWNED'\">")
PAYLOAD_UA = "<img src=x onerror=\"window.__pwned=2;document.title='PWNED'\">Mozilla/5.0"

pytestmark = pytest.mark.slow


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def store(smoke_traffic, tmp_path_factory):
    """A store scanned from smoke traffic whose largest campaign carries planted HTML/JS payloads."""
    work = tmp_path_factory.mktemp("console")
    labels = pq.read_table(smoke_traffic / "labels.parquet").to_pylist()
    sizes: dict[str, list[str]] = {}
    for r in labels:
        if r["campaign_id"]:
            sizes.setdefault(r["campaign_id"], []).append(r["account_id"])
    target = set(max(sizes.values(), key=len))
    ev = pq.read_table(smoke_traffic / "events.parquet")
    rows = ev.to_pylist()
    for r in rows:
        if r["account_id"] in target:
            r["prompt"] = (r["prompt"] or "") + "\n" + PAYLOAD_PROMPT
            r["user_agent"] = PAYLOAD_UA
    pq.write_table(pa.Table.from_pylist(rows, schema=ev.schema), work / "events.parquet")
    db = work / "dg.duckdb"
    _cli("scan", work / "events.parquet", "--accounts", smoke_traffic / "accounts.parquet", "--db", db,
         "--out", work / "scan", "--quiet")
    return db, work, target


@contextmanager
def _serving(app):
    """A real uvicorn server on a free loopback port, in a thread."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(10)


TOKENS: dict[str, str] = {}  # analyst name -> token


@pytest.fixture(scope="module")
def server(store):
    """The decision service (which mounts the console) on the scanned store; two analyst tokens."""
    from distillguard.serve import Engine, EngineConfig, create_app
    from distillguard.serve.testing import make_token

    for name in ("alice@trust-safety", "bob"):
        TOKENS[name] = make_token(store[0], "analyst", name)
    engine = Engine(EngineConfig(db=str(store[0]), refresh_seconds=3600, warm_max_events=0))
    with _serving(create_app(engine)) as url:
        yield url


def sign_in(p, server, name):
    """The console's sign-in form: any page answers 401 with it until an analyst token is given."""
    page = p.page
    resp = page.goto(server + "/")
    assert resp.status == 401 and page.locator("input[name=token]").count() == 1
    page.fill("input[name=token]", TOKENS[name])
    page.click("form button[type=submit]")
    page.wait_for_selector("table.queue")
    cookie = next(c for c in page.context.cookies() if c["name"] == "dg_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    p.problems.remove("console: Failed to load resource: the server responded with a status of 401 (Unauthorized)")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class Page:
    """A page that records console errors, CSP violations and dialogs (an alert() would be one)."""

    def __init__(self, browser):
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.ctx.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def assert_clean(self):
        assert self.page.evaluate("window.__pwned") is None, "planted script ran"
        assert self.page.title() != "PWNED"
        assert not self.problems, self.problems

    def shot(self, name):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _campaign_of(db, accounts):
    import duckdb

    con = duckdb.connect(str(db))
    try:
        rows = con.execute("SELECT campaign_id, evidence_json FROM campaigns ORDER BY risk DESC").fetchall()
    finally:
        con.close()
    best = max(rows, key=lambda r: len(set(json.loads(r[1])["accounts"]) & accounts))
    return best[0], json.loads(best[1])


def test_queue_campaign_graph_confirm_and_audit(server, store, browser):
    db, _, target = store
    cid, ev = _campaign_of(db, target)
    p = Page(browser)
    page = p.page
    sign_in(p, server, "alice@trust-safety")
    resp = page.goto(server + "/")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.locator("table.queue tbody tr").count() >= 2
    risks = [float(x) for x in page.locator("table.queue tbody tr td:nth-child(2)").all_inner_texts()]
    assert risks == sorted(risks, reverse=True), "ranked by risk"
    p.shot("01-queue")
    p.assert_clean()

    page.click(f"a.cid:text-is('{cid}')")
    page.wait_for_selector("#graph[data-ready]")
    assert int(page.get_attribute("#graph", "data-ready")) > len(ev["accounts"]) // 2, "accounts drawn in the graph"
    assert page.evaluate("window.__dgGraph.edges().length") > 0, "hubs link the accounts"
    assert page.locator("tr.member").count() == len(ev["accounts"])
    assert page.locator("tr.member a").first.get_attribute("href").startswith("/accounts/")
    page.wait_for_selector("#volume[data-ready] canvas")
    # the planted text is shown as text, never run
    assert page.locator("pre.prompt", has_text="<script>window.__pwned=1").count() >= 1
    p.shot("02-campaign")
    p.assert_clean()

    form = page.locator("#decide form")
    assert form.locator("input[name=analyst]").count() == 0, "the analyst is the signed-in token, never a typed name"
    form.locator("input[name=reason]").fill("shared cards and CoT harvesting <img src=x onerror=\"window.__pwned=3\">")
    form.locator("button[value=confirm]").click()
    page.wait_for_selector("#history tr.audit-row")
    row = page.locator("#history tr.audit-row").first
    assert "confirm" in row.inner_text().lower() and "alice@trust-safety" in row.inner_text()
    assert "onerror=" in row.inner_text(), "the reason is shown literally"
    assert page.locator("h1 .status").inner_text().lower() == "confirm" + "ed"
    p.shot("03-confirmed")
    p.assert_clean()

    page.goto(server + "/audit")
    assert "Hash chain intact" in page.locator("main").inner_text()
    actions = [a.lower() for a in page.locator("tr.audit-row td:nth-child(4)").all_inner_texts()]
    assert actions.count("confirm") == 1 and "sign_in" in actions
    p.shot("04-audit")
    p.assert_clean()

    page.goto(server + "/?status=confirmed")
    assert page.locator("table.queue tbody tr").count() == 1
    p.assert_clean()

    # the decision is in the store, chained, and fed back for the next scan
    from distillguard.audit import analyst_overrides, verify_audit_chain

    ov = analyst_overrides(db)
    assert cid in ov.confirmed_campaign_ids
    assert verify_audit_chain(db) == (True, None)


def test_account_page_shows_events_signals_and_links(server, store, browser):
    db, _, target = store
    acct = sorted(target)[0]
    p = Page(browser)
    page = p.page
    sign_in(p, server, "bob")
    page.goto(f"{server}/accounts/{acct}")
    page.wait_for_selector("#volume[data-ready] canvas")
    assert acct in page.locator("h1").inner_text()
    assert page.locator("table.events tr").count() > 1
    assert page.locator("td.ua", has_text="onerror=").count() >= 1, "user agent shown as text"
    assert page.locator("details.signal").count() >= 1
    p.shot("05-account")
    p.assert_clean()
    # allowlist the account: it comes back through analyst_overrides
    form = page.locator("#decide form").first
    form.locator("input[name=reason]").fill("known research partner")
    form.locator("button[value=allowlist]").click()
    page.wait_for_selector("#history tr.audit-row")
    assert "bob" in page.locator("#history tr.audit-row").first.inner_text()
    from distillguard.audit import analyst_overrides

    assert acct in analyst_overrides(db).allow_accounts
    p.assert_clean()


def test_filters_pagination_and_refusals(server, store, browser):
    import urllib.error
    import urllib.request

    p = Page(browser)
    page = p.page
    sign_in(p, server, "bob")
    page.goto(server + "/?min_size=1000")
    assert page.locator("p.empty").count() == 1
    page.goto(server + "/?reason=COT_ELICITATION&date_from=2000-01-01&date_to=2100-01-01&status=open")
    assert page.locator("table.queue tbody tr").count() >= 1
    p.assert_clean()
    assert page.goto(server + "/campaigns/nope").status == 404
    assert page.goto(server + "/static/../app.py").status in (403, 404)  # /app.py: no rule names it, default deny
    # a POST without a credential, then with one but without the form's token, is refused
    body = b"action=confirm&target_kind=campaign&target_id=x&analyst=a&reason=b"
    for headers, code in (({}, 401), ({"Authorization": f"Bearer {TOKENS['bob']}"}, 403)):
        req = urllib.request.Request(server + "/actions", data=body, method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == code


def test_report_html_does_not_run_planted_script(store, browser):
    _, work, _ = store
    html = (work / "scan" / "report.html")
    p = Page(browser)
    p.page.goto(html.resolve().as_uri())
    assert "<script>window.__pwned" in p.page.locator("body").inner_text()
    p.shot("06-report")
    p.assert_clean()


def test_the_decision_service_mounts_the_console(store, tmp_path):
    """When distillguard.serve's app factory is there, the console's pages are part of it."""
    serve = pytest.importorskip("distillguard.serve")
    if not all(hasattr(serve, n) for n in ("Engine", "EngineConfig", "create_app")):
        pytest.skip("decision service not built yet")
    import shutil

    db = tmp_path / "serve.duckdb"
    shutil.copy(store[0], db)
    import urllib.request

    from distillguard.serve.testing import auth_headers, make_token

    headers = auth_headers(make_token(db, "analyst"))
    app = serve.create_app(serve.Engine(serve.EngineConfig(db=str(db))), start_engine=False)
    with _serving(app) as url:
        for path in ("/", "/audit", "/static/console.js"):
            with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers)) as resp:
                assert resp.status == 200
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        with urllib.request.urlopen(url + "/healthz") as resp:
            assert resp.status == 200
