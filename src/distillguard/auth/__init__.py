"""Who may do what on the service: scoped bearer tokens, console sessions, one default-deny gate.

- Tokens: ``dg_`` + 256 random bits (URL-safe base64), printed once by
  ``distillguard auth create-token``; the store's ``auth_tokens`` table keeps
  only the SHA-256 of each, its name, role and revocation time.
- :class:`AccessRules` (``access.yaml``): method + path pattern -> roles. A
  request no rule names is refused, so a route added later is closed until
  someone writes its rule.
- :class:`AuthGate`: ASGI middleware in front of the whole app. No or unknown
  credential -> 401; a credential whose role the rule does not list -> 403.
  The caller (:class:`Principal`) travels in ``request.state.principal``:
  its *name* is the identity audit rows carry.
- Console sign-in: an analyst token exchanged for a session cookie
  (HttpOnly, SameSite=Strict, Secure over TLS), or, when configured, a
  header set by a trusted reverse proxy on requests from its address.
- Forwarded headers count only from a trusted proxy's address: the
  analyst header, and ``X-Forwarded-Proto`` (whether the browser's
  connection was TLS, :func:`over_tls`). The server itself trusts none
  (uvicorn runs with ``proxy_headers=False``).
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import yaml

from distillguard.errors import UsageError

__all__ = ["ROLES", "Principal", "AccessRules", "TokenBook", "Sessions", "AuthGate", "create_token", "list_tokens",
           "revoke_token", "token_sha256", "SESSION_COOKIE", "who", "role", "over_tls", "CSP", "SECURITY_HEADERS"]

ROLES = ("gateway", "verifier", "analyst", "reader")
SESSION_COOKIE = "dg_session"
SESSION_SECONDS = 8 * 3600
# Headers of every HTML answer: the console's pages and the sign-in form the gate sends.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_DDL = ("CREATE TABLE IF NOT EXISTS auth_tokens (token_id VARCHAR PRIMARY KEY, name VARCHAR, role VARCHAR, "
        "token_sha256 VARCHAR UNIQUE, created_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ)")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: ``name`` (the credential's name), ``role``, and how it signed in."""

    name: str
    role: str
    via: str  # token | session | proxy | insecure
    token_sha256: str | None = None


INSECURE = Principal("insecure-no-auth", "*", "insecure")


def who(request) -> str | None:
    """The name of the credential that made the request (what audit rows carry); None on open routes."""
    p = getattr(request.state, "principal", None)
    return p.name if p is not None else None


def role(request) -> str:
    p = getattr(request.state, "principal", None)
    return p.role if p is not None else ""


def over_tls(request) -> bool:
    """Whether the browser reached us over TLS: directly, or through a trusted proxy saying so (the gate decides)."""
    return bool(getattr(request.state, "tls", request.url.scheme == "https"))


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# -- the token table (CLI side) ------------------------------------------------------------
def _connect(db, retries: float = 10.0):
    """Open the store read-write, waiting while a running service holds it for a moment."""
    import duckdb

    if not Path(db).is_file():
        raise UsageError(f"no store at {db} (the file `distillguard serve --db` runs on)")
    deadline = time.monotonic() + retries
    while True:
        try:
            return duckdb.connect(str(db))
        except duckdb.IOException as exc:  # the file lock of another process: brief, retry
            if time.monotonic() > deadline:
                raise UsageError(f"cannot open store {db}: {str(exc).splitlines()[0]}") from None
            time.sleep(0.1)
        except duckdb.Error as exc:
            raise UsageError(f"cannot open store {db}: {str(exc).splitlines()[0]}") from None


