"""The batch scan: store -> features -> signals -> linkage -> scoring -> decisions.

One direction, each stage a call into its own package. The result is a
:class:`ScanResult` that every output (Parquet, JSON, HTML, the store) renders.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property, partial
from datetime import datetime, timezone

import ibis
import numpy as np
import pyarrow as pa

from distillguard.features import feature_table
from distillguard.features.samples import end_user_sample, prompt_sample
from distillguard.intel.match import (CONFIRMED_KINDS, MATCH_SCHEMA, confirmed_matches, known_indicator_reasons,
                                      match_known_indicators)
from distillguard.link import find_communities, load_rules
from distillguard.link.graph import weighted_hubs
from distillguard.link import memberships as mb
from distillguard.score.campaigns import (HUB_JOIN_CODE, HUB_TIE_CODE, HUB_TIE_TERM, RING_CODE, RING_TERM,
                                          build_campaigns, characteristic_codes, hub_holders, hub_ties, judge_campaigns,
                                          kept_hubs, ring_links, shared_strong_codes, split_by_operator,
                                          strong_communities)
from distillguard.score import elevation, shared_elevation
from distillguard.score.evidence import attachment, build_evidence, own_scores
from distillguard.score.fusion import FusionModel, Reason, pooled_codes, strong_codes
from distillguard.score.operators import BUCKET_S, footprint_candidates, group_operators, join_footprint
from distillguard.score.policy import ACTIONS, Policy
from distillguard.score.relative import Baselines, lookalikes, make_relative, population_baselines
from distillguard.signals.behaviour import BEHAVIOUR_SIGNALS
from distillguard.signals.content.view import PromptView
from distillguard.signals.registry import default_signals, input_for
from distillguard.store import EventStore

__all__ = ["Analysis", "ScanResult", "analyse", "intel_matcher", "run_scan", "store_inputs"]

INDICATOR_KINDS = ("payment_fingerprint", "client_ip", "subnet", "user_agent", "client_fingerprint", "email_domain", "template")


@dataclass
class ScanResult:
    """Everything a scan found; the outputs render this."""

    run_id: str
    accounts: pa.Table
    campaigns: list[dict]
    indicators: pa.Table
    timings: dict[str, float] = field(default_factory=dict)
    n_events: int = 0
    policy_sha256: str = ""
    calibration: dict = field(default_factory=dict)
    """How risk was made relative (population or reference baselines) and the alert budget's use."""
    operators: list[dict] = field(default_factory=list)
    """Operators (campaigns that share operator evidence), largest first."""
    baselines: Baselines | None = None
    """The per-signal baselines the scores were made relative to (unrounded: the decision service applies them)."""
    lookalikes: list[str] = field(default_factory=list)
    """Accounts that look like one analysts cleared, so carry no strong signal (the decision service keeps it so)."""


class _Stages:
    """Times each stage and shows it on an optional Rich progress display."""

    def __init__(self, progress):
        self.progress = progress
        self.timings: dict[str, float] = {}

    def run(self, name, fn, *args, **kw):
        task = self.progress.add_task(name, total=1) if self.progress else None
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        self.timings[name] = round(time.perf_counter() - t0, 3)
        if task is not None:
            self.progress.update(task, completed=1)
        return out


def _declared_orgs(meta: pa.Table) -> dict[str, str | None]:
    """Accounts of a verified organisation: the evidence that clears a benign cluster."""
    rows = meta.select(["account_id", "org_id", "verified"]).to_pylist()
    return {r["account_id"]: r["org_id"] for r in rows if r["org_id"] and r["verified"]}


def _samples_by_account(samples: pa.Table) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a, p in zip(samples.column("account_id").to_pylist(), samples.column("prompt").to_pylist()):
        out.setdefault(a, []).append(p)
    return out


INDICATOR_PRECISION = 0.9
"""Share of a value's holders that must be members of the campaign for the value to be
one of its indicators: a card an enterprise shares with one account of a ring, or a
template its users share with it, must not challenge the enterprise's other accounts."""


def _indicators(comms, assignment: dict[str, str], memberships: pa.Table) -> pa.Table:
    """What ties each campaign together: its community's hubs that mostly its members hold."""
    schema = pa.schema([("campaign_id", pa.string()), ("kind", pa.string()), ("value", pa.string()), ("weight", pa.float64())])
    cid_of = {}
    for acc, c in comms.membership.items():
        if acc in assignment:
            cid_of[c] = assignment[acc]
    rows = [{"campaign_id": cid, "kind": kind, "value": value, "weight": round(w * n, 4)}
            for c, cid in cid_of.items() for kind, value, n, w in comms.hubs.get(c, []) if kind in INDICATOR_KINDS]
    hubs = pa.Table.from_pylist(rows, schema=schema)
    if not rows:
        return hubs
    holders = memberships.join(hubs.select(["kind", "value"]).group_by(["kind", "value"]).aggregate([]), ["kind", "value"])
    members = pa.table({"account_id": pa.array(list(assignment), pa.string()), "member_of": pa.array(list(assignment.values()), pa.string())})
    holders = holders.join(members, "account_id", join_type="left outer")
    counts = holders.group_by(["kind", "value", "member_of"]).aggregate([("account_id", "count_distinct")])
    held: dict[tuple, dict] = {}
    for kind, value, of, n in zip(*(counts.column(c).to_pylist() for c in ("kind", "value", "member_of", "account_id_count_distinct"))):
        held.setdefault((kind, value), {})[of] = n
    keep = [held[(k, v)].get(cid, 0) >= INDICATOR_PRECISION * sum(held[(k, v)].values())
            for cid, k, v in zip(*(hubs.column(c).to_pylist() for c in ("campaign_id", "kind", "value")))]
    return hubs.filter(pa.array(keep))


