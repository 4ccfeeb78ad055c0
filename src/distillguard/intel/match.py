"""Matching accounts against imported indicators (``KNOWN_INDICATOR``).

Imported indicators are keyed hashes; an account's own attribute values
(memberships: client IPs, payment fingerprints, user agents, client TLS/HTTP2
fingerprints, email domains, template band keys) are hashed under the same key and looked up. IP
indicators match by containment: an account's IP is hashed as each network
prefix length that some indicator uses (``/32`` for an exact IP, ``/24`` for
a subnet, any CIDR length from a government list), so a CIDR never has to be
expanded.

Batch: :func:`match_known_indicators` on the scan's membership table.
Online: :meth:`IntelIndex.match_account` for one account's request attributes.
Both the scan and the decision service also match the identifiers of
campaigns analysts confirmed (:func:`confirmed_matches`) and turn matches into
one reason per account (:func:`known_indicator_reasons`).
"""
from __future__ import annotations

import inspect
from functools import lru_cache
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from distillguard.intel.keys import canonical, keyed_hash

__all__ = [
    "CONFIRMED_KINDS",
    "MATCH_SCHEMA",
    "confirmed_matches",
    "known_indicator_reasons",
    "template_scheme",
    "IntelIndex",
    "account_memberships",
    "known_indicator_evidence",
    "known_indicator_scores",
    "match_known_indicators",
]

MATCH_SCHEMA = pa.schema(
    [("account_id", pa.string()), ("source", pa.string()), ("indicator_id", pa.string()),
     ("kind", pa.string()), ("confidence", pa.int64())]
)


_PROBE = (
    "Solve the following problem step by step and show all of your reasoning before the final answer: problem 17.",
    "\u8bf7\u4e00\u6b65\u4e00\u6b65\u5730\u89e3\u51b3\u4e0b\u9762\u7684\u95ee\u9898\u5e76\u5199\u51fa\u5b8c\u6574\u7684\u63a8\u7406\u8fc7\u7a0b 42",
)


@lru_cache(maxsize=1)
def template_scheme() -> str:
    """How template band keys are computed here, with a fingerprint of the implementation.

    Both sides of an exchange must compute band keys identically; the
    fingerprint (band keys of fixed probe prompts) changes whenever the
    skeleton, shingling, MinHash or banding changes, so indicators made by an
    incompatible version are skipped instead of silently never matching.
    """
    import hashlib

    from distillguard.link import memberships as mb

    d = {k: p.default for k, p in inspect.signature(mb.templates).parameters.items()}
    t = mb.templates(pa.table({"account_id": ["probe"] * len(_PROBE), "prompt": list(_PROBE)}))
    fp = hashlib.sha256("\n".join(sorted(t.column("value").to_pylist())).encode()).hexdigest()[:12]
    return f"minhash{d['num_perm']}-bands{d['bands']}-{fp}"


WEAK_KINDS = ("user_agent", "client_fingerprint")
"""Kinds that only count next to another match from the same source: client software
strings and TLS/HTTP2 fingerprints (one per client library build) are shared by unrelated
customers far more often than an exporter can see."""

_DIRECT = ("payment_fingerprint", *WEAK_KINDS, "email_domain", "template", "asn", "entity")


@dataclass
class _Hit:
    source: str
    indicator_id: str
    kind: str
    confidence: int


