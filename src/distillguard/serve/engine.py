"""The decision engine behind the HTTP service (no HTTP here: ``replay --db`` drives it directly).

Risk of an account is the largest of
- the last scan's risk (``account_results``),
- the fused behaviour risk of its running features: the
  :data:`~distillguard.features.FEATURE_COLUMNS` row from
  :class:`~distillguard.serve.state.AccountState` (the stream fold of the
  scan's feature declaration), scored by the same behaviour
  :class:`~distillguard.signals.base.Signal` classes, assembled by the scan's
  :func:`~distillguard.score.evidence.build_evidence` and fused by the same
  :class:`~distillguard.score.fusion.FusionModel` as the scan,
- the link risk of indicators it shares with a known campaign (first-request
  linking, :mod:`distillguard.serve.campaigns`),
and the action is :meth:`distillguard.score.policy.Policy.decide`, exactly as
the scan calls it.
"""
from __future__ import annotations

import contextlib
import gc
import secrets
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from distillguard.ingest.base import Quarantined, truncate_raw
from distillguard.ingest.normalize import Reject, normalize, normalize_fields, rows_to_batch
from distillguard.privacy.erasure import forget_log, retain
from distillguard.privacy.settings import StorePrivacy
from distillguard.link import Communities
from distillguard.score.evidence import EvidenceMatrix, build_evidence
from distillguard.score.fusion import FusionModel
from distillguard.score.policy import Policy
from distillguard.link.kinds import account_values, link_kinds, request_values
from distillguard.serve.campaigns import MIN_TEMPLATE_BANDS, CampaignMap, template_values
from distillguard.serve.journal import Journal
from distillguard.serve.state import make_state
from distillguard.signals.behaviour import BEHAVIOUR_SIGNALS

__all__ = ["Engine", "EngineConfig"]

_DEDUP = 1_000_000
_CAMPAIGN_TERMS = ("campaign_", "link_")
"""Evidence terms of an account's campaign (:func:`~distillguard.score.evidence.build_evidence`): only a scan finds them."""


class EngineConfig:
    """Settings of one engine (kept as given, scikit-learn style)."""

    def __init__(self, db="distillguard.duckdb", policy=None, model=None, redis=None, refresh_seconds=30.0,
                 flush_seconds=1.0, journal=None, fsync=True, warm_max_events=2_000_000, quarantine=None,
                 persist=True, privacy=None):
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