def _campaign_activity(events, assignment: dict[str, str]) -> dict[str, dict[int, int]]:
    """Requests of each campaign per 10-minute bucket (``BUCKET_S``): ``campaign_id -> {bucket: count}``.

    One pass over the members' events; the operator grouping reads the
    buckets (:func:`distillguard.score.operators.co_moving`) and each
    campaign's hourly timeline is summed from them.
    """
    if not assignment:
        return {}
    member = ibis.memtable(pa.table({"account_id": list(assignment), "campaign_id": list(assignment.values())}))
    j = events.select("account_id", "ts").join(member, "account_id")
    bucket = (j.ts.epoch_seconds() // BUCKET_S).cast("int64").name("bucket")
    counts = j.group_by(["campaign_id", bucket]).aggregate(n=j.count()).to_pyarrow()
    out: dict[str, dict[int, int]] = {}
    for cid, b, n in zip(*(counts.column(c).to_pylist() for c in ("campaign_id", "bucket", "n"))):
        out.setdefault(cid, {})[b] = n
    return out


def _account_activity(events, account_ids: list[str]) -> dict[str, np.ndarray]:
    """Requests of each of ``account_ids`` per ``BUCKET_S`` bucket, on one time axis."""
    return _activity_series(_campaign_activity(events, {a: a for a in account_ids}))[0]


def _activity_series(*activities: dict[str, dict[int, int]]) -> list[dict[str, np.ndarray]]:
    """The buckets of every group of every ``activities`` dict on one common time axis (a dict of series each)."""
    spans = [(min(b), max(b)) for activity in activities for b in activity.values() if b]
    if not spans:
        return [{} for _ in activities]
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    out = []
    for activity in activities:
        series = {}
        for key, buckets in activity.items():
            s = np.zeros(hi - lo + 1)
            s[np.fromiter(buckets, dtype=np.int64) - lo] = np.fromiter(buckets.values(), dtype=float)
            series[key] = s
        out.append(series)
    return out


def _operator_footprint(events, memberships: pa.Table, n_accounts: int, assignment: dict[str, str], operator_of: dict[str, dict],
                        activity: dict[str, dict[int, int]], camp: dict) -> dict[str, dict]:
    """Accounts outside every campaign attributed to an operator (:func:`distillguard.score.operators.join_footprint`)."""
    member_operator = {a: operator_of[cid]["operator_id"] for a, cid in assignment.items()}
    candidates = footprint_candidates(member_operator, memberships, load_rules(), n_accounts, camp.get("core_kinds", ()))
    if not candidates:
        return {}
    accounts, campaigns = _activity_series(_campaign_activity(events, {a: a for a in candidates}), activity)
    operators: dict[str, np.ndarray] = {}
    for cid, s in campaigns.items():
        oid = operator_of[cid]["operator_id"]
        operators[oid] = operators[oid] + s if oid in operators else s
    return join_footprint(candidates, accounts, operators, min_corr=camp.get("footprint_min_corr", 0.15),
                          min_z=camp.get("footprint_min_z", 4.0))


def _finish_campaigns(activity: dict[str, dict[int, int]], campaigns: list[dict], rows: list[dict]) -> None:
    """Each campaign's strongest member action and its hourly exchange timeline."""
    severity = {a: i for i, a in enumerate(ACTIONS)}
    worst: dict[str, str] = {}
    for r in rows:
        cid = r["campaign_id"]
        if cid and severity[r["action"]] > severity[worst.get(cid, "allow")]:
            worst[cid] = r["action"]
    per_hour = 3600 // BUCKET_S
    for c in campaigns:
        hours: dict[int, int] = {}
        for b, n in activity.get(c["campaign_id"], {}).items():
            hours[b // per_hour] = hours.get(b // per_hour, 0) + n
        c["action"] = worst.get(c["campaign_id"], "allow")
        c["timeline"] = [(datetime.fromtimestamp(h * 3600, timezone.utc).strftime("%Y-%m-%d %H:00"), n)
                         for h, n in sorted(hours.items())]


@dataclass
class Analysis:
    """What the detection stages computed, before any decision."""

    features: pa.Table
    samples: pa.Table
    meta: pa.Table
    signals: list
    results: list
    communities: object
    evidence: object
    memberships: pa.Table
    known: pa.Table | None = None  # intel matches (account_id, source, indicator_id, kind, confidence)
    baselines: Baselines | None = None
    strong: dict = field(default_factory=dict)  # signal -> per-account bool: relative score >= policy's `strong`
    active: object = None  # per-account bool: enough requests to count in population statistics
    candidates: dict = field(default_factory=dict)  # community -> strong-member test (score.campaigns.strong_communities)
    lookalikes: object = None  # per-account bool: looks like an account analysts cleared
    raw: object = None  # per-account raw signal scores, columns in ``signals`` order
    linked: pa.Table | None = None  # the weighted hub memberships the communities were built on (link.weighted_hubs)

    @cached_property
    def hubs_kept(self) -> list[tuple]:
        """``(kind, holder rows, value)`` of every hub the link rules keep (:func:`kept_hubs`), found once for the
        shared-elevation test and the hub ties (each reads the kinds it needs)."""
        rules = load_rules()
        return kept_hubs(self.memberships, self.evidence.account_ids, rules, [r.kind for r in rules], values=True,
                         weighted=self.linked)


def analyse(events, meta: pa.Table, progress=None, match_intel=None, policy: Policy | None = None,
            reference: dict | None = None, is_dismissed=None, cleared=frozenset(),
            model: FusionModel | None = None) -> tuple[Analysis, dict[str, float]]:
    """Features, signals, linkage and the evidence matrix of every account.

    ``events`` is an Ibis table with the canonical schema on any backend
    (DuckDB by default, Spark for scale-out); ``meta`` is account metadata.
    ``match_intel(memberships) -> matches`` (see :func:`intel_matcher`) looks
    the accounts' identifiers up in imported threat intelligence. Signal
    scores are made relative to this scan's population (``policy.population``;
    ``reference`` baselines when it is too small), and only communities whose
    members carry strong signals pool their evidence. ``cleared``: accounts
    analysts labelled legitimate; accounts that look like them carry no
    strong signal (:func:`distillguard.score.relative.lookalikes`). With ``population.baseline_passes: 2`` the
    baselines are taken again over the active accounts outside the campaigns that a first judging with ``model``
    (the packaged one by default) forms, and everything after them recomputed (docs/scoring.md section 4).
    """
    policy = policy or Policy.load()
    st = _Stages(progress)
    features = st.run("features", feature_table, events, meta)
    samples = st.run("prompt samples", lambda: prompt_sample(events).to_pyarrow()
                     .sort_by([("account_id", "ascending"), ("prompt", "ascending")]))
    end_users = st.run("end-user samples", lambda: end_user_sample(events).to_pyarrow()
                       .sort_by([("account_id", "ascending"), ("end_user", "ascending"), ("prompt", "ascending")]))
    signals = default_signals()

    def score_all():
        prompts, users = PromptView(samples), PromptView(end_users)  # each featurised once, for all content signals
        inputs = [input_for(s, features, prompts, users) for s in signals]
        return [s.fit(x).score(x) for s, x in zip(signals, inputs)]

    results = st.run("signals", score_all)
    members = st.run("linkage graph", mb.collect, events, meta, samples)
    known = match_intel(members) if match_intel else None
    ids = features.column("account_id").to_pylist()
    rules = load_rules()
    linked, comms = st.run("communities", _communities, members, rules, len(ids))
    activity_of = partial(_account_activity, events)
    tables = [(r.name, s.reason, r.scores) for s, r in zip(signals, results)]
    n_events = features.column("n_events").to_numpy(zero_copy_only=False).astype(float)
    raw, baselines, strong, active, like_cleared, candidates, evidence = st.run(
        "population calibration", _relative_evidence, ids, tables, comms, rules, meta, n_events, policy, reference,
        is_dismissed, cleared, members, activity_of)
    if policy.population.get("baseline_passes", 1) >= 2 and baselines.source == "population":
        model = model or FusionModel.load()
        strong_dict = {t[0]: strong[:, j] for j, t in enumerate(tables)}
        _, belongs = _judge(comms, ids, model.risk(evidence), evidence, model.reasons(evidence, strong=strong_dict),
                            candidates, policy.campaigns)
        outside = active & np.array([a not in belongs for a in ids], dtype=bool)
        if outside.sum() >= int(policy.population.get("min_accounts", 200)):
            raw, baselines, strong, active, like_cleared, candidates, evidence = st.run(
                "second baseline pass", _relative_evidence, ids, tables, comms, rules, meta, n_events, policy, reference,
                is_dismissed, cleared, members, activity_of, outside)
            baselines.details["note"] = (f"second pass: over the {baselines.n_active} active accounts outside the "
                                         f"{len(belongs)} members of the first pass's {len(set(belongs.values()))} campaigns")
    return Analysis(features, samples, meta, signals, results, comms, evidence, members, known, baselines,
                    {t[0]: strong[:, j] for j, t in enumerate(tables)}, active, candidates, like_cleared, raw,
                    linked), st.timings


def _communities(members: pa.Table, rules, n_accounts: int):
    """The weighted hub memberships (kept for :attr:`Analysis.hubs_kept`) and the communities built on them."""
    linked = weighted_hubs(members, {r.kind: r for r in rules}, n_accounts)
    return linked, find_communities(members, rules, n_accounts, linked=linked)


def _relative_evidence(ids, tables, comms, rules, meta, n_events, policy: Policy, reference, is_dismissed, cleared,
                       memberships, activity_of, population=None):
    """Scores relative to the population, strong signals, campaign candidates and the evidence matrix.

    ``activity_of(account_ids)``: their requests per bucket (:func:`_account_activity`), read when a candidate
    is split by operator. ``population``: the accounts whose active ones the baselines are taken over (all by
    default; the accounts outside the first pass's campaigns on a second pass)."""
    names = [t[0] for t in tables]
    pop, camp = policy.population, policy.campaigns
    active = n_events >= pop.get("min_events", 10)
    raw = own_scores(ids, tables)
    baselines = population_baselines(raw, names, active if population is None else active & population, min_accounts=int(pop.get("min_accounts", 200)),
                                     k_mad=pop.get("k_mad", 3.0), max_baseline=pop.get("max_baseline", 0.9),
                                     max_contamination=pop.get("max_contamination", 0.0), reference=reference)
    own = make_relative(raw, names, baselines)
    strong = own >= pop.get("strong", 0.5)
    like_cleared = lookalikes(raw, np.array([a in cleared for a in ids], dtype=bool))
    strong[like_cleared] = False
    attach = attachment(ids, comms, {r.kind: r.attach for r in rules})
    core_hubs = hub_holders(memberships, ids, comms, camp.get("core_kinds", ()))
    candidates = strong_communities(
        comms, ids, strong.any(axis=1), attach,
        min_attachment=camp.get("min_attachment", 0.3), min_strong_share=camp.get("min_strong_share", 0.5),
        min_strong_members=int(camp.get("min_strong_members", 3)), max_p_value=camp.get("max_p_value", 1e-4),
        is_dismissed=is_dismissed, core_hubs=core_hubs, grow_kinds=int(camp.get("grow_kinds", 2)),
    )
    candidates = split_by_operator(
        candidates, comms, ids, strong.any(axis=1), attach, core_hubs, activity_of, kinds=camp.get("split_kinds", ()),
        min_cell=int(camp.get("split_min_cell", 0)), min_z=camp.get("split_min_z", 3.0),
        follow_z=camp.get("split_follow_z", -np.inf),
        min_attachment=camp.get("min_attachment", 0.3), min_strong_share=camp.get("min_strong_share", 0.5),
        min_strong_members=int(camp.get("min_strong_members", 3)), max_p_value=camp.get("max_p_value", 1e-4))
    cores = {c: t["core"] + t["grown"] for c, t in candidates.items() if "core" in t}
    evidence = build_evidence(ids, tables, comms, _declared_orgs(meta), n_events, own=own, pool=candidates,
                              cores=cores, attach=attach)
    return raw, baselines, strong, active, like_cleared, candidates, evidence


def _judge(comms, ids, risk, evidence, reasons, candidates, camp: dict):
    """Which candidate communities are campaigns (:func:`judge_campaigns`), a strong member being one with a strong
    own signal among its ``reasons``."""
    return judge_campaigns(comms, ids, risk, evidence.column("campaign_attachment"),
                           strong=np.array([bool(strong_codes(r)) for r in reasons]),
                           min_flagged_share=camp.get("min_flagged_share", 0.25),
                           min_attachment=camp.get("min_attachment", 0.3), candidates=candidates)


def _strays(an) -> set[str]:
    """Accounts a split by operator left out of a ring as another operator's (:func:`split_by_operator`)."""
    return {a for t in an.candidates.values() for a in t.get("strays", ())}


def _hub_ties(an, belongs: dict, risk, camp: dict, reasons, codes_of) -> dict[str, dict]:
    """The accounts tied to a campaign by their kept hubs (:func:`hub_ties`), last, after both elevation tests:
    ``belongs`` gains those outside every campaign; a tied member gets the reason ``HUB_TIED``, an account that
    joined ``HUB_JOINED`` (in ``reasons`` / ``codes_of``, in place); returns their evidence."""
    min_hubs = int(camp.get("hub_join_min_hubs", 0))
    if min_hubs <= 0:
        return {}
    ids = an.evidence.account_ids
    tied = hub_ties(an.communities, ids, risk, belongs, an.hubs_kept, min_hubs, float(camp.get("hub_join_min_share", 0.5)),
                     strays=_strays(an))
    belongs.update({a: t["campaign"] for a, t in tied.items()})
    index = {a: i for i, a in enumerate(ids)}
    for a, t in tied.items():
        code = HUB_JOIN_CODE if t["joined"] else HUB_TIE_CODE
        reasons[index[a]].append(Reason(code, 0.0, (HUB_TIE_TERM,)))
        codes_of[index[a]].append(code)
    return tied


def _ring_links(an, belongs: dict, strong_of: list[set], elevated_of: list[set], own_strong: list[set], policy: Policy,
                reasons, codes_of) -> dict[str, dict]:
    """The campaign members without a strong or elevated campaign signal that carry ring evidence of their own: ring
    members (a strong signal of ``campaigns.ring_families``, intent: ``own_intent``) and members linked to the ring
    members by their own hubs (:func:`ring_links`). Each gets the reason ``RING_EVIDENCE`` (in ``reasons`` /
    ``codes_of``, in place). Ring members: a strong signal of the campaign's own, or of intent."""
    ids = an.evidence.account_ids
    camp = policy.campaigns
    families = policy.corroboration.families if policy.corroboration else {}
    intent = set().union(*(families.get(f, ()) for f in camp.get("ring_families", ())))
    ring = np.array([bool(s or own & intent) for s, own in zip(strong_of, own_strong)])
    linked = ring_links(ids, belongs, ring, an.hubs_kept, int(camp.get("ring_link_min_hubs", 0)),
                        float(camp.get("ring_link_min_share", 0.1)))
    index = {a: i for i, a in enumerate(ids)}
    for a in belongs:
        if own_strong[index[a]] & intent:
            linked.setdefault(a, {})["own_intent"] = sorted(own_strong[index[a]] & intent)
    linked = {a: t for a, t in linked.items() if not (strong_of[index[a]] or elevated_of[index[a]])}
    for a in linked:
        reasons[index[a]].append(Reason(RING_CODE, 0.0, (RING_TERM,)))
        codes_of[index[a]].append(RING_CODE)
    return linked


def _tie_summary(tied: dict[str, dict], camp: dict) -> dict:
    """What the hub-tie test did (for the report): its levels, the members it tied and the outsiders that joined."""
    joined = sum(t["joined"] for t in tied.values())
    return {"min_hubs": int(camp.get("hub_join_min_hubs", 0)), "min_share": float(camp.get("hub_join_min_share", 0.5)),
            "tied_members": len(tied) - joined, "joined": joined}


def _ring_summary(linked: dict[str, dict], camp: dict) -> dict:
    """What the ring-evidence test did (for the report): its levels and the members it gave RING_EVIDENCE."""
    return {"min_hubs": int(camp.get("ring_link_min_hubs", 0)), "min_share": float(camp.get("ring_link_min_share", 0.1)),
            "members": len(linked)}


def _decisions(policy: Policy, ids, risk, reasons, codes_of, assignment, org_of, strong_of, elevated_of):
    """Each account's policy decision, and per account the codes it carries only through its campaign's pooled
    evidence (:func:`pooled_codes`: they corroborate only as the campaign does)."""
    pooled_of = [pooled_codes(r) for r in reasons]
    decisions = [policy.decide(float(risk[i]), codes_of[i], in_campaign=acc in assignment, account_id=acc, org_id=org_of[i],
                               strong=strong_of[i], elevated=elevated_of[i], pooled=pooled_of[i]) for i, acc in enumerate(ids)]
    return decisions, pooled_of


def store_inputs(store: EventStore):
    """The canonical events (Ibis, DuckDB-bound) and account metadata of a store."""
    return store.ibis().table("events"), store.con.sql("SELECT * FROM accounts").to_arrow_table()


def intel_matcher(store: EventStore, key: bytes | None, confirmed: list[dict] = ()):
    """A ``match_intel`` for :func:`analyse`.

    Matches the store's imported indicators under ``key`` (source = the
    bundle or list) and the identifiers of campaigns analysts confirmed
    (source ``analyst:<campaign id>``). None when there is nothing to match.
    """
    local = [c for c in confirmed if c["kind"] in CONFIRMED_KINDS]
    if key is None and not local:
        return None

    def match(memberships: pa.Table) -> pa.Table:
        parts = [match_known_indicators(store, memberships, key)] if key is not None else []
        if local:
            parts.append(confirmed_matches(memberships, local))
        return pa.concat_tables(parts) if parts else MATCH_SCHEMA.empty_table()

    return match


def _elevation_reasons(an, belongs, camp_risk, characteristic, risk, policy: Policy, own_strong, reasons, codes_of):
    """Both elevation tests, their reasons appended to ``reasons`` / ``codes_of`` in place.

    Returns each account's codes elevated in its campaign, the members elevated only there (no strong reason
    of their own says it), the shared-elevation groups, and both tests' reports."""
    elevated, elevation_report = _campaign_elevation(an, belongs, camp_risk, characteristic, policy.campaigns)
    elevated_of = [{h["code"] for h in elevated.get(i, ())} for i in range(len(reasons))]
    signal_only = {i: [h for h in hits if h["code"] not in own_strong[i]] for i, hits in elevated.items()}
    signal_only = {i: hits for i, hits in signal_only.items() if hits}  # a strong reason says it already: marked
    for i in signal_only:
        reasons[i].append(Reason(elevation.CODE, 0.0, (elevation.TERM,)))
        codes_of[i].append(elevation.CODE)
    shared, shared_report = _shared_elevation(an, belongs, camp_risk, characteristic, risk, policy)
    for g in shared.values():
        for i in g["members"]:
            reasons[i].append(Reason(shared_elevation.CODE, 0.0, (shared_elevation.TERM,)))
            codes_of[i].append(shared_elevation.CODE)
    return elevated_of, signal_only, shared, elevation_report, shared_report


def run_scan(events, meta: pa.Table, policy: Policy | None = None, model: FusionModel | None = None, progress=None,
             match_intel=None, is_dismissed=None, cleared=frozenset()) -> ScanResult:
    """Scan ``events`` (an Ibis table, see :func:`analyse`) and decide an action for every account.

    ``is_dismissed(members)``: whether analysts already cleared this cluster
    (it then stays cleared: no campaign). ``cleared``: accounts analysts
    labelled legitimate, whose look-alikes carry no strong signal.
    """
    policy = policy or Policy.load()
    model = model or FusionModel.load()
    an, timings = analyse(events, meta, progress, match_intel, policy, model.reference_baselines, is_dismissed, cleared,
                          model)
    st = _Stages(progress)
    features, samples, meta, results, comms, evidence = an.features, an.samples, an.meta, an.results, an.communities, an.evidence
    ids = evidence.account_ids
    risk = model.risk(evidence)
    reasons = model.reasons(evidence, strong=an.strong)
    known = known_indicator_reasons(an.known)
    for i, acc in enumerate(ids):
        if acc in known:
            reasons[i] = [known[acc][0], *reasons[i]]
    by_account = _samples_by_account(samples)
    camp = policy.campaigns
    codes_of = [[r.code for r in reasons[i]] for i in range(len(ids))]
    own_strong = [strong_codes(r) for r in reasons]  # the codes of each account's strong own signals
    camp_risk, belongs = _judge(comms, ids, risk, evidence, reasons, an.candidates, camp)
    # the codes shared_strong_share of each campaign's strong members carry: what strong_signal and elevated_signal rules read
    characteristic = characteristic_codes(belongs, own_strong, ids, camp.get("shared_strong_share", 0.25))
    elevated_of, signal_only, shared, elevation_report, shared_report = _elevation_reasons(
        an, belongs, camp_risk, characteristic, risk, policy, own_strong, reasons, codes_of)
    tied = _hub_ties(an, belongs, risk, camp, reasons, codes_of)
    strong_of = shared_strong_codes(belongs, own_strong, ids, characteristic)
    linked = _ring_links(an, belongs, strong_of, elevated_of, own_strong, policy, reasons, codes_of)
    campaigns, assignment = st.run(
        "campaigns", build_campaigns, comms, ids, risk, camp_risk, belongs, reasons, features, by_account,
        {r.name: r.evidence for r in results}, tied,
    )
    activity = st.run("campaign activity", _campaign_activity, events, assignment)
    operator_of = group_operators(assignment, an.memberships, load_rules(), len(ids), _activity_series(activity)[0],
                                  min_corr=camp.get("operator_min_corr", 0.3), min_z=camp.get("operator_min_z", 5.0))
    footprint = st.run("operator footprint", _operator_footprint, events, an.memberships, len(ids), assignment, operator_of,
                       activity, camp)
    shared_of = {assignment[ids[g["members"][0]]]: g for g in shared.values()}
    for c in campaigns:
        if c["campaign_id"] in shared_of:
            c["shared_elevation"] = _shared_summary(shared_of[c["campaign_id"]])
        c["operator_id"] = operator_of[c["campaign_id"]]["operator_id"]
        c["operator_shared"] = operator_of[c["campaign_id"]]["shared"]
    meta_org = dict(zip(meta.column("account_id").to_pylist(), meta.column("org_id").to_pylist()))
    orgs = features.column("org_id").to_pylist()
    org_of = [meta_org.get(acc) or orgs[i] for i, acc in enumerate(ids)]
    decisions, pooled_of = _decisions(policy, ids, risk, reasons, codes_of, assignment, org_of, strong_of, elevated_of)
    budget = _apply_alert_budget(policy, ids, risk, codes_of, strong_of, elevated_of, pooled_of, assignment, org_of, decisions, an.active,
                                 an.baselines)
    evidence_of = {r.name: r.evidence for r in results}
    evidence_of[elevation.TERM] = {ids[i]: {"campaign_id": assignment[ids[i]], "quantile": camp.get("elevation_quantile"),
                                            "signals": hits} for i, hits in signal_only.items()}
    evidence_of[shared_elevation.TERM] = {ids[i]: {"campaign_id": assignment[ids[i]], "score": round(float(score), 4),
                                                   **_shared_summary(g)}
                                          for g in shared.values() for i, score in zip(g["members"], g["scores"])}
    evidence_of[HUB_TIE_TERM] = {a: {"campaign_id": assignment[a], "joined": t["joined"], "kept_hubs": t["kept_hubs"],
                                      "hubs": t["hubs"][:20]} for a, t in tied.items()}
    evidence_of[RING_TERM] = {a: {"campaign_id": assignment[a], **t} for a, t in linked.items()}
    rows = []
    for i, acc in enumerate(ids):
        cid = assignment.get(acc)
        details = [
            {"code": r.code, "weight": r.weight, "evidence": {t: evidence_of[t][acc] for t in r.terms if t in evidence_of and acc in evidence_of[t]}, "terms": list(r.terms), "strong": r.strong,
             "campaign_shared": r.code in strong_of[i], "campaign_elevated": r.strong and r.code in elevated_of[i]}
            for r in reasons[i]
        ]
        if acc in known:
            details[0]["evidence"] = {"known_indicator": known[acc][1]}
        d = decisions[i]
        rows.append(
            {
                "account_id": acc,
                "risk": round(float(risk[i]), 6),
                "action": d.action,
                "campaign_id": cid,
                "operator_id": operator_of[cid]["operator_id"] if cid else footprint.get(acc, {}).get("operator_id"),
                "reasons": codes_of[i],
                "rule_id": d.rule_id,
                "n_events": int(features.column("n_events")[i].as_py()),
                "org_id": org_of[i],
                "reasons_json": json.dumps(details, ensure_ascii=False, default=str),
            }
        )
    accounts = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("account_id", pa.string()), ("risk", pa.float64()), ("action", pa.string()), ("campaign_id", pa.string()),
                ("operator_id", pa.string()), ("reasons", pa.list_(pa.string())), ("rule_id", pa.string()), ("n_events", pa.int64()),
                ("org_id", pa.string()), ("reasons_json", pa.string()),
            ]
        ),
    )
    _finish_campaigns(activity, campaigns, rows)
    for name in evidence.names:
        accounts = accounts.append_column(name, pa.array(evidence.column(name), pa.float64()))
    accounts = accounts.sort_by([("risk", "descending"), ("account_id", "ascending")])
    return ScanResult(
        run_id=uuid.uuid4().hex[:12],
        accounts=accounts,
        campaigns=campaigns,
        indicators=_indicators(comms, assignment, an.memberships),
        timings=timings | st.timings,
        n_events=int(features.column("n_events").to_numpy().sum()),
        policy_sha256=policy.sha256,
        calibration={"population": an.baselines.as_dict(), "alert_budget": budget, "campaign_elevation": elevation_report,
                     "shared_elevation": shared_report, "hub_ties": _tie_summary(tied, camp),
                     "ring_evidence": _ring_summary(linked, camp),
                     "analyst_cleared": {"accounts": len(cleared), "lookalikes_without_strong_signals": int(an.lookalikes.sum())},
                     "candidate_communities": len(an.candidates),
                     "behaviour_fit": {s.name: s.fitted() for s in an.signals if isinstance(s, BEHAVIOUR_SIGNALS)}},
        operators=_operators(campaigns, footprint),
        baselines=an.baselines,
        lookalikes=[ids[i] for i in np.flatnonzero(an.lookalikes)],
    )