@dataclass
class IntelIndex:
    """Imported indicators in memory, keyed by (namespace kind, keyed hash)."""

    key: bytes
    by_hash: dict[tuple[str, str], list[_Hit]] = field(default_factory=dict)
    prefixes: set[int] = field(default_factory=set)
    asn_map: dict[tuple[int, int], dict[int, str]] = field(default_factory=dict)  # (version, prefix) -> {network: ASN}
    min_template_hits: int = 8
    """An account matches template indicators of a source only when it hits at least this many
    distinct ones. A near-duplicate prompt shares one to a few of its 12 bands, so 8 means most
    of the account's 8 sampled prompts are the operator's template; a student whose homework
    reuses the same public problems as a ring hits a few (measured: up to 7)."""

    @classmethod
    def from_store(cls, store, key: bytes, at: datetime | None = None, min_confidence: int = 0, min_template_hits: int = 8) -> "IntelIndex":
        """Load the indicators valid at ``at`` (default: now) made under ``key``."""
        from distillguard.intel.keys import key_id

        con = store.con if hasattr(store, "con") else store
        idx = cls(key, min_template_hits=min_template_hits)
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "intel_indicators" not in names:  # nothing imported; read-only stores stay untouched
            return idx
        at = at or datetime.now(timezone.utc)
        rows = con.execute(
            "SELECT source, indicator_id, kind, keyed_hash, prefix_len, confidence, scheme FROM intel_indicators "
            "WHERE (valid_from IS NULL OR valid_from <= ?) AND (valid_until IS NULL OR valid_until > ?) "
            "AND (key_id IS NULL OR key_id = ?) AND coalesce(confidence, 0) >= ?",
            [at, at, key_id(key), min_confidence],
        ).fetchall()
        for source, ind_id, kind, h, plen, conf, scheme in rows:
            idx.add(source, ind_id, kind, h, plen, conf, scheme)
        asn_rows = con.execute("SELECT cidr, prefix_len, asn FROM intel_asn_map").fetchall() if "intel_asn_map" in names else []
        for cidr, plen, asn in asn_rows:
            net = ipaddress.ip_network(cidr, strict=False)
            idx.asn_map.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = asn
        return idx

    def add(self, source, indicator_id, kind, keyed_hash_, prefix_len=None, confidence=50, scheme=None) -> None:
        if kind == "template" and scheme and scheme != template_scheme():
            return
        ns = "net" if kind in ("client_ip", "subnet", "cidr") else kind
        if ns == "net" and prefix_len is not None:
            self.prefixes.add(int(prefix_len))
        self.by_hash.setdefault((ns, keyed_hash_), []).append(_Hit(source, indicator_id, kind, int(confidence or 0)))

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_hash.values())

    # -- value lookups -------------------------------------------------------
    def _ip_hits(self, ip: str) -> list[_Hit]:
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            return []
        out = []
        n, bits = int(addr), addr.max_prefixlen
        for plen in self.prefixes:
            if plen > bits:
                continue
            net = (n >> (bits - plen)) << (bits - plen) if plen else 0
            text = (f"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{plen}" if bits == 32
                    else f"{ipaddress.IPv6Address(net)}/{plen}")
            out.extend(self.by_hash.get(("net", keyed_hash(self.key, "cidr", text, canonical_value=True)), ()))
        return out

    def _asn_of(self, ip: str) -> str | None:
        if not self.asn_map:
            return None
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            return None
        for (version, plen) in sorted(self.asn_map, key=lambda k: -k[1]):
            if version != addr.version:
                continue
            mask = ((1 << plen) - 1) << (addr.max_prefixlen - plen) if plen else 0
            asn = self.asn_map[(version, plen)].get(int(addr) & mask)
            if asn:
                return asn
        return None

    def hits(self, kind: str, value: str) -> list[_Hit]:
        """Indicators that one of an account's values matches."""
        if value is None or value == "":
            return []
        if kind == "client_ip":
            out = self._ip_hits(value)
            asn = self._asn_of(value)
            if asn:
                out = out + self.hits("asn", asn)
            return out
        if kind == "email_domain":
            out = self._direct("email_domain", value)
            stem = value.lower().rsplit(".", 1)[0] if "." in value else value
            return out + self._direct("entity", stem)
        if kind in ("org_name", "entity"):
            return self._direct("entity", value)
        if kind in _DIRECT:
            return self._direct(kind, value)
        return []

    def _direct(self, kind: str, value: str) -> list[_Hit]:
        try:
            h = keyed_hash(self.key, kind, canonical(kind, value), canonical_value=True)
        except ValueError:
            return []
        return list(self.by_hash.get((kind, h), ()))

    # -- tables ----------------------------------------------------------------
    def match(self, memberships: pa.Table) -> pa.Table:
        """``(account_id, source, indicator_id, kind, confidence)``, one row per account and indicator.

        Each distinct (kind, value) is hashed once; only matched values are joined back to accounts.
        """
        if not self.by_hash or memberships.num_rows == 0:
            return MATCH_SCHEMA.empty_table()
        import pyarrow.compute as pc

        have = {ns for ns, _ in self.by_hash}
        wanted = set()
        if "net" in have or "asn" in have:
            wanted.add("client_ip")
        wanted |= {k for k in _DIRECT if k in have}
        if "entity" in have:
            wanted |= {"email_domain", "org_name", "entity"}
        mem = memberships.select(["account_id", "kind", "value"])
        mem = mem.filter(pc.is_in(mem["kind"], pa.array(sorted(wanted), pa.string())))
        distinct = mem.group_by(["kind", "value"]).aggregate([])
        mk, mv, ms, mi, mh, mc = [], [], [], [], [], []
        for kind, value in zip(distinct["kind"].to_pylist(), distinct["value"].to_pylist()):
            for h in self.hits(kind, value):
                mk.append(kind); mv.append(value); ms.append(h.source); mi.append(h.indicator_id)
                mh.append(h.kind); mc.append(h.confidence)
        if not mk:
            return MATCH_SCHEMA.empty_table()
        matched = pa.table({"kind": mk, "value": mv, "source": ms, "indicator_id": mi, "ind_kind": mh,
                            "confidence": pa.array(mc, pa.int64())})
        j = mem.join(matched, ["kind", "value"], join_type="inner")
        j = j.group_by(["account_id", "source", "indicator_id", "ind_kind"]).aggregate([("confidence", "max")])
        j = j.sort_by([("account_id", "ascending"), ("source", "ascending"), ("indicator_id", "ascending")])
        rows = {"account_id": j["account_id"].to_pylist(), "source": j["source"].to_pylist(),
                "indicator_id": j["indicator_id"].to_pylist(), "kind": j["ind_kind"].to_pylist(),
                "confidence": j["confidence_max"].to_pylist()}
        out = pa.table(rows, schema=MATCH_SCHEMA)
        if self.min_template_hits > 1 and out.num_rows:
            n: dict[tuple[str, str], int] = {}
            for a, s, k in zip(rows["account_id"], rows["source"], rows["kind"]):
                if k == "template":
                    n[(a, s)] = n.get((a, s), 0) + 1
            keep = [k != "template" or n[(a, s)] >= self.min_template_hits
                    for a, s, k in zip(rows["account_id"], rows["source"], rows["kind"])]
            out = out.filter(pa.array(keep))
        if out.num_rows and WEAK_KINDS:
            acc, src, knd = (out.column(c).to_pylist() for c in ("account_id", "source", "kind"))
            strong = {(a, s) for a, s, k in zip(acc, src, knd) if k not in WEAK_KINDS}
            out = out.filter(pa.array([k not in WEAK_KINDS or (a, s) in strong for a, s, k in zip(acc, src, knd)]))
        return out

    def match_account(
        self,
        account_id: str = "",
        *,
        client_ips=(),
        user_agents=(),
        client_fingerprints=(),
        payment_fingerprint: str | None = None,
        email_domain: str | None = None,
        org_name: str | None = None,
        prompts=(),
    ) -> list[dict]:
        """Matches of one account's attributes (for the decision service).

        ``prompts`` are raw prompt texts (a few recent ones); they are reduced to
        template band keys here exactly as the scan does, and never stored.
        """
        rows = [("client_ip", ip) for ip in client_ips if ip]
        rows += [(k, v) for k, vs in (("user_agent", user_agents), ("client_fingerprint", client_fingerprints))
                 for v in vs if v]
        if payment_fingerprint:
            rows.append(("payment_fingerprint", payment_fingerprint.lower()))
        if email_domain:
            rows.append(("email_domain", email_domain.lower()))
        if org_name:
            rows.append(("org_name", org_name))
        prompts = [p for p in prompts if p]
        if prompts and any(k[0] == "template" for k in self.by_hash):
            from distillguard.link import memberships as mb

            t = mb.templates(pa.table({"account_id": [account_id] * len(prompts), "prompt": prompts}))
            rows += [("template", v) for v in t.column("value").to_pylist()]
        mem = pa.table(
            {"account_id": [account_id] * len(rows), "kind": [k for k, _ in rows], "value": [v for _, v in rows]},
            schema=pa.schema([("account_id", pa.string()), ("kind", pa.string()), ("value", pa.string())]),
        )
        return self.match(mem).to_pylist()


