"""Export detected campaigns as a STIX 2.1 bundle of keyed-hash indicators.

What leaves: per campaign an intrusion-set (pseudonymous name, first/last
seen, a size bucket, reason codes), attack-patterns for its techniques,
``uses`` and ``indicates`` relationships, and indicators whose patterns carry
only HMAC-SHA256 values under the consortium key. What never leaves: account
ids, emails, prompts, responses, raw IPs, raw payment data, internal ids.

An identifier is exported for a campaign only when at least ``min_support``
of the campaign's accounts hold it and at least ``min_precision`` of all the
accounts that hold it (on the exporter's own traffic) are in campaigns: a
shared NAT, gmail.com or a popular browser's user agent stays home. A
template band goes only when none of the exporter's non-campaign accounts
holds it (``max_outside_template``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.intel.keys import canonical, key_id, keyed_hash
from distillguard.intel.match import template_scheme
from distillguard.intel.tables import ensure_tables
from distillguard.intel.techniques import TECHNIQUES, attack_pattern_id, techniques_for
from distillguard.store import table_exists

__all__ = ["ExportOptions", "build_bundle", "export_bundle", "HASH_OBJECT", "indicator_pattern", "TLP_LEVELS"]

HASH_OBJECT = "x-distillguard-keyed-hash"
"""The custom STIX cyber-observable type the indicator patterns refer to."""

EXPORT_KINDS = ("payment_fingerprint", "client_ip", "subnet", "user_agent", "client_fingerprint", "email_domain", "template")
_KIND_FACTOR = {"payment_fingerprint": 1.0, "client_ip": 1.0, "subnet": 0.7, "user_agent": 0.8, "client_fingerprint": 0.8, "email_domain": 0.8, "template": 0.9}
TLP_LEVELS = ("white", "clear", "green", "amber", "red")
_NS = uuid.UUID("0b4f3f8e-5b1c-4c3e-8d0a-1f6b6c2d9e11")


@dataclass
class ExportOptions:
    campaigns: tuple[str, ...] = ()
    tlp: str = "amber"
    recipient: str | None = None
    producer: str = "distillguard"
    valid_days: int = 90
    min_support: int = 2
    min_support_exact: int | None = 1
    """Support needed for exact identifiers (client IP, payment fingerprint); None: ``min_support``."""
    min_precision: float = 0.9
    max_outside_template: int = 0
    """Non-campaign accounts of the exporter's that may hold a template band: templates
    match by near-duplication, so phrasing any benign account at home shares (a
    homework style, a benchmark prompt) would match benign accounts at a peer too."""
    max_per_kind: int = 500
    include_unconfirmed: bool = False
    """Also share campaigns no analyst confirmed and the policy does not block (``--include-unconfirmed``)."""


def _tlp(level: str):
    import stix2

    lv = level.lower()
    table = {"white": stix2.TLP_WHITE, "clear": stix2.TLP_WHITE, "green": stix2.TLP_GREEN, "amber": stix2.TLP_AMBER, "red": stix2.TLP_RED}
    if lv not in table:
        raise UsageError(f"unknown TLP level {level!r} (one of {', '.join(TLP_LEVELS)})")
    return table[lv]


def indicator_pattern(kind: str, digest: str) -> str:
    """The STIX pattern of one keyed-hash indicator."""
    return f"[{HASH_OBJECT}:kind = '{kind}' AND {HASH_OBJECT}:value = '{digest}']"


def _campaigns(con, wanted: tuple[str, ...], include_unconfirmed: bool = False) -> list[dict]:
    """The campaigns to share: by default only those an analyst confirmed or the policy blocks, never dismissed ones.

    What a peer imports it acts on, against its own customers: an unreviewed cluster below ``block`` is a
    lead for our analysts, not intelligence to hand on.
    """
    from distillguard.audit import latest_campaign_status

    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'campaigns'").fetchone()[0]
    if not has:
        raise UsageError("the store holds no scan results: run `distillguard scan ... --db DB` first")
    rows = con.execute("SELECT campaign_id, risk, n_accounts, first_seen, last_seen, reasons, action FROM campaigns "
                       "ORDER BY campaign_id").fetchall()
    camps = [dict(zip(("campaign_id", "risk", "n_accounts", "first_seen", "last_seen", "reasons", "action"), r)) for r in rows]
    if wanted:
        known = {c["campaign_id"] for c in camps}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise UsageError(f"no such campaign in the store: {', '.join(missing)}")
        camps = [c for c in camps if c["campaign_id"] in set(wanted)]
    status = latest_campaign_status(con)
    shared = [c for c in camps if status.get(c["campaign_id"]) != "dismissed" and (
        include_unconfirmed or status.get(c["campaign_id"]) == "confirmed" or c["action"] == "block")]
    held = sorted({c["campaign_id"] for c in camps} - {c["campaign_id"] for c in shared})
    if wanted and held:
        raise UsageError(f"not shared: {', '.join(held[:5])} (dismissed, or neither analyst-confirmed nor at block; "
                         "confirm it in the console or pass --include-unconfirmed)")
    return shared


def _candidates(store, camps: list[dict], opts: ExportOptions) -> list[dict]:
    """(campaign_id, kind, value, support, precision) of the identifiers worth exporting."""
    con = store.con
    ids = [c["campaign_id"] for c in camps]
    if not ids:
        return []
    n_events = con.execute("SELECT count(*) FROM events").fetchone()[0] if table_exists(con, "events") else 0
    if n_events and table_exists(con, "account_results"):
        from distillguard.intel.match import account_memberships

        events = store.ibis().table("events")
        meta = con.sql("SELECT * FROM accounts").to_arrow_table()
        mem = account_memberships(events, meta)
        con.register("_dg_mem", mem)
        con.register("_dg_ids", pa.table({"campaign_id": pa.array(ids, pa.string())}))
        try:
            rows = con.execute(
                f"""
                WITH m AS (SELECT DISTINCT account_id, kind, value FROM _dg_mem WHERE kind IN ({','.join('?' * len(EXPORT_KINDS))})),
                r AS (SELECT account_id, campaign_id FROM account_results),
                tot AS (SELECT kind, value, count(*) AS n_all, count(r.campaign_id) AS n_flagged
                        FROM m LEFT JOIN r USING (account_id) GROUP BY kind, value),
                c AS (SELECT r.campaign_id, m.kind, m.value, count(*) AS support
                      FROM m JOIN r USING (account_id) WHERE r.campaign_id IN (SELECT campaign_id FROM _dg_ids)
                      GROUP BY ALL)
                SELECT c.campaign_id, c.kind, c.value, c.support, tot.n_flagged / tot.n_all AS precision
                FROM c JOIN tot USING (kind, value)
                WHERE c.support >= CASE WHEN c.kind IN ('client_ip', 'payment_fingerprint') THEN ? ELSE ? END
                  AND tot.n_flagged / tot.n_all >= ?
                  AND (c.kind <> 'template' OR tot.n_all - tot.n_flagged <= ?)
                ORDER BY c.campaign_id, c.kind, c.support DESC, c.value
                """,
                [*EXPORT_KINDS, opts.min_support if opts.min_support_exact is None else opts.min_support_exact,
                 opts.min_support, opts.min_precision, opts.max_outside_template],
            ).fetchall()
        finally:
            con.unregister("_dg_mem")
            con.unregister("_dg_ids")
        out = [dict(zip(("campaign_id", "kind", "value", "support", "precision"), r)) for r in rows]
    elif table_exists(con, "campaign_indicators"):  # results only (e.g. the Spark engine): the scan's hubs
        rows = con.execute(
            "SELECT campaign_id, kind, value, weight FROM campaign_indicators ORDER BY campaign_id, kind, weight DESC, value"
        ).fetchall()
        out = [
            {"campaign_id": c, "kind": k, "value": v, "support": opts.min_support, "precision": min(1.0, 0.5 + float(w or 0) / 10)}
            for c, k, v, w in rows if c in set(ids) and k in EXPORT_KINDS
        ]
    else:
        out = []
    kept, count = [], {}
    for r in out:
        k = (r["campaign_id"], r["kind"])
        if count.get(k, 0) < opts.max_per_kind:
            count[k] = count.get(k, 0) + 1
            kept.append(r)
    return kept


def _confidence(kind: str, support: int, precision: float) -> int:
    c = 100 * float(precision) * (1 - 0.5 ** int(support)) * _KIND_FACTOR.get(kind, 0.8)
    return max(1, min(100, int(round(c))))


def _size_bucket(n: int) -> str:
    for hi, label in ((10, "2-9"), (100, "10-99"), (1000, "100-999"), (10000, "1000-9999")):
        if n < hi:
            return label
    return "10000+"


def _utc(ts) -> datetime | None:
    if ts is None:
        return None
    return ts.astimezone(timezone.utc) if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def build_bundle(store, key: bytes, opts: ExportOptions | None = None, now: datetime | None = None):
    """``(bundle, summary)``: the STIX 2.1 bundle (a ``stix2.Bundle``) and what it holds."""
    import stix2

    opts = opts or ExportOptions()
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    tlp = _tlp(opts.tlp)
    kid = key_id(key)
    con = store.con
    camps = _campaigns(con, tuple(opts.campaigns), opts.include_unconfirmed)
    cands = _candidates(store, camps, opts)
    identity = stix2.Identity(
        id=f"identity--{uuid.uuid5(_NS, 'producer|' + opts.producer)}",
        name=opts.producer, identity_class="organization", created=now, modified=now,
        object_marking_refs=[tlp],
    )
    common = {"created_by_ref": identity.id, "object_marking_refs": [tlp], "created": now, "modified": now}
    objects: list = [identity]
    patterns: dict[str, object] = {}
    by_camp: dict[str, list[dict]] = {}
    for r in cands:
        by_camp.setdefault(r["campaign_id"], []).append(r)
    kinds: dict[str, int] = {}
    n_ind = 0
    valid_until = now + timedelta(days=opts.valid_days)
    for c in camps:
        pseudo = hmac.new(key, f"campaign|{kid}|{c['campaign_id']}".encode(), hashlib.sha256).hexdigest()
        reasons = [r for r in (c["reasons"] or []) if isinstance(r, str)]
        iset = stix2.IntrusionSet(
            id=f"intrusion-set--{uuid.uuid5(_NS, pseudo)}",
            name=f"DG-{pseudo[:12]}",
            description="Distillation campaign: many accounts harvesting model outputs, detected by distillguard.",
            first_seen=_utc(c["first_seen"]), last_seen=_utc(c["last_seen"]),
            goals=["harvest model outputs to train a copy of the model"],
            x_distillguard_size=_size_bucket(int(c["n_accounts"] or 0)),
            x_distillguard_reasons=sorted(set(reasons)),
            x_distillguard_risk=round(float(c["risk"] or 0), 3),
            allow_custom=True, **common,
        )
        objects.append(iset)
        for tk in techniques_for(reasons):
            if tk not in patterns:
                name, desc, codes = TECHNIQUES[tk]
                patterns[tk] = stix2.AttackPattern(
                    id=attack_pattern_id(tk), name=name, description=desc,
                    external_references=[{"source_name": "distillguard", "external_id": tk, "description": "reason codes: " + ", ".join(codes)}],
                    **common,
                )
                objects.append(patterns[tk])
            objects.append(stix2.Relationship(
                id=f"relationship--{uuid.uuid5(_NS, iset.id + '|uses|' + tk)}",
                relationship_type="uses", source_ref=iset.id, target_ref=attack_pattern_id(tk), **common))
        for r in by_camp.get(c["campaign_id"], []):
            kind = r["kind"]
            try:
                canon = canonical(kind, r["value"])
            except ValueError:
                continue
            digest = keyed_hash(key, kind, canon, canonical_value=True)
            extra = {"x_distillguard_kind": kind, "x_distillguard_key_id": kid}
            if kind in ("client_ip", "subnet"):
                extra["x_distillguard_prefix_len"] = int(canon.rsplit("/", 1)[1])
            if kind == "template":
                extra["x_distillguard_scheme"] = template_scheme()
            ind = stix2.Indicator(
                id=f"indicator--{uuid.uuid5(_NS, iset.id + '|' + digest)}",
                name=f"{kind} (keyed hash)",
                indicator_types=["malicious-activity", "attribution"],
                pattern=indicator_pattern(kind, digest), pattern_type="stix",
                valid_from=now, valid_until=valid_until,
                confidence=_confidence(kind, r["support"], r["precision"]),
                allow_custom=True, **common, **extra,
            )
            objects.append(ind)
            objects.append(stix2.Relationship(
                id=f"relationship--{uuid.uuid5(_NS, ind.id + '|indicates')}",
                relationship_type="indicates", source_ref=ind.id, target_ref=iset.id, **common))
            kinds[kind] = kinds.get(kind, 0) + 1
            n_ind += 1
    bundle = stix2.Bundle(objects=objects, allow_custom=True)
    summary = {
        "bundle_id": bundle.id, "campaigns": len(camps), "indicators": n_ind, "kinds": kinds,
        "attack_patterns": sorted(patterns), "tlp": opts.tlp.lower(), "key_id": kid, "objects": len(objects),
        "campaign_ids": [c["campaign_id"] for c in camps],
    }
    return bundle, summary


def serialize(bundle) -> bytes:
    # stix2's pretty printer orders properties in quadratic time: indent with json instead
    return json.dumps(json.loads(bundle.serialize()), indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


def log_disclosure(store, summary: dict, sha256: str, recipient: str | None, destination: str) -> str:
    ensure_tables(store.con)
    export_id = uuid.uuid4().hex[:12]
    store.con.execute(
        "INSERT INTO intel_disclosures VALUES (?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [export_id, recipient, summary["tlp"], summary["campaign_ids"], summary["campaigns"], summary["indicators"],
         json.dumps(summary["kinds"], sort_keys=True), summary["bundle_id"], sha256, destination, summary["key_id"]],
    )
    return export_id


def export_bundle(store, key: bytes, out: str | Path, opts: ExportOptions | None = None) -> dict:
    """Build the bundle, write it to ``out`` and record the disclosure. Returns the summary."""
    opts = opts or ExportOptions()
    bundle, summary = build_bundle(store, key, opts)
    data = serialize(bundle)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    summary["bundle_sha256"] = sha
    summary["export_id"] = log_disclosure(store, summary, sha, opts.recipient, str(out))
    summary["out"] = str(out)
    return summary
