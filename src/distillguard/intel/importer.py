"""Import indicators: STIX 2.1 bundles (ours and plain ones) and government-style CSV lists.

Everything is stored as keyed hashes in ``intel_indicators``; raw values of a
CSV list are hashed at import time and never written to the store.
"""
from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.intel.keys import canonical, key_id, keyed_hash
from distillguard.intel.tables import INDICATOR_COLUMNS, ensure_tables

__all__ = ["import_bundle", "import_objects", "import_csv", "import_asn_map", "CSV_TYPES"]

_OURS = re.compile(
    r"^\[x-distillguard-keyed-hash:kind\s*=\s*'([a-z_]+)'\s+AND\s+x-distillguard-keyed-hash:value\s*=\s*'([0-9a-f]{64})'\]$"
)
_PLAIN = re.compile(r"(ipv4-addr|ipv6-addr):value\s*=\s*'([^']+)'|autonomous-system:number\s*=\s*(\d+)")
_NS = uuid.UUID("9c0b1d6e-7a3f-4e1a-b0c2-5d8e4f6a7b90")

CSV_TYPES = {
    "ip": "client_ip", "ipv4": "client_ip", "ipv6": "client_ip", "client_ip": "client_ip",
    "cidr": "cidr", "subnet": "cidr", "network": "cidr",
    "asn": "asn", "as": "asn",
    "payment_hash": "payment_fingerprint", "payment_fingerprint": "payment_fingerprint", "card_fingerprint": "payment_fingerprint",
    "entity": "entity", "entity_name": "entity", "organisation": "entity", "organization": "entity",
    "email_domain": "email_domain", "domain": "email_domain",
    "user_agent": "user_agent",
    "client_fingerprint": "client_fingerprint", "ja4": "client_fingerprint", "ja3": "client_fingerprint",
}

_SCHEMA = pa.schema(
    [("source", pa.string()), ("indicator_id", pa.string()), ("kind", pa.string()), ("keyed_hash", pa.string()),
     ("prefix_len", pa.int32()), ("confidence", pa.int32()), ("valid_from", pa.timestamp("us", tz="UTC")),
     ("valid_until", pa.timestamp("us", tz="UTC")), ("campaign_ref", pa.string()), ("scheme", pa.string()),
     ("key_id", pa.string()), ("imported_at", pa.timestamp("us", tz="UTC"))]
)


def _ts(v) -> datetime | None:
    if v in (None, ""):
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    s = str(v).strip().replace("Z", "+00:00")
    try:
        d = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {v!r}") from None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _store_rows(store, rows: list[dict]) -> int:
    con = store.con
    ensure_tables(con)
    if not rows:
        return 0
    t = pa.Table.from_pylist(rows, schema=_SCHEMA)
    con.register("_dg_new", t)
    try:
        con.execute(
            "DELETE FROM intel_indicators WHERE (source, indicator_id, keyed_hash) IN "
            "(SELECT (source, indicator_id, keyed_hash) FROM _dg_new)"
        )
        con.execute(f"INSERT INTO intel_indicators SELECT {', '.join(INDICATOR_COLUMNS)} FROM _dg_new")
    finally:
        con.unregister("_dg_new")
    return len(rows)


def _load_bundle(src) -> dict:
    if isinstance(src, dict):
        return src
    if isinstance(src, (bytes, str)) and not (isinstance(src, str) and Path(src).exists()) and str(src).lstrip()[:1] == "{":
        text = src.decode() if isinstance(src, bytes) else src
    else:
        try:
            text = Path(src).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read bundle {src}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"bundle is not JSON: {exc.msg} (line {exc.lineno})") from exc
    if not isinstance(data, dict) or data.get("type") != "bundle":
        raise UsageError("not a STIX bundle (no top-level \"type\": \"bundle\")")
    return data


def import_bundle(store, key: bytes, src, source: str | None = None, now: datetime | None = None) -> dict:
    """Import a STIX 2.1 bundle (path, JSON text or dict). Returns counts."""
    data = _load_bundle(src)
    import stix2

    try:
        stix2.parse(data, allow_custom=True)
    except Exception as exc:  # stix2 raises many exception types for invalid content
        raise UsageError(f"invalid STIX bundle: {str(exc).splitlines()[0]}") from exc
    return import_objects(store, key, data.get("objects", []), source, now)


