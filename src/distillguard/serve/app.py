"""The FastAPI application of ``distillguard serve``.

``create_app(engine)`` builds the app around a started or unstarted
:class:`~distillguard.serve.engine.Engine`; the engine is started on the
app's start-up and stopped (journal flushed) on shut-down. Every route sits
behind :class:`~distillguard.auth.AuthGate` (default deny, roles in
``access.yaml``); handlers read the caller from ``request.state.principal``.
"""
from __future__ import annotations

import secrets
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Literal

import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from distillguard.ingest.normalize import Reject, normalize
from distillguard.auth import role as _role, who as _who
from distillguard.serve.models import (
    AccountView,
    AssessRequest,
    CampaignDetail,
    CampaignSummary,
    ChallengeOutcome,
    ChallengeResult,
    Decision,
    DecideRequest,
    ErrorBody,
    EventsBatch,
    Health,
    IntakeResult,
    LabelRequest,
    LabelResult,
)

__all__ = ["create_app", "BodyLimit", "reject_field"]

_ERR = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 413: {"model": ErrorBody},
        422: {"model": ErrorBody}}


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    """Validation errors naming the field, without echoing the input (NaN or Infinity cannot be sent back as JSON)."""
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ())]
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "finite_number" or "finite" in msg:
            msg = "must be a finite number (NaN and Infinity are refused)"
        out.append({"loc": loc, "field": ".".join(loc[1:] if loc[:1] == ["body"] else loc), "msg": msg,
                    "type": str(e.get("type", "invalid"))})
    return out


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers") or ():
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._refuse(send)
        seen = 0
        state = {"started": False, "refused": False}

        async def guarded():
            nonlocal seen
            if state["refused"]:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    # answer 413 now; the app sees a disconnect and whatever it sends is dropped
                    state["refused"] = True
                    if not state["started"]:
                        state["started"] = True
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return msg

        async def tracking_send(msg):
            if state["refused"]:
                return
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        try:
            await self.app(scope, guarded, tracking_send)
        except Exception:
            if not state["refused"]:
                raise

    async def _refuse(self, send):
        body = b'{"detail":"request body too large (limit %d bytes)"}' % self.max_bytes
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def reject_field(rej: Reject) -> str:
    """The field a normaliser rejection is about (for a 422 naming it)."""
    if rej.reason == "missing_subject":
        return "account_id"
    if rej.reason in ("missing_ts", "bad_ts"):
        return "ts"
    word = (rej.detail or "").split(" ", 1)[0]
    return word or "body"


def _metrics(engine):
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    reg = CollectorRegistry()
    m = {
        "registry": reg,
        "decisions": Counter("distillguard_decisions_total", "Decisions answered", ["action", "mode"], registry=reg),
        "latency": Histogram("distillguard_decide_seconds", "Time to decide", registry=reg,
                             buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)),
        "events": Counter("distillguard_events_total", "Events received", ["outcome"], registry=reg),
        "errors": Counter("distillguard_internal_errors_total", "Internal errors answered by the fail policy", registry=reg),
    }
    Gauge("distillguard_journal_pending_events", "Accepted events not yet in the store", registry=reg).set_function(
        lambda: engine.journal.pending)
    Gauge("distillguard_campaigns", "Campaigns in the loaded map", registry=reg).set_function(lambda: len(engine.map.campaigns))
    Gauge("distillguard_campaign_map_age_seconds", "Seconds since the campaign map was loaded", registry=reg).set_function(
        lambda: time.time() - engine.map.loaded_at if engine.map.loaded_at else -1)
    return m


def create_app(engine, max_body_bytes: int = 10 * 1024 * 1024, start_engine: bool = True, *,
               insecure_no_auth: bool = False, trusted_proxy_header: str | None = None, trusted_proxies=(),
               access=None, tokens: dict | None = None) -> FastAPI:
    """The service app around ``engine`` (see :mod:`distillguard.serve.engine`).

    Every route but ``/healthz`` needs a credential whose role ``access``
    (:class:`~distillguard.auth.AccessRules`, default: the packaged
    ``access.yaml``) lists for it. Tokens come from the store's
    ``auth_tokens`` table; ``tokens`` maps further tokens to ``(name, role)``
    (embedding, tests). ``insecure_no_auth`` lets everything through (loopback
    demos only; ``distillguard serve`` refuses it on other addresses).
    """
    from distillguard.console import console_router  # analyst console at / (docs/console.md)
    from distillguard import auth as _auth
    from distillguard.serve.gateways.envoy import register_envoy
    from distillguard.serve.gateways.generic import register_generic

    book = _auth.TokenBook(engine.config.db, lock=engine.journal.db_lock, extra={
        _auth.token_sha256(t): _auth.Principal(name, role, "token", _auth.token_sha256(t)) for t, (name, role) in (tokens or {}).items()})
    sessions = _auth.Sessions()
    app = FastAPI(
        title="distillguard decision service",
        version="1",
        description="Real-time decisions against distillation campaigns: per-account state updated as events "
                    "arrive, the campaign map of the last scan, the scan's YAML policy. See docs/serve.md.",
        lifespan=_lifespan(engine, book, start_engine),
    )
    app.state.engine = engine
    met = _metrics(engine)
    decision = _decider(engine, met)
    # registration order is route-matching order; access.yaml names every path below
    _gateway_routes(app, engine, met, decision, max_body_bytes)
    _view_routes(app, engine)
    _feedback_routes(app, engine)
    _operation_routes(app, engine, met)
    register_envoy(app, decision)
    register_generic(app, decision)
    router = console_router(engine.config.db, lock=engine.journal.db_lock, auth=(book, sessions))
    app.include_router(router)
    _error_handlers(app, met)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(_auth.AuthGate, book=book, sessions=sessions, rules=access or _auth.AccessRules.load(),
                       insecure=insecure_no_auth, proxy_header=trusted_proxy_header, proxy_networks=trusted_proxies,
                       login_page=getattr(router, "login_page", None))
    return app


