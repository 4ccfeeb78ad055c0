"""The decision engine behind the HTTP service (no HTTP here: ``replay --db`` drives it directly).

The engine owns the life cycle (crash recovery, the campaign map's refresh, warm state, background
workers) and decides; its jobs live in the modules of the package:

- :mod:`~distillguard.serve.intake`: events and account metadata in (ids, repeats, quarantine, journal);
- :mod:`~distillguard.serve.online`: the fused behaviour risk of an account's running features;
- :mod:`~distillguard.serve.linking`: first-request links to known campaigns, signup bursts;
- :mod:`~distillguard.serve.intel`: imported threat intelligence and confirmed campaigns' identifiers
  (``KNOWN_INDICATOR``, ``CONFIRMED_CAMPAIGN``);
- :mod:`~distillguard.serve.feedback`: analyst labels and challenge results;
- :mod:`~distillguard.serve.views`: read-only account and campaign views.

Risk of an account is the largest of the last scan's risk (``account_results``), the online risk and
the link risk of indicators it shares with a known campaign; the action is
:meth:`distillguard.score.policy.Policy.decide`, exactly as the scan calls it.
"""
from __future__ import annotations

import contextlib
import gc
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from distillguard.audit import analyst_overrides
from distillguard.erasure import forget_log, retain
from distillguard.privacy.settings import StorePrivacy
from distillguard.score.campaigns import campaign_strong_codes
from distillguard.score.elevation import campaign_elevated_codes
from distillguard.score.fusion import FusionModel, pooled_codes
from distillguard.score.policy import Policy
from distillguard.serve import views
from distillguard.serve.campaigns import CampaignMap
from distillguard.serve.feedback import Feedback
from distillguard.serve.intake import Intake
from distillguard.serve.intel import IntelMatcher
from distillguard.serve.journal import Journal
from distillguard.serve.linking import Linker, Signups
from distillguard.serve.online import OnlineScorer
from distillguard.serve.state import make_state

__all__ = ["Engine", "EngineConfig"]


class EngineConfig:
    """Settings of one engine (kept as given, scikit-learn style)."""

    def __init__(self, db="distillguard.duckdb", policy=None, model=None, redis=None, refresh_seconds=30.0,
                 flush_seconds=1.0, journal=None, fsync=True, warm_max_events=2_000_000, quarantine=None,
                 persist=True, privacy=None, intel_key=None):
        self.db = db
        self.policy = policy
        self.model = model
        self.redis = redis
        self.refresh_seconds = refresh_seconds
        self.flush_seconds = flush_seconds
        self.journal = journal
        self.fsync = fsync
        self.warm_max_events = warm_max_events
        self.quarantine = quarantine
        self.persist = persist
        self.privacy = privacy  # a StorePrivacy; None: the policy's store section
        self.intel_key = intel_key  # consortium key (bytes) of imported intel to match at decision time; None: off


GC_YOUNG_OBJECTS = 20_000  # ~ the objects one intake batch keeps alive at once (default 700)