def _operators(campaigns: list[dict], footprint: dict[str, dict]) -> list[dict]:
    """Operator -> its campaigns, accounts and strongest action, largest first.

    ``attributed``: accounts outside its campaigns tied to it by ring evidence and activity
    (``footprint``; their count, and the first 50 with what tied them).
    """
    severity = {a: i for i, a in enumerate(ACTIONS)}
    ops: dict[str, dict] = {}
    for c in campaigns:
        o = ops.setdefault(c["operator_id"], {"operator_id": c["operator_id"], "campaigns": [], "n_accounts": 0,
                                              "n_events": 0, "risk": 0.0, "action": "allow", "shared": [],
                                              "n_attributed": 0, "attributed": []})
        o["campaigns"].append(c["campaign_id"])
        o["n_accounts"] += c["n_accounts"]
        o["n_events"] += c["n_events"]
        o["risk"] = max(o["risk"], c["risk"])
        if severity[c.get("action", "allow")] > severity[o["action"]]:
            o["action"] = c["action"]
        seen = {(s["kind"], s["value"]) for s in o["shared"]}
        o["shared"] += [s for s in c["operator_shared"] if (s["kind"], s["value"]) not in seen][:20 - len(o["shared"])]
    for acc, f in sorted(footprint.items()):
        o = ops[f["operator_id"]]
        o["n_attributed"] += 1
        if len(o["attributed"]) < 50:
            o["attributed"].append({"account_id": acc, "shared": f["shared"]})
    return sorted(ops.values(), key=lambda o: (-o["n_accounts"], o["operator_id"]))