def create_token(db, role: str, name: str, actor: str) -> tuple[str, dict]:
    """A new token for ``role``; returns ``(token, row)``. Only its hash is stored; the change is audited."""
    from distillguard.audit import log_event

    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    name = (name or "").strip()
    if not name or len(name) > 200 or any(c in name for c in "\r\n\t"):
        raise UsageError("a token needs a name (1-200 characters, one line): who or what uses it")
    token = "dg_" + secrets.token_urlsafe(32)
    h = token_sha256(token)
    row = {"token_id": h[:12], "name": name, "role": role, "created_at": datetime.now(timezone.utc)}
    con = _connect(db)
    try:
        con.execute(_DDL)
        con.execute("INSERT INTO auth_tokens VALUES (?, ?, ?, ?, ?, NULL)", [row["token_id"], name, role, h, row["created_at"]])
        log_event(con, analyst=actor, action="token_create", target_kind="token", target_id=row["token_id"],
                  reason=f"{role} token {name!r}", details={"role": role, "name": name})
    finally:
        con.close()
    return token, row


def list_tokens(db) -> list[dict]:
    con = _connect(db)
    try:
        con.execute(_DDL)
        cols = ("token_id", "name", "role", "created_at", "revoked_at")
        return [dict(zip(cols, r)) for r in con.execute(f"SELECT {', '.join(cols)} FROM auth_tokens ORDER BY created_at").fetchall()]
    finally:
        con.close()


def revoke_token(db, which: str, actor: str) -> list[dict]:
    """Revoke the live tokens whose id or name is ``which``; returns them (the change is audited)."""
    from distillguard.audit import log_event

    con = _connect(db)
    try:
        con.execute(_DDL)
        rows = con.execute("SELECT token_id, name, role FROM auth_tokens WHERE (token_id = ? OR name = ?) "
                           "AND revoked_at IS NULL", [which, which]).fetchall()
        for tid, name, role in rows:
            con.execute("UPDATE auth_tokens SET revoked_at = now() WHERE token_id = ?", [tid])
            log_event(con, analyst=actor, action="token_revoke", target_kind="token", target_id=tid,
                      reason=f"{role} token {name!r}", details={"role": role, "name": name})
    finally:
        con.close()
    return [{"token_id": t, "name": n, "role": r} for t, n, r in rows]


# -- the service side --------------------------------------------------------------------------
class TokenBook:
    """Live tokens by hash, read from the store.

    Checked every ``max_age`` seconds and reloaded in the background when the
    store file changed (requests meanwhile use the current book; revocation
    takes effect within about ``max_age``), and when an unknown token arrives,
    at most once per ``min_gap`` seconds (that request waits for its turn: a
    token made a moment ago works at once). The store is opened only when the
    file changed since the last read: opening DuckDB costs milliseconds the
    event loop would feel, and a flood of wrong tokens costs a ``stat``.
    """

    def __init__(self, db, lock=None, max_age: float = 2.0, min_gap: float = 0.25, extra: dict | None = None):
        self.db = str(db) if db else None
        self.lock = lock or threading.Lock()
        self.max_age = max_age
        self.min_gap = min_gap
        self.extra = dict(extra or {})  # hash -> Principal, for tokens handed in by code (tests, embedding)
        self.by_hash: dict[str, Principal] = dict(self.extra)
        self.loaded_at = 0.0
        self.tried_at = 0.0
        self._reloading = threading.Lock()
        self._read_stamp = None  # the store file's (mtime, size) when the book was read

    def _stamp(self):
        out = []
        for path in (self.db, self.db + ".wal"):
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def refresh_if_stale(self) -> None:
        """Every ``max_age`` seconds: a background reload if the store changed (never blocks the caller)."""
        if time.monotonic() - self.loaded_at <= self.max_age or self._reloading.locked():
            return
        self.loaded_at = time.monotonic()  # one check per period, even if the reload fails
        if self.db and self._stamp() != self._read_stamp:
            threading.Thread(target=self.reload, args=(time.monotonic(),), daemon=True).start()

    def wait_for_turn(self) -> float:
        """Seconds until an unknown token may cause a reload."""
        return max(0.0, self.min_gap - (time.monotonic() - self.tried_at))

    def reload(self, unless_after: float | None = None) -> None:
        """Read the live tokens; skipped when another reload finished after ``unless_after`` (monotonic)."""
        with self._reloading:
            if unless_after is not None and self.tried_at > unless_after:
                return
            self._reload()

    def _reload(self) -> None:
        self.tried_at = time.monotonic()
        if not self.db or not Path(self.db).exists():
            self.loaded_at = time.monotonic()
            return
        stamp = self._stamp()
        if stamp == self._read_stamp:  # nothing written since the last read: no token can be new or revoked
            self.loaded_at = time.monotonic()
            return
        import duckdb

        with self.lock:
            try:
                con = duckdb.connect(self.db)
            except duckdb.Error:
                return  # another process holds the file: keep the book we have, try again soon
            try:
                n = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'auth_tokens'").fetchall()[0][0]
                rows = con.execute("SELECT token_sha256, name, role FROM auth_tokens WHERE revoked_at IS NULL").fetchall() if n else []
            finally:
                con.close()
        self.by_hash = {**self.extra, **{h: Principal(name, role, "token", h) for h, name, role in rows}}
        self.loaded_at = time.monotonic()
        self._read_stamp = stamp

    def get(self, token_hash: str) -> Principal | None:
        return self.by_hash.get(token_hash)