GC_YOUNG_OBJECTS = 20_000  # ~ the objects one intake batch keeps alive at once (default 700)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class Engine:
    """Per-account state, the campaign map, the policy, durability. Thread-safe."""

    def __init__(self, config: EngineConfig):
        self.config = config
        self.policy = config.policy if isinstance(config.policy, Policy) else Policy.load(config.policy)
        self.model = config.model if isinstance(config.model, FusionModel) else FusionModel.load(config.model)
        serve = self.serve_settings = self._serve_section()
        self.link_risk = {**{k.name: k.online_risk for k in link_kinds().values() if k.online_risk is not None},
                          **{k: float(v) for k, v in (serve.get("link_risk") or {}).items()}}
        self.link_cap = float(serve.get("link_risk_cap", 0.89))
        self.immunity_seconds = int(serve.get("immunity_seconds", self.policy.ttl_seconds.get("challenge", 3600)))
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
        self.signals = [cls() for cls in BEHAVIOUR_SIGNALS]
        self._cache: dict[str, tuple[int, float, list]] = {}
        self._seen: OrderedDict = OrderedDict()
        self._meta_values: dict = {}
        self._tmpl: dict = {}
        self._lock = threading.Lock()
        self._con = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._signups: list[int] = []
        self._forget_seq = 0  # the last audit-log forget row applied to the live state
        self._retained_at = float("-inf")
        self._periodic: list = []
        self._pending_loops: list = []
        self.counters = {"accepted": 0, "quarantined": 0, "duplicates": 0, "decisions": 0, "errors": 0, "refreshes": 0}
        qpath = config.quarantine or (str(config.db) + ".serve-quarantine.jsonl" if config.db and config.persist else None)
        self._qfile = open(qpath, "ab") if qpath else None
        self._qlock = threading.Lock()
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
        from distillguard.ingest.sqlfast import connect

        self._con = connect()
        leftovers = self.journal.leftovers()
        if leftovers and self.config.db:
            self.journal.flush()
        elif leftovers:  # no store: the journal is the state
            for f in leftovers:
                events, accounts, _, _ = Journal.read(f)
                self.state.apply(events)
        self.refresh()
        self._load_feedback()
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
            if self._qfile:
                self._qfile.close()
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
        """Reload the campaign map the last scan wrote (the store is opened only for the read), forget
        the accounts erased since (``store forget``) and apply ``store.retention_days``."""
        if not self.config.db or not Path(self.config.db).exists():
            return
        with self.journal.db_lock:
            con = self._store(read_only=False)
            try:
                for seq, acc, _ in forget_log(con, self._forget_seq):
                    self.state.forget(acc)
                    self._cache.pop(acc, None)
                    self._forget_seq = seq
                m = CampaignMap.from_store(con, loaded_at=time.time())
                if not self._signups:
                    try:
                        rows = con.execute("SELECT epoch_us(created_at) FROM accounts WHERE created_at IS NOT NULL "
                                           "ORDER BY created_at DESC LIMIT 5000").fetchall()
                        self._signups = sorted(r[0] for r in rows)
                    except Exception:
                        pass
            finally:
                con.close()
        self.map = m
        self._cache.clear()
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

    def _load_feedback(self) -> None:
        """Labels, challenge outcomes and immunities from the store, in the order they were given (survive restarts)."""
        with self.store_open() as con:
            if con is None or not con.execute("SELECT count(*) FROM information_schema.tables "
                                              "WHERE table_name = 'decision_labels'").fetchall()[0][0]:
                return
            cols = {r[0] for r in con.execute("DESCRIBE decision_labels").fetchall()}
            until = "epoch(immune_until)" if "immune_until" in cols else "NULL"
            rows = con.execute(f"SELECT account_id, label, {until} FROM decision_labels ORDER BY labelled_at").fetchall()
        now = time.time()
        for acc, label, immune in rows:
            if label in ("legitimate", "fraudulent"):
                self.state.set_flag(acc, label)
            elif label == "challenge_failed":
                self.state.set_flag(acc, "fraudulent")
            elif label == "challenge_passed" and immune and immune > now:
                self.state.grant_immunity(acc, int(immune - now) + 1)

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
                    self._remember([r["event_id"] for r in rows])
                meta = con.execute("SELECT account_id, payment_fingerprint, email_domain, org_id FROM accounts").fetchall()
            finally:
                con.close()
        if not self.state.shared:
            for acc, pf, dom, org in meta:
                self.state.meta[acc] = {"payment_fingerprint": pf, "email_domain": dom, "org_id": org}

    # -- intake ----------------------------------------------------------------------
    def _remember(self, ids) -> list[bool]:
        """Whether each id is new (and remember it)."""
        out = []
        with self._lock:
            for i in ids:
                if i in self._seen:
                    out.append(False)
                    continue
                self._seen[i] = None
                out.append(True)
            while len(self._seen) > _DEDUP:
                self._seen.popitem(last=False)
        return out

    def _quarantine(self, bad: list[Quarantined]) -> None:
        if self._qfile is not None and bad:
            with self._qlock:
                self._qfile.write(b"".join(orjson.dumps(q.to_dict()) + b"\n" for q in bad))
                self._qfile.flush()
        self.counters["quarantined"] += len(bad)

    def accept(self, rows: list[dict], bad: list[Quarantined]) -> dict:
        """Give ids to normalised rows, drop repeats, journal (durably), update state."""
        if rows and any(r.get("event_id") is None for r in rows):
            from distillguard.ingest.sqlfast import fill_event_ids

            with self._lock:
                ids = fill_event_ids(self._con, rows_to_batch(rows)).column("event_id").to_pylist()
            for r, i in zip(rows, ids):
                r["event_id"] = i
        rows = [self.privacy.record(r) for r in rows]  # ids above come from what was received, as ingest's do
        fresh = self._remember([r["event_id"] for r in rows])
        new = [r for r, f in zip(rows, fresh) if f]
        self.journal.append(new)
        self.state.apply(new)
        self._quarantine(bad)
        self.counters["accepted"] += len(new)
        self.counters["duplicates"] += len(rows) - len(new)
        return {"accepted": len(new), "duplicates": len(rows) - len(new), "quarantined": len(bad),
                "errors": [{"index": q.line - 1, "reason": q.reason, "detail": q.detail} for q in bad]}

    def ingest(self, records: list, source: str = "api") -> dict:
        """Validate a batch with the ingest rules; bad records are quarantined, the rest accepted."""
        rows, bad = [], []
        for i, rec in enumerate(records):
            try:
                rows.append(normalize(rec))
            except Reject as rej:
                bad.append(Quarantined(source, i + 1, rej.reason, truncate_raw(rec), rej.detail))
            except Exception as exc:  # never let one record fail the batch
                bad.append(Quarantined(source, i + 1, "invalid", truncate_raw(rec), str(exc)[:200]))
        return self.accept(rows, bad)

    def ingest_pairs(self, pairs: list, source: str = "otlp") -> dict:
        """Mapped ``(record, extra)`` pairs (OTLP intake): normalised, quarantined or accepted."""
        rows, bad = [], []
        for i, (rec, extra) in enumerate(pairs):
            try:
                rows.append(normalize_fields(rec, extra))
            except Reject as rej:
                bad.append(Quarantined(source, i + 1, rej.reason, truncate_raw(rec), rej.detail))
        return self.accept(rows, bad)

    def add_periodic(self, fn, every: float) -> None:
        """Run ``fn`` every ``every`` seconds while started, and once more at stop, before the last flush."""
        self._periodic.append(fn)
        if self._con is not None:  # already started
            t = threading.Thread(target=self._loop, args=(fn, every), daemon=True)
            t.start()
            self._threads.append(t)
        else:
            self._pending_loops.append((fn, every))

    def put_account(self, meta: dict) -> dict:
        """Store account metadata (journal + state); returns the normalised row."""
        from distillguard.ingest.accounts import normalize_account

        row = self.privacy.record(normalize_account(meta))
        self.journal.append([], [row])
        self.state.put_meta(row["account_id"], {k: row.get(k) for k in ("payment_fingerprint", "email_domain", "org_id")})
        if row.get("created_at") is not None:
            with self._lock:
                self._signups.append(int(row["created_at"].timestamp() * 1_000_000))
                if len(self._signups) > 10_000:
                    del self._signups[:5_000]
        return row

    # -- scoring ---------------------------------------------------------------------
    def _online(self, account_id: str) -> tuple[float, list, dict | None]:
        """(fused behaviour risk, reasons, features) of the running state; cached per state version."""
        st = self.state.account(account_id)
        if st is None:
            return 0.0, [], None
        version = (st.version, self.map.run_id)
        hit = self._cache.get(account_id)
        if hit is not None and hit[0] == version:
            return hit[1], hit[2], hit[3]
        released, start = self.state.release_times()
        feats = st.features(released, start)
        table = pa.Table.from_pylist([feats])
        names = list(self.model.coefficients)
        results = [(sig, sig.score(table)) for sig in self.signals]
        evidence = {sig.reason: res.evidence.get(account_id, {}) for sig, res in results if sig.name in names}
        # The account's own terms come from the scan's evidence builder over its running features;
        # the scan's campaign terms of a known account (its campaign, a declared org that cleared it) stay.
        own = build_evidence([account_id], [(sig.name, sig.reason, res.scores) for sig, res in results], Communities(), {},
                             np.array([float(st.n)]))
        known = self.map.accounts.get(account_id)
        scanned = known.evidence if known is not None else {}
        mine = [n in own.names and not n.startswith(_CAMPAIGN_TERMS) for n in names]
        values = np.array([[own.column(n)[0] if m else float(scanned.get(n, 0.0)) for n, m in zip(names, mine)]])
        reasons_of = [own.reasons[own.names.index(n)] if m else None for n, m in zip(names, mine)]
        em = EvidenceMatrix([account_id], names, reasons_of, values)
        risk = float(self.model.risk(em)[0]) if st.n else 0.0
        reasons = [{"code": r.code, "weight": float(r.weight), "details": {"source": "online", "terms": list(r.terms),
                                                                     "features": evidence.get(r.code) or {}}}
                   for r in self.model.reasons(em)[0]]
        self._cache[account_id] = (version, risk, reasons, feats)
        return risk, reasons, feats

    def _template_values(self, account_id: str, prompt) -> list:
        """Template band keys of a prompt, cached by its template skeleton (the MinHash reads only the skeleton)."""
        if not isinstance(prompt, str) or len(prompt) < 20:
            return []
        from distillguard.text import template_skeleton

        sk = template_skeleton(prompt)
        hit = self._tmpl.get(sk)
        if hit is None:
            hit = template_values(account_id, prompt)
            if len(self._tmpl) > 50_000:
                self._tmpl.clear()
            self._tmpl[sk] = hit
        return hit

    def _links(self, account_id: str, event: dict | None, meta: dict | None, templates: bool = True) -> dict:
        """Campaign links of an account: stored ones plus this request's new hits."""
        links = {k: list(v) for k, v in self.state.get_links(account_id).items()}
        if not self.map.index:
            return links
        values = []
        if event is not None:
            values += request_values(event)
            if templates and self.map.has_kind("template"):
                values += self._template_values(account_id, event.get("prompt"))
        if meta:
            key = (account_id, meta.get("payment_fingerprint"), meta.get("email_domain"))
            mv = self._meta_values.get(key)
            if mv is None:
                mv = account_values(meta)
                if len(self._meta_values) > 100_000:
                    self._meta_values.clear()
                self._meta_values[key] = mv
            values += mv
        hits = self.map.match(values)
        new = {}
        for cid, hs in hits.items():
            have = links.setdefault(cid, [])
            add = [h for h in hs if h not in have]
            if add:
                have.extend(add)
                new[cid] = add
        if new:
            self.state.add_links(account_id, new)
        return links

    def _link_risk(self, links: dict) -> tuple[float, str | None, list]:
        best, best_cid, reasons = 0.0, None, []
        for cid, hits in links.items():
            if cid not in self.map.campaigns and cid not in self.map.indicators:
                continue
            kinds = {k for k, _ in hits}
            if sum(k == "template" for k, _ in hits) < MIN_TEMPLATE_BANDS:
                kinds.discard("template")  # one shared LSH band is a similar prompt, not the operator's template
            if not kinds:
                continue
            p = 1.0
            for k in kinds:
                p *= 1.0 - self.link_risk.get(k, 0.3)
            r = min(self.link_cap, 1.0 - p)
            if r > best:
                best, best_cid = r, cid
        if best_cid is not None:
            by_code: dict[str, list] = {}
            for k, v in links[best_cid]:
                by_code.setdefault(link_kinds()[k].reason if k in link_kinds() else "SHARED_INFRA", []).append(
                    {"kind": k, "value": v})
            for code, shared in by_code.items():
                w = max(self.link_risk.get(s["kind"], 0.3) for s in shared)
                reasons.append({"code": code, "weight": round(w, 3),
                                "details": {"source": "link", "campaign_id": best_cid, "shared": shared}})
        return best, best_cid, reasons

    def decide(self, event: dict, account: dict | None = None, record: bool = True) -> dict:
        """The decision for the request described by ``event`` (a canonical event; ``ts`` optional).

        ``record=False`` computes it for a view: no decision id, no challenge, nothing counted.
        """
        event = self.privacy.record(dict(event))  # compared with the map the scan built from stored values
        acc = event["account_id"]
        meta = None
        if account:
            account = {**account, "account_id": acc}
            self.put_account(account)
            meta = account
        elif self.state.get_meta(acc):
            meta = self.state.get_meta(acc)
        known = self.map.accounts.get(acc)
        reasons: dict[str, dict] = {}

        def add(rs):
            for r in rs:
                cur = reasons.get(r["code"])
                if cur is None or (r.get("weight") or 0) > (cur.get("weight") or 0):
                    reasons[r["code"]] = r

        risk, campaign_id = 0.0, None
        if known is not None:
            risk = known.risk
            campaign_id = known.campaign_id
            add([{"code": d["code"], "weight": d.get("weight"),
                  "details": {"source": "scan", "run_id": self.map.run_id, "terms": d.get("terms"), "evidence": d.get("evidence")}}
                 for d in known.reasons])
        online, oreasons, _ = self._online(acc)
        if online > risk:
            risk = online
        add(oreasons)
        # first-request linking: for accounts the scan never saw act (unknown, or silent with 0 events) and for
        # accounts outside any campaign; an active campaign member's scan verdict already weighed its links
        if known is None or known.n_events == 0 or campaign_id is None:
            # a prompt's template is MinHashed only for accounts new to the scan and still light (first requests)
            st = self.state.account(acc)
            new = (known is None or known.n_events == 0) and (st is None or st.n < 50)
            lrisk, lcid, lreasons = self._link_risk(self._links(acc, event, meta, templates=new))
            if lcid is not None:
                campaign_id = campaign_id or lcid
                risk = max(risk, lrisk)
                add(lreasons)
        flag = self.state.get_flag(acc)
        policy = self.policy
        if flag == "fraudulent":
            risk = 1.0
            add([{"code": "ANALYST_CONFIRMED", "weight": 1.0, "details": {"source": "label"}}])
        immune = self.state.immune_until(acc)
        if flag == "legitimate" or immune:
            policy = policy.with_allowlist(accounts=[acc])
        org = event.get("org_id") or (meta or {}).get("org_id") or (known.org_id if known else None)
        # an own-evidence flag the scan's alert budget held back stays held back until the next scan
        held = known is not None and known.rule_id == "alert-budget"
        d = policy.decide(risk, list(reasons), in_campaign=campaign_id is not None, account_id=acc, org_id=org, held_back=held)
        return self._shape(acc, d.action, d.rule_id, d.ttl_seconds, risk, reasons, campaign_id, immune, record)

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

    def assess(self, meta: dict, client_ip: str | None = None, user_agent: str | None = None) -> dict:
        """Signup-time decision from metadata alone: campaign indicators and signup bursts."""
        row = self.put_account(meta)
        acc = row["account_id"]
        event = {"account_id": acc, "client_ip": client_ip, "user_agent": user_agent}
        d = self.decide(event)
        if row.get("created_at") is not None:
            from distillguard.link import memberships as mb

            created = int(row["created_at"].timestamp() * 1_000_000)
            with self._lock:
                recent = list(self._signups[-5000:])
            ids = [f"_{i}" for i in range(len(recent))] + [acc]
            ts = pa.array(recent + [created], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
            bursts = mb.signup_bursts(pa.table({"account_id": pa.array(ids, pa.string()), "created_at": ts}))
            if acc in set(bursts.column("account_id").to_pylist()):
                r = self.link_risk.get("signup_burst", 0.55)
                reasons = {x["code"]: x for x in d["reasons"]}
                reasons["SIGNUP_BURST"] = {"code": "SIGNUP_BURST", "weight": r,
                                           "details": {"source": "signup", "window": bursts.column("value")[0].as_py()}}
                risk = max(d["risk"], r)
                pol = self.policy.with_allowlist(accounts=[acc]) if self.state.immune_until(acc) else self.policy
                dd = pol.decide(risk, list(reasons), in_campaign=d["campaign_id"] is not None, account_id=acc,
                                org_id=row.get("org_id"))
                d = self._shape(acc, dd.action, dd.rule_id, dd.ttl_seconds, risk, reasons, d["campaign_id"])
        return d

    # -- feedback ----------------------------------------------------------------------
    def label(self, decision_id: str, label: str, note: str | None = None, by: str = "unknown") -> dict | None:
        """Analyst feedback on a decision (durable: journalled into ``decision_labels`` and the audit log)."""
        acc = self.state.get_decision(decision_id)
        if acc is None:
            return None
        self.state.set_flag(acc, label)
        rec = {"decision_id": decision_id, "account_id": acc, "label": label, "note": note, "at": time.time(), "by": by}
        self.journal.append([], [], [rec], audits=[{
            "analyst": by, "action": "label", "target_kind": "account", "target_id": acc, "reason": note or "",
            "details": {"decision_id": decision_id, "label": label}, "at": rec["at"]}])
        self._cache.pop(acc, None)
        return rec

    def challenge_result(self, challenge_id: str, passed: bool, by: str = "unknown") -> dict | None:
        """A live challenge's result, once: None for an unknown or expired id; ``{"used": True}`` for a repeat."""
        acc, used = self.state.take_challenge(challenge_id)
        if acc is None:
            return None
        if used:
            return {"used": True, "account_id": acc}
        until = None
        if passed:
            until = self.state.grant_immunity(acc, self.immunity_seconds)
        else:
            self.state.set_flag(acc, "fraudulent")
        label = "challenge_passed" if passed else "challenge_failed"
        now = time.time()
        rec = {"decision_id": challenge_id, "account_id": acc, "label": label, "note": None, "at": now, "by": by,
               "immune_until": until}
        self.journal.append([], [], [rec], audits=[{
            "analyst": by, "action": label, "target_kind": "account", "target_id": acc, "reason": "",
            "details": {"challenge_id": challenge_id, "immune_until": until}, "at": now}])
        self._cache.pop(acc, None)
        return {"account_id": acc, "passed": passed,
                "immune_until": datetime.fromtimestamp(until, tz=timezone.utc).isoformat() if until else None}

    # -- views -------------------------------------------------------------------------
    def account_view(self, account_id: str) -> dict | None:
        known = self.map.accounts.get(account_id)
        st = self.state.account(account_id)
        if known is None and st is None and not self.state.get_meta(account_id) and not self.state.get_links(account_id):
            return None
        d = self.decide({"account_id": account_id}, record=False)  # a read never makes a decision
        _, _, feats = self._online(account_id)
        return {
            "account_id": account_id,
            "decision": d,
            "scan": None if known is None else {"run_id": self.map.run_id, "risk": known.risk, "action": known.action,
                                                 "campaign_id": known.campaign_id, "rule_id": known.rule_id,
                                                 "n_events": known.n_events},
            "n_events_live": st.n if st else 0,
            "features": feats,
            "links": self.state.get_links(account_id),
            "label": self.state.get_flag(account_id),
        }

    def campaign_summary(self, cid: str) -> dict:
        c = self.map.campaigns.get(cid, {"campaign_id": cid})
        return {k: c.get(k) for k in ("campaign_id", "risk", "action", "n_accounts", "n_events", "first_seen", "last_seen",
                                      "reasons")} | {"n_indicators": len(self.map.indicators.get(cid, []))}

    def campaign_view(self, cid: str) -> dict | None:
        if cid not in self.map.campaigns and cid not in self.map.indicators:
            return None
        c = self.map.campaigns.get(cid, {})
        return self.campaign_summary(cid) | {
            "accounts": sorted(a for a, k in self.map.accounts.items() if k.campaign_id == cid),
            "indicators": self.map.indicators.get(cid, []),
            "evidence": c.get("evidence") or {},
        }