def _campaign_elevation(an: Analysis, belongs: dict, camp_risk: dict, characteristic: dict, camp: dict):
    """Campaign members elevated on their campaign's characteristic detectors (:mod:`distillguard.score.elevation`).

    Returns ``row -> signals`` and what the scan reports; adds the loosely attached members that
    are elevated to ``belongs``. A scan too small for population statistics has no elevation.
    """
    ids = an.evidence.account_ids
    q = float(camp.get("elevation_quantile", 0.0))
    outside = np.array([a not in belongs for a in ids], dtype=bool)
    levels = elevation.elevation_levels(an.raw, an.active, outside, q) if an.baselines.source == "population" else None
    if levels is None:
        note = ("off: campaigns.elevation_quantile is 0" if q <= 0 else
                "off: small scan, no population to compare with (reference baselines)" if an.baselines.source != "population"
                else "off: no active account outside the campaigns to compare with")
        return {}, {"quantile": q, "levels": None, "note": note}
    codes = [s.reason for s in an.signals]
    n_before = len(belongs)
    whole = {k for k in camp_risk if not isinstance(k, tuple)}  # communities that are a campaign as a whole (not a core)
    elevated = elevation.elevated_members(belongs, characteristic, an.communities.membership, whole, ids, an.raw, codes,
                                          levels)
    return elevated, {"quantile": q, "population": int((an.active & outside).sum()),
                      "levels": {c: round(float(v), 4) for c, v in zip(codes, levels)},
                      "elevated_members": len(elevated), "joined": len(belongs) - n_before}