def match_known_indicators(
    store, memberships: pa.Table, key: bytes, at: datetime | None = None, min_confidence: int = 0, min_template_hits: int = 8
) -> pa.Table:
    """Accounts whose memberships match an imported indicator.

    ``memberships`` is the scan's ``(account_id, kind, value)`` table (see
    :mod:`distillguard.link.memberships`). Returns ``MATCH_SCHEMA`` rows
    ``(account_id, source, indicator_id, kind, confidence)``; empty when the
    store holds no indicators valid at ``at`` under this key.
    """
    return IntelIndex.from_store(store, key, at, min_confidence, min_template_hits).match(memberships)


def known_indicator_scores(matches: pa.Table, account_ids, min_confidence: int = 0) -> np.ndarray:
    """Per account (in ``account_ids`` order): the highest matching confidence / 100, else 0.

    The evidence column ``known_indicator`` of the scan.
    """
    best: dict[str, int] = {}
    for a, c in zip(matches.column("account_id").to_pylist(), matches.column("confidence").to_pylist()):
        if c >= min_confidence and c > best.get(a, -1):
            best[a] = c
    return np.array([best.get(a, 0) / 100.0 for a in account_ids], dtype=float)


def known_indicator_evidence(matches: pa.Table) -> dict[str, list[dict]]:
    """Per matched account: ``[{source, indicator_id, kind, confidence}, ...]``, strongest first (reason details)."""
    out: dict[str, list[dict]] = {}
    for r in matches.to_pylist():
        out.setdefault(r.pop("account_id"), []).append(r)
    for v in out.values():
        v.sort(key=lambda r: (-r["confidence"], r["source"], r["indicator_id"]))
    return out