class Sessions:
    """Console sessions: a random id in an HttpOnly cookie -> the analyst token's principal (memory only)."""

    def __init__(self, seconds: int = SESSION_SECONDS):
        self.seconds = seconds
        self._s: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            for k in [k for k, (_, exp) in self._s.items() if exp < now]:
                del self._s[k]
            self._s[sid] = (principal, now + self.seconds)
        return sid

    def get(self, sid: str) -> Principal | None:
        hit = self._s.get(sid)
        if hit is None or hit[1] < time.time():
            return None
        return hit[0]

    def drop(self, sid: str) -> None:
        with self._lock:
            self._s.pop(sid, None)


class AccessRules:
    """The role table (``access.yaml``): which roles may call a method + path; ``"open"`` for no credential."""

    def __init__(self, doc: dict):
        def compile_(r):
            methods = {m.upper() for m in r["methods"]}
            return (None if "*" in methods else frozenset(methods), re.compile(r["path"], re.DOTALL), frozenset(r.get("roles") or ()))

        self.open = [compile_(r) for r in doc.get("open") or ()]
        self.rules = [compile_(r) for r in doc.get("rules") or ()]
        for _, _, roles in self.rules:
            bad = roles - set(ROLES)
            if bad:
                raise UsageError(f"access rules name unknown roles {sorted(bad)}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> "AccessRules":
        text = Path(path).read_text() if path else resources.files("distillguard.auth").joinpath("access.yaml").read_text()
        return cls(yaml.safe_load(text))

    @staticmethod
    def _match(rules, method: str, path: str):
        for methods, pattern, roles in rules:
            if (methods is None or method in methods) and pattern.fullmatch(path):
                return roles
        return None

    def is_open(self, method: str, path: str) -> bool:
        return self._match(self.open, method, path) is not None

    def roles(self, method: str, path: str) -> frozenset:
        """The roles allowed (empty: nobody, the default)."""
        return self._match(self.rules, method, path) or frozenset()


async def lookup_fresh(book: TokenBook, token_hash: str) -> Principal | None:
    """Look an unknown token up again after re-reading the store (rate-limited, see :class:`TokenBook`)."""
    import asyncio

    from starlette.concurrency import run_in_threadpool

    asked = time.monotonic()
    wait = book.wait_for_turn()
    if wait:
        await asyncio.sleep(wait)
    await run_in_threadpool(book.reload, asked)
    return book.get(token_hash)


def _json(status: int, detail: str, extra: list | None = None) -> tuple[int, list, bytes]:
    import orjson

    body = orjson.dumps({"detail": detail})
    return status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *(extra or [])], body