class Engine:
    """Life cycle, the campaign map, the policy and the decision, over the service's components. Thread-safe."""

    def __init__(self, config: EngineConfig):
        self.config = config
        self.policy = config.policy if isinstance(config.policy, Policy) else Policy.load(config.policy)
        self.model = config.model if isinstance(config.model, FusionModel) else FusionModel.load(config.model)
        serve = self.serve_settings = self._serve_section()
        self.state = make_state(config.redis)
        self.privacy = config.privacy or StorePrivacy.from_policy(self.policy.store)
        if config.db and config.persist:  # the store's pseudonym salt, so journaled rows match stored ones
            from distillguard.store import EventStore

            with EventStore(config.db, privacy=self.privacy) as store:
                self.privacy = store.privacy
        if config.persist:
            self.journal = Journal(str(config.db) if config.db else None, config.journal, fsync=config.fsync,
                                   privacy=self.privacy)
        else:  # read the store's campaign map, write nothing (replay --db)
            self.journal = Journal(None, None)
        self.map = CampaignMap()
        self.analyst_policy = self.policy  # the policy with the analysts' allowlists (console), as the scan applies it
        self.counters = {"accepted": 0, "quarantined": 0, "duplicates": 0, "decisions": 0, "errors": 0, "refreshes": 0}
        qpath = config.quarantine or (str(config.db) + ".serve-quarantine.jsonl" if config.db and config.persist else None)
        self.signups = Signups()
        self.intake = Intake(self.journal, self.state, self.privacy, self.counters, qpath, self.signups)
        self.online = OnlineScorer(self.model, self.state, lambda: self.map, self.policy.population)
        self.linking = Linker(self.state, lambda: self.map, serve)
        self.intel = IntelMatcher(config.intel_key)
        immunity = int(serve.get("immunity_seconds", self.policy.ttl_seconds.get("challenge", 3600)))
        self.feedback = Feedback(self.state, self.journal, self.online, immunity)
        self._started = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._forget_seq = 0  # the last audit-log forget row applied to the live state
        self._retained_at = float("-inf")
        self._periodic: list = []
        self._pending_loops: list = []
        self._gc_threshold: tuple | None = None

    def _serve_section(self) -> dict:
        p = self.config.policy
        if isinstance(p, (str, Path)):
            import yaml

            try:
                data = yaml.safe_load(Path(p).read_text()) or {}
            except OSError:
                data = {}
            return dict(data.get("serve") or {})
        return {}

    def gateway_settings(self) -> dict:
        """The policy's ``serve.gateway`` section: which header names the account, whether client claims count."""
        return dict(self._serve_section().get("gateway") or {})

    # -- life cycle ------------------------------------------------------------------
    def start(self, background: bool = True) -> "Engine":
        """Drain journals left by a crash, load the campaign map, warm the state, start the workers."""
        self.intake.open()
        self._started = True
        leftovers = self.journal.leftovers()
        if leftovers and self.config.db:
            self.journal.flush()
        elif leftovers:  # no store: the journal is the state
            for f in leftovers:
                events, accounts, _, _ = Journal.read(f)
                self.state.apply(events)
        self.refresh()
        with self.store_open() as con:  # labels, challenge outcomes and immunities survive restarts
            self.feedback.load(con)
        if self.map.index:  # first-request linking needs the scan's membership functions: load them now, not on a request
            import distillguard.link.memberships  # noqa: F401
        self._warm()
        # What is loaded now (modules, campaign map, warmed state) lives as long as the process: out of the
        # collector's full passes, which otherwise rescan it every few intake batches; and a young generation
        # that holds a whole intake batch, so its short-lived objects die before a collection promotes them
        # (docs/serve.md, Performance)
        gc.freeze()
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_OBJECTS, *self._gc_threshold[1:])
        if background:
            for fn, every in ((self.journal.flush, self.config.flush_seconds), (self.refresh, self.config.refresh_seconds),
                              *self._pending_loops):
                t = threading.Thread(target=self._loop, args=(fn, every), daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def _loop(self, fn, every: float) -> None:
        while not self._stop.wait(every):
            try:
                fn()
            except Exception:  # a busy store: try again next round
                self.counters["errors"] += 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        for fn in self._periodic:
            fn()
        try:
            self.journal.flush()
        finally:
            self.journal.close()
            self.intake.close()
            gc.unfreeze()  # what start froze can be freed again
            if self._gc_threshold:
                gc.set_threshold(*self._gc_threshold)

    def _store(self, read_only=True):
        import duckdb

        return duckdb.connect(str(self.config.db), read_only=read_only)

    @contextlib.contextmanager
    def store_open(self):
        """The store, opened read-write for one short piece of work under the store lock (None: no store yet)."""
        if not self.config.db or not Path(self.config.db).exists():
            yield None
            return
        with self.journal.db_lock:
            con = self._store(read_only=False)
            try:
                yield con
            finally:
                con.close()

    def refresh(self) -> None:
        """Reload the campaign map the last scan wrote, the analysts' console decisions (allowlists, confirmed
        campaigns) and imported intel (the store is opened only for the read), forget the accounts erased since
        (``store forget``) and apply ``store.retention_days``."""
        if not self.config.db or not Path(self.config.db).exists():
            return
        with self.journal.db_lock:
            con = self._store(read_only=False)
            try:
                for seq, acc, _ in forget_log(con, self._forget_seq):
                    self.state.forget(acc)
                    self.online.forget(acc)
                    self._forget_seq = seq
                m = CampaignMap.from_store(con, loaded_at=time.time())
                self.signups.load(con)
                self.intel.load(con)
                feedback = analyst_overrides(con)
            finally:
                con.close()
        self.map = m
        self.analyst_policy = self.policy.with_allowlist(feedback.allow_accounts, feedback.allow_orgs)
        self.online.clear()
        self.counters["refreshes"] += 1
        self._retain()

    def _retain(self) -> None:
        """Delete raw events past ``store.retention_days`` (at most hourly)."""
        days = self.privacy.retention_days
        if not days or time.monotonic() - self._retained_at < 3600:
            return
        from distillguard.store import EventStore

        with self.journal.db_lock, EventStore(self.config.db, privacy=self.privacy) as store:
            retain(store, days)
        self._retained_at = time.monotonic()

    def _warm(self) -> None:
        """Rebuild running state from the store's most recent events (once per shared Redis)."""
        if not self.config.db or not Path(self.config.db).exists() or self.config.warm_max_events <= 0:
            return
        if self.state.shared and not self.state.r.set(self.state._k("warmed"), "1", nx=True):
            return
        with self.journal.db_lock:
            con = self._store(read_only=False)
            try:
                n = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='events'").fetchall()[0][0]
                if not n:
                    return
                reader = con.sql(
                    f"SELECT * FROM (SELECT * FROM events ORDER BY ts DESC LIMIT {int(self.config.warm_max_events)}) "
                    "ORDER BY ts").to_arrow_reader(50_000)
                for batch in reader:
                    rows = batch.to_pylist()
                    self.state.apply(rows)
                    self.intake.remember([r["event_id"] for r in rows])
                meta = con.execute("SELECT account_id, payment_fingerprint, email_domain, org_id FROM accounts").fetchall()
            finally:
                con.close()
        if not self.state.shared:
            for acc, pf, dom, org in meta:
                self.state.meta[acc] = {"payment_fingerprint": pf, "email_domain": dom, "org_id": org}

    # -- intake ----------------------------------------------------------------------
    def accept(self, rows: list[dict], bad: list) -> dict:
        return self.intake.accept(rows, bad)

    def ingest(self, records: list, source: str = "api") -> dict:
        return self.intake.ingest(records, source)

    def ingest_pairs(self, pairs: list, source: str = "otlp") -> dict:
        return self.intake.ingest_pairs(pairs, source)

    def add_periodic(self, fn, every: float) -> None:
        """Run ``fn`` every ``every`` seconds while started, and once more at stop, before the last flush."""
        self._periodic.append(fn)
        if self._started:  # already started
            t = threading.Thread(target=self._loop, args=(fn, every), daemon=True)
            t.start()
            self._threads.append(t)
        else:
            self._pending_loops.append((fn, every))

    # -- decisions -------------------------------------------------------------------
    def decide(self, event: dict, account: dict | None = None, record: bool = True) -> dict:
        """The decision for the request described by ``event`` (a canonical event; ``ts`` optional).

        ``record=False`` computes it for a view: no decision id, no challenge, nothing counted.
        """
        event = self.privacy.record(dict(event))  # compared with the map the scan built from stored values
        acc = event["account_id"]
        meta = None
        if account:
            meta = {**account, "account_id": acc}
            self.intake.put_account(meta)
        elif self.state.get_meta(acc):
            meta = self.state.get_meta(acc)
        known = self.map.accounts.get(acc)
        risk, campaign_id, reasons = self._evidence(acc, event, meta, known)
        flag = self.state.get_flag(acc)
        policy = self.analyst_policy
        if flag == "fraudulent":
            risk = 1.0
            _merge(reasons, [{"code": "ANALYST_CONFIRMED", "weight": 1.0, "details": {"source": "label"}}])
        immune = self.state.immune_until(acc)
        if flag == "legitimate" or immune:
            policy = policy.with_allowlist(accounts=[acc])
        org = event.get("org_id") or (meta or {}).get("org_id") or (known.org_id if known else None)
        # an own-evidence flag the scan's alert budget held back stays held back until the next scan
        held = known is not None and known.rule_id == "alert-budget"
        d = policy.decide(risk, list(reasons), in_campaign=campaign_id is not None, account_id=acc, org_id=org, held_back=held,
                          strong=campaign_strong_codes(known.reasons) if known is not None else (),
                          elevated=campaign_elevated_codes(known.reasons) if known is not None else (),
                          pooled=pooled_codes(known.reasons) if known is not None else ())
        return self._shape(acc, d.action, d.rule_id, d.ttl_seconds, risk, reasons, campaign_id, immune, record)

    def _evidence(self, acc: str, event: dict, meta: dict | None, known) -> tuple[float, str | None, dict]:
        """(risk, campaign, reasons by code) from the scan's verdict, the online score and first-request links."""
        reasons: dict[str, dict] = {}
        risk, campaign_id = 0.0, None
        if known is not None:
            risk = known.risk
            campaign_id = known.campaign_id
            _merge(reasons, [{"code": d["code"], "weight": d.get("weight"),
                              "details": {"source": "scan", "run_id": self.map.run_id, "terms": d.get("terms"),
                                          "evidence": d.get("evidence")}}
                             for d in known.reasons])
        online, oreasons, _ = self.online.score(acc)
        if online > risk:
            risk = online
        _merge(reasons, oreasons)
        # first-request linking: for accounts the scan never saw act (unknown, or silent with 0 events) and for
        # accounts outside any campaign; an active campaign member's scan verdict already weighed its links
        if known is None or known.n_events == 0 or campaign_id is None:
            # a prompt's template is MinHashed only for accounts new to the scan and still light (first requests)
            st = self.state.account(acc)
            new = (known is None or known.n_events == 0) and (st is None or st.n < 50)
            lrisk, lcid, lreasons = self.linking.risk(self.linking.links(acc, event, meta, templates=new))
            if lcid is not None:
                campaign_id = campaign_id or lcid
                risk = max(risk, lrisk)
                _merge(reasons, lreasons)
        # imported intel and confirmed campaigns: the scan's KNOWN_INDICATOR / CONFIRMED_CAMPAIGN for the identifiers
        # used since (the policy acts on the reason)
        intel = self.intel.reason(acc, event, meta)
        if intel is not None:
            _merge(reasons, [intel])
        return risk, campaign_id, reasons

    def _shape(self, acc, action, rule_id, ttl, risk, reasons, campaign_id, immune=None, record: bool = True) -> dict:
        """The decision document; ``record=False`` for a view (no id to label, no challenge, nothing counted)."""
        did = secrets.token_hex(16) if record else ""  # 128 random bits: unguessable
        if record:
            self.state.put_decision(did, acc, ttl)
            self.counters["decisions"] += 1
        out = {
            "decision_id": did,
            "account_id": acc,
            "action": action,
            "risk": round(float(risk), 6),
            "reasons": sorted(reasons.values(), key=lambda r: -(r.get("weight") or 0)),
            "ttl_seconds": int(ttl),
            "mode": self.policy.mode,
            "rule_id": rule_id,
            "campaign_id": campaign_id,
            "throttle": None,
            "challenge": None,
            "immune_until": datetime.fromtimestamp(immune, tz=timezone.utc).isoformat() if immune else None,
            "policy_sha256": self.policy.sha256,
        }
        if action == "throttle":
            t = self.policy.throttle
            out["throttle"] = {"retry_after_seconds": int(t.get("retry_after_seconds", 60)),
                               "max_requests_per_minute": t.get("max_requests_per_minute")}
        elif action == "challenge" and record:
            c = self.policy.challenge
            cid = secrets.token_urlsafe(24)  # 192 random bits, not the decision id; bound to the account, lives for the TTL
            self.state.put_challenge(cid, acc, int(ttl))
            url = c.get("url")
            if url:
                url = f"{url}{'&' if '?' in url else '?'}challenge_id={cid}"
            out["challenge"] = {"challenge_id": cid, "kind": c.get("kind", "step_up_verification"), "url": url,
                                "result_url": f"/v1/challenges/{cid}/result"}
        return out

    def fail_decision(self, account_id: str, exc: Exception) -> dict:
        """What the policy says to answer on an internal error: fail open (allow) or closed (block)."""
        self.counters["errors"] += 1
        action = "allow" if self.policy.fail == "open" else "block"
        reasons = {"INTERNAL_ERROR": {"code": "INTERNAL_ERROR", "weight": None,
                                      "details": {"error": type(exc).__name__, "fail": self.policy.fail}}}
        return self._shape(account_id or "unknown", action, f"fail-{self.policy.fail}",
                           self.policy.ttl_seconds.get(action, 60), 0.0, reasons, None)

    def assess(self, meta: dict, client_ip: str | None = None, user_agent: str | None = None,
               client_fingerprint: str | None = None) -> dict:
        """Signup-time decision from metadata alone: campaign indicators and signup bursts."""
        row = self.intake.put_account(meta)
        acc = row["account_id"]
        d = self.decide({"account_id": acc, "client_ip": client_ip, "user_agent": user_agent,
                         "client_fingerprint": client_fingerprint})
        window = None if row.get("created_at") is None else self.signups.burst(
            acc, int(row["created_at"].timestamp() * 1_000_000))
        if window is None:
            return d
        r = self.linking.link_risk.get("signup_burst", 0.55)
        reasons = {x["code"]: x for x in d["reasons"]}
        reasons["SIGNUP_BURST"] = {"code": "SIGNUP_BURST", "weight": r, "details": {"source": "signup", "window": window}}
        risk = max(d["risk"], r)
        pol = self.analyst_policy
        pol = pol.with_allowlist(accounts=[acc]) if self.state.immune_until(acc) else pol
        known = self.map.accounts.get(acc)
        dd = pol.decide(risk, list(reasons), in_campaign=d["campaign_id"] is not None, account_id=acc, org_id=row.get("org_id"),
                        strong=campaign_strong_codes(known.reasons) if known is not None else (),
                        elevated=campaign_elevated_codes(known.reasons) if known is not None else (),
                        pooled=pooled_codes(known.reasons) if known is not None else ())
        return self._shape(acc, dd.action, dd.rule_id, dd.ttl_seconds, risk, reasons, d["campaign_id"])

    # -- feedback and views (serve/app.py's routes) -------------------------------------
    def label(self, decision_id: str, label: str, note: str | None = None, by: str = "unknown") -> dict | None:
        return self.feedback.label(decision_id, label, note, by)

    def challenge_result(self, challenge_id: str, passed: bool, by: str = "unknown") -> dict | None:
        return self.feedback.challenge_result(challenge_id, passed, by)

    def account_view(self, account_id: str) -> dict | None:
        return views.account_view(self, account_id)

    def campaign_summary(self, cid: str) -> dict:
        return views.campaign_summary(self.map, cid)

    def campaign_view(self, cid: str) -> dict | None:
        return views.campaign_view(self.map, cid)


def _merge(reasons: dict, new: list) -> None:
    """Keep the heaviest reason of each code."""
    for r in new:
        cur = reasons.get(r["code"])
        if cur is None or (r.get("weight") or 0) > (cur.get("weight") or 0):
            reasons[r["code"]] = r
