"""Per-account attribute values ("memberships") that link rules act on.

Each function returns a PyArrow table ``(account_id, kind, value)`` with one
row per distinct value an account holds. Values are namespaced by kind when
they become graph hubs, so an IP and a card never collide.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasketch import MinHash
from scipy.stats import poisson

from distillguard.link.kinds import link_kinds
from distillguard.text import band_key_array, minhash_signatures

__all__ = [
    "TEMPLATE_PROMPTS",
    "collect",
    "infrastructure",
    "account_metadata",
    "signup_bursts",
    "templates",
    "lockstep",
]

TEMPLATE_PROMPTS = 8
"""Sampled prompts per account that template linkage MinHashes (of the 16 sampled):
rings reuse templates across many accounts, so a few prompts each find them
(4 kept linkage quality but let peers' template indicators match more benign
accounts in the intel round trip)."""
_BLOCK = 20_000
MEMBERSHIP_SCHEMA = pa.schema([("account_id", pa.string()), ("kind", pa.string()), ("value", pa.string())])


def _table(account_ids, kind: str, values) -> pa.Table:
    ids = pa.array(account_ids, pa.string())
    return pa.table(
        {"account_id": ids, "kind": pa.array([kind] * len(ids), pa.string()), "value": pa.array(values, pa.string())},
        schema=MEMBERSHIP_SCHEMA,
    )


def infrastructure(events: ir.Table) -> ir.Table:
    """Distinct values per account of the link kinds read from requests (:mod:`distillguard.link.kinds`):
    client IPs, /24 (IPv4) or /48 (IPv6) subnets (a keyed-hash IP carries its subnet's hash:
    :mod:`distillguard.privacy.keyed`), user agents and client fingerprints (but not those of an
    account that draws a new one per connection: ``max_distinct_share`` of the kind's rule)."""
    parts = [_stable(events.select("account_id", kind=ibis.literal(k.name), value=k.request_expr(events)), k.rule)
             for k in link_kinds().values() if k.request_expr is not None]
    u = ibis.union(*parts, distinct=True)
    return u.filter(u.value.notnull() & (u.value != ""))


def _stable(values: ir.Table, rule) -> ir.Table:
    """``values`` (one row per request) without the accounts whose values change per connection (the rule's
    ``max_distinct_share`` of at least ``stable_min_requests`` requests with a value)."""
    if rule.max_distinct_share is None:
        return values
    v = values.filter(values.value.notnull() & (values.value != ""))
    per = v.group_by("account_id").aggregate(n=v.count(), d=v.value.nunique())
    randomising = per.filter((per.n >= rule.stable_min_requests) & (per.d > rule.max_distinct_share * per.n))
    return values.anti_join(randomising.select("account_id"), "account_id")


def _with_retained(infra: ir.Table, events: ir.Table) -> ir.Table:
    """The infrastructure links plus those ``store retain`` kept of the same accounts' deleted events."""
    try:
        backend = events.get_backend()
        if not backend.con.execute("SELECT count(*) FROM information_schema.tables "
                                   "WHERE table_name = 'account_links'").fetchall()[0][0]:
            return infra
    except Exception:  # an in-memory table: no store behind it
        return infra
    kept = backend.table("account_links")
    kept = kept.filter(kept.account_id.isin(events.account_id)).select("account_id", "kind", "value")
    return ibis.union(infra, kept, distinct=True)


def account_metadata(accounts: pa.Table) -> pa.Table:
    """Values of the link kinds read from account metadata (payment fingerprints, e-mail domains), lower-cased."""
    out = []
    for kind in (k.name for k in link_kinds().values() if k.from_account):
        if kind in accounts.column_names:
            col = accounts.column(kind).to_pylist()
            ids = accounts.column("account_id").to_pylist()
            keep = [(a, v.lower()) for a, v in zip(ids, col) if v]
            out.append(_table([a for a, _ in keep], kind, [v for _, v in keep]))
    return pa.concat_tables(out) if out else MEMBERSHIP_SCHEMA.empty_table()


def signup_bursts(accounts: pa.Table, minutes: int = 10, p_value: float = 1e-4) -> pa.Table:
    """Accounts created in a window with far more signups than the base rate.

    The base rate is the mean number of signups per window over the span of
    the data; a window is a burst when a Poisson count that large has
    probability below ``p_value``.
    """
    if "created_at" not in accounts.column_names:
        return MEMBERSHIP_SCHEMA.empty_table()
    ids = np.array(accounts.column("account_id").to_pylist(), dtype=object)
    created = accounts.column("created_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    valid = ~accounts.column("created_at").is_null().to_numpy(zero_copy_only=False)
    if valid.sum() < 2:
        return MEMBERSHIP_SCHEMA.empty_table()
    ids, created = ids[valid], created[valid]
    bucket = created // (minutes * 60 * 1_000_000)
    values, counts = np.unique(bucket, return_counts=True)
    span = max(1, int(bucket.max() - bucket.min()) + 1)
    rate = len(bucket) / span
    bursts = set(values[poisson.sf(counts - 1, rate) < p_value].tolist())
    mask = np.array([b in bursts for b in bucket], dtype=bool)
    return _table(ids[mask].tolist(), "signup_burst", [str(b) for b in bucket[mask]])


def _signatures(token_sets: list[list[bytes]], num_perm: int) -> np.ndarray:
    hashes = MinHash.bulk(token_sets, num_perm=num_perm, seed=1)
    return np.vstack([h.hashvalues for h in hashes]) if hashes else np.zeros((0, num_perm), np.uint64)


def _hubs(account_ids: list[str], signatures: np.ndarray, kind: str, bands: int) -> pa.Table:
    if not len(signatures):
        return MEMBERSHIP_SCHEMA.empty_table()
    ids = pa.array(account_ids, pa.string()).take(pa.array(np.repeat(np.arange(len(account_ids)), bands)))
    values = band_key_array(signatures, bands)
    return pa.table({"account_id": ids, "kind": pa.repeat(kind, len(ids)).cast(pa.string()), "value": values},
                    schema=MEMBERSHIP_SCHEMA)


def templates(samples: pa.Table, per_account: int | None = None, num_perm: int = 48, bands: int = 12, min_chars: int = 20) -> pa.Table:
    """Template hubs: LSH band keys of each sampled prompt's template skeleton.

    At most ``per_account`` prompts of each account are used. Two prompts of one template (Jaccard ~0.6 on skeleton shingles) share a
    band with probability ~0.8, and accounts that share a template across
    several of their prompts almost surely share one. Prompts sent verbatim by many accounts are
    popular, not templated: the rarity weighting of link rules drops them.
    """
    # Which prompts an account contributes must not depend on the input's row
    # order (engines return group-by results in any order): take them by content.
    samples = samples.sort_by([("account_id", "ascending"), ("prompt", "ascending")])
    long_enough = pc.fill_null(pc.greater_equal(pc.utf8_length(samples.column("prompt")), min_chars), False)
    samples = samples.filter(long_enough)
    if per_account is not None and samples.num_rows:
        acc = samples.column("account_id").combine_chunks().dictionary_encode().indices.to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.r_[True, acc[1:] != acc[:-1]])
        rank = np.arange(len(acc)) - np.repeat(starts, np.diff(np.r_[starts, len(acc)]))
        samples = samples.filter(pa.array(rank < per_account))
    # Blocks of prompts, so only a block's texts are Python strings at a time.
    prompts = samples.column("prompt")
    sigs = np.vstack([minhash_signatures(prompts.slice(lo, _BLOCK).to_pylist(), num_perm=num_perm)
                      for lo in range(0, len(prompts), _BLOCK)] or [np.zeros((0, num_perm), np.uint64)])
    t = _hubs(samples.column("account_id").to_pylist(), sigs, "template", bands)
    return t.group_by(["account_id", "kind", "value"]).aggregate([])


def lockstep(buckets: pa.Table, min_buckets: int = 8, num_perm: int = 64, bands: int = 16) -> pa.Table:
    """Lockstep hubs (SynchroTrap-style): LSH keys of each account's set of active time buckets."""
    grouped = buckets.group_by("account_id").aggregate([("bucket", "list")])
    ids, sets = [], []
    for acc, bs in zip(grouped.column("account_id").to_pylist(), grouped.column("bucket_list").to_pylist()):
        if len(bs) >= min_buckets:
            ids.append(acc)
            sets.append([int(b).to_bytes(8, "little", signed=True) for b in bs])
    return _hubs(ids, _signatures(sets, num_perm), "lockstep", bands)


def collect(events: ir.Table, meta: pa.Table, samples: pa.Table, template_prompts: int = TEMPLATE_PROMPTS) -> pa.Table:
    """Every membership the linkage uses: infrastructure, metadata, signup bursts,
    templates (``template_prompts`` sampled prompts per account) and lockstep."""
    from distillguard.features.samples import activity_buckets

    parts = [
        _with_retained(infrastructure(events), events).to_pyarrow(),
        account_metadata(meta),
        signup_bursts(meta),
        templates(samples, per_account=template_prompts),
        lockstep(activity_buckets(events).to_pyarrow()),
    ]
    return pa.concat_tables([p.select(MEMBERSHIP_SCHEMA.names).cast(MEMBERSHIP_SCHEMA) for p in parts])