def import_objects(store, key: bytes, objects: list[dict], source: str | None = None, now: datetime | None = None) -> dict:
    """Import STIX objects (dicts): our keyed-hash indicators and plain IP/CIDR/ASN indicators."""
    now = now or datetime.now(timezone.utc)
    kid = key_id(key)
    names = {o["id"]: o.get("name") for o in objects if o.get("type") == "identity"}
    indicates = {}
    for o in objects:
        if o.get("type") == "relationship" and o.get("relationship_type") == "indicates":
            indicates.setdefault(o["source_ref"], o["target_ref"])
    rows, other_key, skipped = [], set(), 0
    for o in objects:
        if o.get("type") != "indicator" or o.get("revoked"):
            continue
        src = source or names.get(o.get("created_by_ref")) or "stix"
        base = {
            "source": src, "indicator_id": o["id"], "confidence": int(o.get("confidence", 50)),
            "valid_from": _ts(o.get("valid_from")), "valid_until": _ts(o.get("valid_until")),
            "campaign_ref": indicates.get(o["id"]), "imported_at": now,
        }
        pat = (o.get("pattern") or "").strip()
        m = _OURS.match(pat)
        if m:
            okid = o.get("x_distillguard_key_id")
            if okid and okid != kid:
                other_key.add(okid)
                continue
            kind = m.group(1)
            rows.append(base | {
                "kind": kind, "keyed_hash": m.group(2), "prefix_len": o.get("x_distillguard_prefix_len"),
                "scheme": o.get("x_distillguard_scheme"), "key_id": okid or kid,
            })
            continue
        found = False
        if o.get("pattern_type", "stix") == "stix":
            for typ, val, asn in _PLAIN.findall(pat):
                try:
                    if asn:
                        kind, canon = "asn", canonical("asn", asn)
                    else:
                        canon = canonical("cidr", val)
                        kind = "client_ip" if canon.endswith(("/32", "/128")) else "cidr"
                except ValueError:
                    continue
                rows.append(base | {
                    "kind": kind, "keyed_hash": keyed_hash(key, kind, canon, canonical_value=True),
                    "prefix_len": int(canon.rsplit("/", 1)[1]) if kind != "asn" else None, "scheme": None, "key_id": kid,
                })
                found = True
        skipped += not found
    if other_key and not rows:
        raise UsageError(
            f"the bundle's indicators were made under key id {', '.join(sorted(other_key))}; yours is {kid}: nothing can match"
        )
    n = _store_rows(store, rows)
    return {"imported": n, "skipped": skipped, "other_key": sum(1 for _ in other_key), "key_id": kid}


def import_csv(store, key: bytes, path, source: str, confidence: int = 80, valid_days: int | None = None, now: datetime | None = None) -> dict:
    """Import a government-style CSV list: header ``type,value`` (+ optional ``confidence,valid_until,name``).

    Types: ip, cidr, asn, payment_hash, entity, email_domain, user_agent, client_fingerprint (and
    aliases, see ``CSV_TYPES``). Values are keyed here; the raw list is not stored.
    """
    now = now or datetime.now(timezone.utc)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read list {path}: {exc.strerror or exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "type" not in fields or "value" not in fields:
        raise UsageError(f"{path}: a list needs a header with at least the columns type,value")
    reader.fieldnames = fields
    kid = key_id(key)
    until_default = now + timedelta(days=valid_days) if valid_days else None
    rows, rejected = [], []
    for line, rec in enumerate(reader, start=2):
        typ = (rec.get("type") or "").strip().lower()
        val = (rec.get("value") or "").strip()
        if not typ and not val:
            continue
        kind = CSV_TYPES.get(typ)
        try:
            if kind is None:
                raise ValueError(f"unknown type {typ!r}")
            canon = canonical(kind, val)
            if not canon:
                raise ValueError("empty value")
            if kind in ("client_ip", "cidr"):
                plen = int(canon.rsplit("/", 1)[1])
                kind = "client_ip" if plen in (32, 128) else "cidr"
            else:
                plen = None
            conf = int(rec.get("confidence") or confidence)
            if not 0 <= conf <= 100:
                raise ValueError("confidence must be 0..100")
            until = _ts(rec.get("valid_until")) or until_default
        except ValueError as exc:
            rejected.append(f"line {line}: {exc}")
            continue
        digest = keyed_hash(key, kind, canon, canonical_value=True)
        rows.append({
            "source": source, "indicator_id": f"indicator--{uuid.uuid5(_NS, source + '|' + kind + '|' + digest)}",
            "kind": kind, "keyed_hash": digest, "prefix_len": plen, "confidence": conf,
            "valid_from": now, "valid_until": until, "campaign_ref": None, "scheme": None, "key_id": kid, "imported_at": now,
        })
    n = _store_rows(store, rows)
    return {"imported": n, "rejected": len(rejected), "errors": rejected[:20], "key_id": kid}


def import_asn_map(store, path) -> int:
    """Load a local ``cidr,asn`` CSV (IP prefix -> ASN) so ASN indicators match client IPs."""
    import ipaddress

    ensure_tables(store.con)
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read ASN map {path}: {exc.strerror or exc}") from exc
    for line, rec in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            net = ipaddress.ip_network((rec.get("cidr") or "").strip(), strict=False)
            asn = canonical("asn", rec.get("asn") or "")
        except ValueError as exc:
            raise UsageError(f"{path} line {line}: {exc}") from exc
        rows.append((net.with_prefixlen, net.prefixlen, asn))
    store.con.execute("DELETE FROM intel_asn_map")
    if rows:
        store.con.executemany("INSERT INTO intel_asn_map VALUES (?, ?, ?)", rows)
    return len(rows)