def _lifespan(engine, book, start_engine: bool):
    """Start the engine (unless the caller runs it) and read the live tokens before the first request;
    stop it (journal flushed) on shut-down."""

    @asynccontextmanager
    async def lifespan(app):
        if start_engine:
            engine.start()
        book.reload()  # the live tokens before the first request
        yield
        if start_engine:
            engine.stop()

    return lifespan


def _decider(engine, met):
    """``decision(event, account)``: the engine's decision, timed and counted; an internal error answers
    with the policy's fail mode (open or closed). Every route and gateway that decides goes through it."""

    def decision(ev: dict, account: dict | None) -> dict:
        t0 = time.perf_counter()
        try:
            d = engine.decide(ev, account)
        except Exception as exc:  # fail open or closed, as the policy says
            met["errors"].inc()
            d = engine.fail_decision(ev.get("account_id"), exc)
        met["latency"].observe(time.perf_counter() - t0)
        met["decisions"].labels(d["action"], d["mode"]).inc()
        return d

    return decision


def _refused_field(rej: Reject) -> RequestValidationError:
    """A normaliser rejection as the 422 that names its field."""
    return RequestValidationError([{"loc": ("body", reject_field(rej)), "msg": rej.detail or rej.reason, "type": rej.reason}])


def _gateway_routes(app: FastAPI, engine, met, decision, max_body_bytes: int) -> None:
    """What gateways call: decisions, event intake (JSON and OTLP) and sign-up assessment."""

    @app.post("/v1/decide", response_model=Decision, responses=_ERR, tags=["decisions"])
    async def decide(req: DecideRequest):
        """The decision for a request about to be served (the event need not be logged yet)."""
        body = req.model_dump(exclude_none=True)
        account = body.pop("account", None)
        if body.get("ts") is None:
            body["ts"] = datetime.now(timezone.utc)
        try:
            ev = normalize(body)
        except Reject as rej:
            raise _refused_field(rej) from None
        # the engine builds the documented shape; serialised directly (the hot path skips re-validation)
        return Response(orjson.dumps(decision(ev, account), option=orjson.OPT_SERIALIZE_NUMPY, default=str),
                        media_type="application/json")

    @app.post("/v1/events", response_model=IntakeResult, responses=_ERR, tags=["intake"])
    def events(batch: EventsBatch,
               format: Literal["canonical", "litellm", "openai"] = Query("canonical", description="record shape")) -> dict:
        """A batch of events; bad ones are quarantined with the ingest reasons, the rest accepted (durable on 2xx)."""
        recs = batch.events
        if format != "canonical":
            from distillguard.ingest.litellm import map_litellm
            from distillguard.ingest.openai_log import map_openai

            mapper = map_litellm if format == "litellm" else map_openai
            recs = []
            for r in batch.events:
                try:
                    recs.extend({**rec, "extra": extra} if extra else rec for rec, extra in mapper(r))
                except Reject:
                    recs.append(r)
        out = engine.ingest(recs)
        met["events"].labels("accepted").inc(out["accepted"])
        met["events"].labels("quarantined").inc(out["quarantined"])
        met["events"].labels("duplicate").inc(out["duplicates"])
        return out

    from distillguard.serve.otlp import register_otlp  # /v1/traces and /v1/logs (OTLP/HTTP)

    app.state.otlp = register_otlp(app, engine, met, max_body_bytes)

    @app.post("/v1/accounts/assess", response_model=Decision, responses=_ERR, tags=["decisions"])
    def assess(req: AssessRequest) -> dict:
        """Signup-time decision from account metadata alone (before any request)."""
        body = req.model_dump(exclude_none=True)
        ip, ua, fp = body.pop("client_ip", None), body.pop("user_agent", None), body.pop("client_fingerprint", None)
        try:
            return engine.assess(body, ip, ua, fp)
        except Reject as rej:
            raise _refused_field(rej) from None