def _shared_elevation(an: Analysis, belongs: dict, camp_risk: dict, characteristic: dict, risk: np.ndarray, policy: Policy):
    """Campaigns of accounts outside every campaign, linked and elevated together on one detector
    (:mod:`distillguard.score.shared_elevation`).

    Adds them to ``belongs``, ``camp_risk`` and ``characteristic`` (keyed ``("shared elevation", n)``) and
    returns ``key -> group`` and what the scan reports. A scan too small for population statistics has none.
    """
    camp = policy.campaigns
    q = float(camp.get("shared_elevation_quantile", 0.0))
    if q <= 0 or an.baselines.source != "population":
        return {}, {"quantile": q, "campaigns": 0, "members": 0,
                    "note": "off: campaigns.shared_elevation_quantile is 0" if q <= 0 else
                    "off: small scan, no population to compare with (reference baselines)"}
    ids = an.evidence.account_ids
    families = camp.get("shared_elevation_families", [])
    tested = set().union(*(policy.corroboration.families.get(f, ()) for f in families)) if policy.corroboration else set()
    # look-alikes of accounts analysts cleared carry no strong signal (section 8): nor a shared elevation
    # nor does another operator's account that a split left out of a ring (score.campaigns.split_by_operator)
    strays = _strays(an)
    outside = np.array([a not in belongs and a not in strays for a in ids], dtype=bool) & ~np.asarray(an.lookalikes, dtype=bool)
    core = set(camp.get("core_kinds", ()))
    hubs = [(kind, rows) for kind, rows, _ in an.hubs_kept if kind in core]
    groups = shared_elevation.shared_elevation_groups(
        an.raw, an.active, outside, [s.reason for s in an.signals], tested, hubs, quantile=q,
        min_share=float(camp.get("shared_elevation_share", 0.3)), min_members=int(camp.get("min_strong_members", 3)),
        max_p_value=float(camp.get("max_p_value", 1e-4)))
    out = {}
    for n, g in enumerate(groups):
        key = ("shared elevation", n)
        members = g["members"]
        out[key] = g
        camp_risk[key] = float(risk[members].mean())
        characteristic[key] = {g["code"]}
        for i in members:
            belongs[ids[i]] = key
    return out, {"quantile": q, "families": families, "population": int((an.active & outside).sum()),
                 "campaigns": len(groups), "members": int(sum(len(g["members"]) for g in groups))}


