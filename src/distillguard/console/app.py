"""The analyst console: a FastAPI router of server-rendered pages.

Security model: every logged field is attacker-controlled. Templates
autoescape everything; data for the charts travels as JSON inside
``<script type="application/json">`` (Jinja's ``tojson`` escapes ``<``, ``>``,
``&`` and ``'``) and is read with ``JSON.parse``; the only scripts are files
served from the package, and every response carries a Content-Security-Policy
with ``script-src 'self'`` (no inline script, no eval, no CDN). POSTs carry a
per-process CSRF token and must come from the same origin.

Identity: the analyst is the name of the credential that signed in (an
analyst token exchanged at ``/login`` for a session cookie, or a trusted
proxy's header; see :mod:`distillguard.auth`), never a typed name.
"""
from __future__ import annotations

import dataclasses
import hmac
import secrets
import threading
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape

from distillguard import audit
from distillguard.console import data
from distillguard.errors import UsageError
from distillguard.auth import CSP, SECURITY_HEADERS, over_tls, who as _who

__all__ = ["console_router", "CSP", "SECURITY_HEADERS"]

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}

env = Environment(loader=PackageLoader("distillguard.console", "templates"), autoescape=select_autoescape(default=True, default_for_string=True))
env.filters["fmt_risk"] = lambda v: "" if v is None or isinstance(v, Undefined) else f"{float(v):.3f}"  # no scan result yet
env.filters["fmt_ts"] = lambda v: "" if v is None else str(v)[:16].replace("T", " ")
env.filters["thousands"] = lambda v: "" if v is None else f"{int(v):,}"
env.filters["urlq"] = lambda v: quote(str(v), safe="")


class _Store:
    """A DuckDB connection per request, opened and closed under a lock.

    The decision service opens the same file for short reads and journal
    writes under its own lock; passing that lock (``console_router(db,
    lock=...)``) keeps the two from holding the file with different settings
    at once, which DuckDB refuses within one process.
    """

    def __init__(self, path, lock=None):
        self.path = str(path)
        self.lock = lock or threading.Lock()
        self._ready = False

    @contextmanager
    def open(self):
        import duckdb

        with self.lock:
            try:
                con = duckdb.connect(self.path)
            except duckdb.Error as exc:
                raise UsageError(f"cannot open store {self.path}: {str(exc).splitlines()[0]}") from exc
            try:
                con.execute("SET TimeZone = 'UTC'")
                if not self._ready:
                    audit.ensure_tables(con)
                    self._ready = True
                yield con
            finally:
                con.close()


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _int(v, default=None):
    try:
        return int(v) if v not in (None, "") else default
    except ValueError:
        return default


def console_router(store_path: str | Path | None, prices_path: str | Path | None = None, title: str = "distillguard console",
                   lock=None, auth=None) -> APIRouter:
    """The console's routes, to mount at ``/`` (``app.include_router(console_router(db))``).

    ``store_path`` is the DuckDB file a scan wrote with ``--db``;
    ``prices_path`` a YAML price list (default: the packaged ``prices.yaml``);
    ``lock`` a ``threading.Lock`` shared with anything else in the process
    that opens the same DuckDB file (the decision service's store lock);
    ``auth`` the service's ``(TokenBook, Sessions)`` for the sign-in form
    (the router's ``login_page`` renders it for the gate's 401).
    """
    router = APIRouter(include_in_schema=False)
    if store_path is None:  # a service started without a store: say so instead of a 404
        @router.get("/", response_class=HTMLResponse)
        def no_store():
            return _html(env.get_template("error.html.j2").render(
                title=title, root="", message="No store to review: start the service with --db DB (a store a scan wrote)."), 503)

        return router
    console = _Console(_Store(store_path, lock), data.load_prices(prices_path), secrets.token_urlsafe(24), title)
    router.login_page = console.login_page
    if auth is not None:
        _sign_in_routes(router, console, *auth)
    _asset_routes(router)
    _review_routes(router, console)
    _action_routes(router, console)
    return router