class AuthGate:
    """ASGI middleware: authenticate, then authorise by :class:`AccessRules`; nothing passes by default.

    Parameters
    ----------
    book, sessions, rules
        Live tokens, console sessions, the role table.
    insecure
        ``--insecure-no-auth``: every request is let through as :data:`INSECURE` (loopback demos only).
    proxy_header, proxy_networks
        ``--trusted-proxy-header`` / ``--trusted-proxy``: a request from one of these networks carrying the
        header is the analyst it names.
    login_page
        ``login_page(path) -> str``: the HTML sign-in form sent with a 401 to a browser asking for a console page.
    """

    def __init__(self, app, book: TokenBook, sessions: Sessions, rules: AccessRules, insecure: bool = False,
                 proxy_header: str | None = None, proxy_networks=(), login_page=None):
        self.app = app
        self.book = book
        self.sessions = sessions
        self.rules = rules
        self.insecure = insecure
        self.proxy_header = proxy_header.lower().encode() if proxy_header else None
        self.proxy_networks = [ipaddress.ip_network(n, strict=False) for n in proxy_networks]
        self.login_page = login_page

    def _known(self, token_hash: str | None) -> Principal | None:
        """The live token's principal from the current book (a changed store is re-read in the background)."""
        self.book.refresh_if_stale()
        return self.book.get(token_hash) if token_hash else None

    async def _lookup(self, token: str) -> Principal | None:
        h = token_sha256(token)
        return self._known(h) or await lookup_fresh(self.book, h)

    def _from_trusted_proxy(self, scope) -> bool:
        client = scope.get("client")
        if not client or not self.proxy_networks:
            return False
        try:
            ip = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(ip in n for n in self.proxy_networks)

    def _tls(self, scope) -> bool:
        """TLS to us, or to a trusted proxy that says so in X-Forwarded-Proto (its first hop's value)."""
        if scope.get("scheme") == "https":
            return True
        proto = next((v for k, v in scope.get("headers") or () if k == b"x-forwarded-proto"), None)
        first = proto.decode("latin-1").split(",")[0].strip().lower() if proto is not None else ""
        return first == "https" and self._from_trusted_proxy(scope)

    def _from_proxy(self, scope, value: bytes) -> Principal | None:
        if not self._from_trusted_proxy(scope):
            return None
        name = value.decode("utf-8", "replace").strip()[:200]
        return Principal(name, "analyst", "proxy") if name else None

    async def principal(self, scope) -> Principal | None:
        auth = cookie = proxied = None
        for k, v in scope.get("headers") or ():
            if k == b"authorization":
                auth = v
            elif k == b"cookie":
                cookie = v
            elif self.proxy_header is not None and k == self.proxy_header:
                proxied = v
        if auth is not None:
            scheme, _, token = auth.decode("latin-1").partition(" ")
            return await self._lookup(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if cookie is not None:
            for part in cookie.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == SESSION_COOKIE:
                    p = self.sessions.get(v)
                    # a revoked token ends its sessions too
                    if p is not None and self._known(p.token_sha256) is not None:
                        return p
        if proxied is not None:
            return self._from_proxy(scope, proxied)
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if self.insecure:
            p = INSECURE
        elif self.rules.is_open(method, path):
            p = None
        else:
            p = await self.principal(scope)
            if p is None:
                return await self._unauthorised(scope, send)
            if p.role not in self.rules.roles(method, path):
                return await self._send(send, *_json(403, f"the {p.role} role may not call {method} {path}"))
        state = scope.setdefault("state", {})
        state["principal"], state["tls"] = p, self._tls(scope)
        return await self.app(scope, receive, send)

    async def _unauthorised(self, scope, send):
        accept = next((v for k, v in scope.get("headers") or () if k == b"accept"), b"")
        path = scope["path"]
        if self.login_page is not None and b"text/html" in accept and not path.startswith(("/v1/", "/beta/")):

            body = self.login_page(path).encode("utf-8")
            headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                       (b"www-authenticate", b"Bearer"), *((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]
            return await self._send(send, 401, headers, body)
        return await self._send(send, *_json(401, "a credential is required: send Authorization: Bearer <token> "
                                                  "(distillguard auth create-token)", [(b"www-authenticate", b"Bearer")]))

    @staticmethod
    async def _send(send, status, headers, body):
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