def _shared_summary(g: dict) -> dict:
    """What a shared-elevation campaign's reason and record say: the detector, level, count against chance, links."""
    return {"signal": g["code"], "level": round(g["level"], 4), "elevated": g["elevated"], "linked": g["linked"],
            "expected": g["expected"], "p_value": float(f"{g['p_value']:.3g}"), "linked_by": g["kinds"]}


def _apply_alert_budget(policy: Policy, ids, risk, codes_of, strong_of, elevated_of, pooled_of, assignment, org_of, decisions, active,
                        population: Baselines) -> dict:
    """Hold back own-evidence flags beyond ``max_flag_share`` of active accounts (highest risk kept).

    Only flags that rest on an account's own evidence alone count (policy
    ``corroboration.own_evidence``); campaign members and analyst or intel
    matches are outside the budget. Rewrites ``decisions`` in place and
    returns what the scan reports.
    """
    c = policy.corroboration
    if c is None:
        return {}
    if population.source != "population":  # 0.5% of a hundred accounts is no one: a budget needs a population
        return {"max_flag_share": c.max_flag_share, "active_accounts": int(active.sum()), "budget": None, "binds": False,
                "held_back": 0, "note": "small scan: no alert budget (it is a share of a population)"}
    cap = ACTIONS.index(c.cap)
    own = [i for i, d in enumerate(decisions)
           if ACTIONS.index(d.action) > cap
           and c.own_evidence_only(set(codes_of[i]) - pooled_of[i],
                                   c.campaign_counts(ids[i] in assignment, set(codes_of[i]), strong_of[i], elevated_of[i]))]
    n_active = int(active.sum())
    budget = int(c.max_flag_share * n_active)
    own.sort(key=lambda i: -risk[i])
    held = own[budget:]
    for i in held:
        decisions[i] = policy.decide(float(risk[i]), codes_of[i], in_campaign=ids[i] in assignment, account_id=ids[i],
                                     org_id=org_of[i], held_back=True, strong=strong_of[i], elevated=elevated_of[i],
                                     pooled=pooled_of[i])
    return {"max_flag_share": c.max_flag_share, "active_accounts": n_active, "budget": budget,
            "own_evidence_flags": len(own), "binds": bool(held), "held_back": len(held),
            "held_back_accounts": [{"account_id": ids[i], "risk": round(float(risk[i]), 4), "would_be": decisions[i].capped_from,
                                    "reasons": codes_of[i]} for i in held[:50]]}