def _view_routes(app: FastAPI, engine) -> None:
    """Reads of accounts and campaigns: readers get keyed hashes and no prompts; analysts' reads are audited."""
    keys: list[bytes] = []

    def view_key() -> bytes:
        """The store's key for the keyed hashes readers see; a per-process random key, not kept, until a store
        exists (a key cached before the store is made would never match the store's own hashes)."""
        from distillguard.serve import privacy

        if keys:
            return keys[0]
        with engine.store_open() as con:
            if con is None:
                return secrets.token_bytes(32)
            keys.append(privacy.store_key(con))
        return keys[0]

    def shown(request: Request, kind: str, target: str, view: dict) -> dict:
        """Readers get the redacted view; an analyst's read of identifiers and prompts is audited."""
        from distillguard.serve import privacy

        if _role(request) == "reader":
            return privacy.redact(view, view_key())
        engine.journal.append([], audits=[{"analyst": _who(request), "action": "view", "target_kind": kind,
                                           "target_id": target, "reason": "", "details": {"path": request.url.path},
                                           "at": time.time()}])
        return view

    @app.get("/v1/accounts/{account_id:path}", response_model=AccountView, responses=_ERR, tags=["views"])
    def account(account_id: str, request: Request) -> dict:
        """An account's current standing (a read: no decision is made). Readers get keyed hashes, no prompts."""
        v = engine.account_view(account_id)
        if v is None:
            raise HTTPException(404, f"unknown account {account_id!r}")
        return shown(request, "account", account_id, v)

    @app.get("/v1/campaigns", response_model=list[CampaignSummary], tags=["views"])
    def campaigns() -> list:
        return [engine.campaign_summary(c) for c in sorted(engine.map.campaigns)]

    @app.get("/v1/campaigns/{campaign_id:path}", response_model=CampaignDetail, responses=_ERR, tags=["views"])
    def campaign(campaign_id: str, request: Request) -> dict:
        """A campaign's members, indicators and evidence. Readers get keyed hashes, no prompts."""
        v = engine.campaign_view(campaign_id)
        if v is None:
            raise HTTPException(404, f"unknown campaign {campaign_id!r}")
        return shown(request, "campaign", campaign_id, v)


def _feedback_routes(app: FastAPI, engine) -> None:
    """Analyst labels and step-up verification results, recorded under the caller's name."""

    @app.post("/v1/decisions/{decision_id}/labels", response_model=LabelResult, responses=_ERR, tags=["feedback"])
    def label(decision_id: str, req: LabelRequest, request: Request) -> dict:
        """Analyst feedback on a decision: legitimate (allow from now on) or fraudulent (risk 1); audited under the token's name."""
        rec = engine.label(decision_id, req.label, req.note, by=_who(request))
        if rec is None:
            raise HTTPException(404, f"unknown or expired decision {decision_id!r}")
        return rec

    @app.post("/v1/challenges/{challenge_id}/result", response_model=ChallengeOutcome,
              responses={**_ERR, 409: {"model": ErrorBody}}, tags=["feedback"])
    def challenge(challenge_id: str, req: ChallengeResult, request: Request) -> dict:
        """Step-up verification result for a live challenge id, accepted once (a repeat is 409): passed grants
        immunity for the policy's TTL; failed marks the account fraudulent."""
        out = engine.challenge_result(challenge_id, req.passed, by=_who(request))
        if out is None:
            raise HTTPException(404, f"unknown or expired challenge {challenge_id!r}")
        if out.get("used"):
            raise HTTPException(409, f"challenge {challenge_id!r} already has a result")
        return out


def _operation_routes(app: FastAPI, engine, met) -> None:
    """Liveness (open) and Prometheus metrics."""

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> dict:
        ok = engine.state.ping()
        return {
            "status": "ok" if ok and not engine.journal.last_error else "degraded",
            "mode": engine.policy.mode,
            "fail": engine.policy.fail,
            "scan_run_id": engine.map.run_id,
            "campaigns": len(engine.map.campaigns),
            "map_age_seconds": round(time.time() - engine.map.loaded_at, 3) if engine.map.loaded_at else None,
            "journal_pending": engine.journal.pending,
            "state": "redis" if engine.state.shared else "memory",
            "last_error": engine.journal.last_error,
            "calibration": engine.online.baselines.source,
        }

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(met["registry"]), media_type=CONTENT_TYPE_LATEST)


def _error_handlers(app: FastAPI, met) -> None:
    """422 naming the field without echoing input; 500 without a traceback, counted."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_errors(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):  # never a traceback to the client
        met["errors"].inc()
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)