@dataclasses.dataclass
class _Console:
    """What every console page shares: the store, the price list, this process's CSRF token and the title."""

    store: _Store
    prices: dict
    csrf: str
    title: str

    def render(self, name: str, request: Request, status: int = 200, **ctx) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _html(env.get_template(name).render(title=self.title, root=root, csrf=self.csrf, who=_who(request), **ctx), status)

    def login_page(self, path: str, message: str = "") -> str:
        return env.get_template("login.html.j2").render(title=self.title, root="", csrf="", who=None, next=_local(path),
                                                        message=message)

    def not_found(self, request: Request, what: str) -> HTMLResponse:
        return self.render("error.html.j2", request, 404, message=f"No {what} here.")

    async def checked_form(self, request: Request, limit: int):
        """A same-origin form post carrying this process's CSRF token, or the 403 refusing it."""
        form = await _form(request, limit)
        if not isinstance(form, Response) and not hmac.compare_digest(form.get("csrf", ""), self.csrf):
            return PlainTextResponse("stale form: reload the page", 403, headers=SECURITY_HEADERS)
        return form

    def audit_sign_in(self, name: str) -> None:
        with self.store.open() as con:
            audit.log_event(con, analyst=name, action="sign_in", target_kind="console", target_id=name)


def _sign_in_routes(router: APIRouter, console: _Console, book, sessions) -> None:
    """``/login`` exchanges a live analyst token for a session cookie; ``/logout`` drops it."""
    from distillguard.auth import SESSION_COOKIE, lookup_fresh, token_sha256

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        return _html(console.login_page(request.query_params.get("next", "/")))

    @router.post("/login")
    async def login(request: Request):
        form = await _form(request, 8192)
        if isinstance(form, Response):
            return form
        h = token_sha256(form.get("token", "").strip())
        p = book.get(h) or await lookup_fresh(book, h)
        if p is None or p.role != "analyst":
            return _html(console.login_page(form.get("next", "/"), "That is not a live analyst token."), 401)
        sid = sessions.create(dataclasses.replace(p, via="session"))
        await run_in_threadpool(console.audit_sign_in, p.name)
        r = RedirectResponse(_local(form.get("next")), status_code=303, headers=SECURITY_HEADERS)
        r.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", secure=over_tls(request),
                     max_age=sessions.seconds, path="/")
        return r

    @router.post("/logout")
    async def logout(request: Request):
        refused = await console.checked_form(request, 4096)
        if isinstance(refused, Response):  # a cross-site page must not sign the analyst out
            return refused
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            sessions.drop(sid)
        r = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
        r.delete_cookie(SESSION_COOKIE, path="/")
        return r