CONFIRMED_KINDS = ("payment_fingerprint", "client_ip", "email_domain")
"""Identifiers of an analyst-confirmed campaign that block whoever uses them next."""


def confirmed_matches(memberships: pa.Table, confirmed: list[dict]) -> pa.Table:
    """``MATCH_SCHEMA`` rows of accounts holding an identifier of a campaign analysts confirmed.

    ``confirmed``: ``{kind, value, campaign_id}`` (:func:`distillguard.audit.confirmed_indicators`);
    source ``analyst:<campaign id>``, indicator id ``kind:value``, confidence 100.
    """
    import pyarrow.compute as pc

    local = [c for c in confirmed if c["kind"] in CONFIRMED_KINDS]
    if not local or memberships.num_rows == 0:
        return MATCH_SCHEMA.empty_table()
    ind = pa.Table.from_pylist(
        [{"kind": c["kind"], "value": str(c["value"]), "source": f"analyst:{c['campaign_id']}"} for c in local]
    )
    hit = memberships.select(["account_id", "kind", "value"]).join(ind, ["kind", "value"], join_type="inner")
    return pa.table({
        "account_id": hit.column("account_id"),
        "source": hit.column("source"),
        "indicator_id": pc.binary_join_element_wise(hit.column("kind"), hit.column("value"), ":"),
        "kind": hit.column("kind"),
        "confidence": pa.array([100] * hit.num_rows, pa.int64()),
    }, schema=MATCH_SCHEMA)


def known_indicator_reasons(matches: pa.Table | None) -> dict:
    """``account_id -> (Reason, matches)``: weight = best confidence / 100, evidence = the matches.

    CONFIRMED_CAMPAIGN when an identifier of a campaign an analyst confirmed
    matched, else KNOWN_INDICATOR (a peer's bundle or a list). Neither is part
    of the fitted fusion (no reference traffic carries them): the policy acts
    on the reason itself.
    """
    if matches is None or matches.num_rows == 0:
        return {}
    from distillguard.score.fusion import Reason

    out = {}
    for acc, ms in known_indicator_evidence(matches).items():
        code = "CONFIRMED_CAMPAIGN" if any(m["source"].startswith("analyst:") for m in ms) else "KNOWN_INDICATOR"
        out[acc] = (Reason(code, round(max(m["confidence"] or 0 for m in ms) / 100.0, 3), ("known_indicator",)), ms)
    return out


def account_memberships(events, meta: pa.Table) -> pa.Table:
    """The memberships intel matching needs, computed as the scan computes them.

    ``events``: an Ibis table of canonical events; ``meta``: account metadata.
    The scan's own memberships (``link.memberships.collect``); matching uses client_ip,
    user_agent, client_fingerprint, payment_fingerprint, email_domain and template rows and ignores the rest.
    """
    from distillguard.features.samples import prompt_sample
    from distillguard.link import memberships as mb

    return mb.collect(events, meta, prompt_sample(events).to_pyarrow())