def _asset_routes(router: APIRouter) -> None:
    """The packaged script and style files (open: the sign-in page needs them)."""

    @router.get("/static/{name:path}")
    def static(name: str):
        base = resources.files("distillguard.console").joinpath("static")
        parts = [p for p in name.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            return PlainTextResponse("not found", 404, headers=SECURITY_HEADERS)
        f = base.joinpath(*parts)
        suffix = Path(parts[-1]).suffix
        if suffix not in _STATIC_TYPES or not f.is_file():
            return PlainTextResponse("not found", 404, headers=SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
        return Response(f.read_bytes(), media_type=_STATIC_TYPES[suffix], headers=headers)

    @router.get("/favicon.ico")
    def favicon():
        return Response(status_code=204, headers=SECURITY_HEADERS)


def _review_routes(router: APIRouter, console: _Console) -> None:
    """The pages analysts review: the campaign queue, a campaign, an account, the audit log."""
    store, render = console.store, console.render

    @router.get("/", response_class=HTMLResponse)
    def queue_page(request: Request):
        q = request.query_params
        filters = {"status": q.get("status", ""), "reason": q.get("reason", ""), "min_size": q.get("min_size", ""),
                   "max_size": q.get("max_size", ""), "date_from": q.get("date_from", ""), "date_to": q.get("date_to", ""),
                   "operator": q.get("operator", "")[:64]}
        with store.open() as con:
            res = data.queue(con, status=filters["status"], reason=filters["reason"], min_size=_int(filters["min_size"]),
                             max_size=_int(filters["max_size"]), date_from=_valid_date(filters["date_from"]),
                             date_to=_valid_date(filters["date_to"]), operator=filters["operator"], page=_int(q.get("page"), 1))
            head = audit.audit_head(con)
        keep = {k: v for k, v in filters.items() if v}
        return render("queue.html.j2", request, res=res, filters=filters, statuses=data.STATUSES, head=head,
                      prev_qs=urlencode({**keep, "page": res["page"] - 1}), next_qs=urlencode({**keep, "page": res["page"] + 1}))

    @router.get("/campaigns/{campaign_id:path}", response_class=HTMLResponse)
    def campaign_page(campaign_id: str, request: Request):
        with store.open() as con:
            c = data.campaign_detail(con, campaign_id, console.prices)
            if c is None:
                return console.not_found(request, "campaign " + campaign_id)
            graph = data.graph_data(con, c["ev"])
            volume = data.account_volume(con, c["ev"].get("accounts") or [])
            history = audit.audit_rows(con, "campaign", campaign_id)
        return render("campaign.html.j2", request, c=c, graph=graph, volume=volume, history=history, actions=audit.ACTIONS)

    @router.get("/accounts/{account_id:path}", response_class=HTMLResponse)
    def account_page(account_id: str, request: Request):
        with store.open() as con:
            a = data.account_detail(con, account_id)
            if a is None:
                return console.not_found(request, "account " + account_id)
            history = audit.audit_rows(con, "account", account_id)
            if a["meta"] and a["meta"].get("org_id"):
                history += audit.audit_rows(con, "org", a["meta"]["org_id"])
        return render("account.html.j2", request, a=a, history=history, account_id=account_id)

    @router.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request):
        with store.open() as con:
            rows = audit.audit_rows(con, limit=500)
            ok, bad = audit.verify_audit_chain(con)
            head = audit.audit_head(con)
            signature = audit.verify_audit_signature(con, audit.trusted_public_key())
        return render("audit.html.j2", request, rows=rows, ok=ok, bad=bad, head=head, signature=signature)


def _action_routes(router: APIRouter, console: _Console) -> None:
    """Analysts' actions on a campaign, account or org, recorded in the audit chain under the signed-in name."""

    @router.post("/actions")
    async def action(request: Request):
        form = await console.checked_form(request, 65536)
        if isinstance(form, Response):
            return form
        kind, target = form.get("target_kind", ""), form.get("target_id", "")
        analyst = _who(request) or ""  # the signed-in credential; a typed name is never the identity

        def write():
            with console.store.open() as con:
                audit.record_action(con, action=form.get("action", ""), target_kind=kind, target_id=target,
                                    analyst=analyst, reason=form.get("reason", ""))

        try:
            await run_in_threadpool(write)
        except UsageError as exc:
            return console.render("error.html.j2", request, 400, message=str(exc))
        return RedirectResponse(_local(form.get("back")) + "#history", status_code=303, headers=SECURITY_HEADERS)


def _local(path: str | None) -> str:
    """``path`` when it is a path on this site, else ``/`` (never an open redirect)."""
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


async def _form(request: Request, limit: int):
    """A same-origin form post as a dict (first value per field), or the 403 refusing a cross-origin one."""
    origin = request.headers.get("origin")
    if origin and origin != f"{'https' if over_tls(request) else 'http'}://{request.headers.get('host')}":
        return PlainTextResponse("cross-origin request refused", 403, headers=SECURITY_HEADERS)
    body = (await request.body())[:limit].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _valid_date(s: str) -> str:
    import re

    return s if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s or "") else ""
