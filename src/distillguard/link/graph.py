"""The evidence graph and its communities (Leiden, graspologic-native).

Accounts link through *hubs*: a shared card, a rare IP, a prompt-template
band, a lockstep band. The graph is bipartite (account - hub) so a value shared
by a thousand accounts costs a thousand edges, not half a million pairs.
Leiden communities of that graph are the candidate campaigns; the hubs inside
a community are its evidence.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import graspologic_native as gn
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.link.rules import LinkRule

__all__ = ["Communities", "find_communities"]


@dataclass
class Communities:
    """Candidate campaigns found in the evidence graph.

    Attributes
    ----------
    membership
        ``account_id -> community id`` for accounts in a community of at
        least ``min_size`` accounts.
    coverage
        ``community id -> {kind: share of members holding a hub of that kind
        shared inside the community}``.
    hubs
        ``community id -> [(kind, value, members inside, weight)]``, strongest first.
    strength
        ``account_id -> summed (per-kind normalised) weight of the hubs it
        shares inside its community``.
    kinds
        ``account_id -> the kinds of hub it shares with other members``.
    """

    membership: dict[str, int] = field(default_factory=dict)
    coverage: dict[int, dict[str, float]] = field(default_factory=dict)
    hubs: dict[int, list[tuple[str, str, int, float]]] = field(default_factory=dict)
    strength: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, set] = field(default_factory=dict)

    def members(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = defaultdict(list)
        for acc, c in self.membership.items():
            out[c].append(acc)
        return dict(out)


def _weighted_hubs(memberships: pa.Table, rules: dict[str, LinkRule], n_accounts: int) -> pa.Table:
    """Memberships of hubs that link (weight > 0), with the hub's weight.

    Values held by a single account are dropped in Arrow first: most prompt
    bands and IPs are unique, and they need not reach Python at all.
    """
    counts = memberships.group_by(["kind", "value"]).aggregate([("account_id", "count_distinct")])
    counts = counts.filter(pc.greater_equal(counts.column("account_id_count_distinct"), 2))
    kinds, values, weights = [], [], []
    for kind, value, k in zip(
        counts.column("kind").to_pylist(),
        counts.column("value").to_pylist(),
        counts.column("account_id_count_distinct").to_pylist(),
    ):
        rule = rules.get(kind)
        w = rule.hub_weight(k, n_accounts) if rule else 0.0
        if w > 0:
            kinds.append(kind)
            values.append(value)
            weights.append(w)
    hubs = pa.table({"kind": pa.array(kinds, pa.string()), "value": pa.array(values, pa.string()), "weight": pa.array(weights, pa.float64())})
    linked = memberships.join(hubs, ["kind", "value"], join_type="inner")
    # A canonical order: Leiden's result depends on the order edges arrive in,
    # and ingest order is not fixed (parallel inserts).
    return linked.sort_by([("kind", "ascending"), ("value", "ascending"), ("account_id", "ascending")])


def find_communities(
    memberships: pa.Table,
    rules: tuple[LinkRule, ...],
    n_accounts: int,
    *,
    min_size: int = 3,
    resolution: float = 1.0,
    seed: int = 7,
) -> Communities:
    """Leiden communities of the account-hub graph.

    Parameters
    ----------
    memberships
        ``(account_id, kind, value)`` rows, one per distinct value an account holds.
    rules
        Link rules; kinds without a rule are ignored.
    n_accounts
        All accounts in the scan (for rarity weights).
    """
    linked = _weighted_hubs(memberships, {r.kind: r for r in rules}, n_accounts)
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    per_kind: dict[tuple[str, str], int] = defaultdict(int)
    weights: dict[tuple[str, str], float] = {}
    for acc, kind, value, w in zip(
        linked.column("account_id").to_pylist(),
        linked.column("kind").to_pylist(),
        linked.column("value").to_pylist(),
        linked.column("weight").to_pylist(),
    ):
        holders[(kind, value)].append(acc)
        per_kind[(acc, kind)] += 1
        weights[(kind, value)] = w
    # Each kind of evidence gets a bounded vote per account: an account seen on
    # 300 proxy IPs does not outweigh the one card it shares.
    edges = [
        (f"a\x1f{acc}", f"h\x1f{kind}\x1f{value}", w / per_kind[(acc, kind)])
        for (kind, value), accs in holders.items()
        for w in (weights[(kind, value)],)
        for acc in accs
    ]
    if not edges:
        return Communities()
    _, partition = gn.leiden(edges, resolution=resolution, seed=seed, trials=1, iterations=2)
    groups: dict[int, list[str]] = defaultdict(list)
    for node, c in partition.items():
        if node.startswith("a\x1f"):
            groups[c].append(node[2:])
    result = Communities()
    kept = {c: accs for c, accs in groups.items() if len(accs) >= min_size}
    for new_id, (c, accs) in enumerate(sorted(kept.items(), key=lambda kv: (-len(kv[1]), min(kv[1])))):
        for a in sorted(accs):
            result.membership[a] = new_id
    _summarise(result, holders, weights, per_kind)
    return result


def _summarise(result: Communities, holders, weights, per_kind) -> None:
    sizes = defaultdict(int)
    for c in result.membership.values():
        sizes[c] += 1
    touched: dict[int, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    hubs: dict[int, list] = defaultdict(list)
    kinds: dict[str, set] = defaultdict(set)
    for (kind, value), accs in holders.items():
        inside: dict[int, list[str]] = defaultdict(list)
        for a in accs:
            c = result.membership.get(a)
            if c is not None:
                inside[c].append(a)
        for c, members in inside.items():
            if len(members) < 2:
                continue
            w = weights[(kind, value)]
            touched[c][kind].update(members)
            hubs[c].append((kind, value, len(members), w))
            for a in members:
                result.strength[a] = result.strength.get(a, 0.0) + w / per_kind[(a, kind)]
                kinds[a].add(kind)
    result.kinds = dict(kinds)
    for c, size in sizes.items():
        result.coverage[c] = {k: len(m) / size for k, m in touched[c].items()}
        result.hubs[c] = sorted(hubs[c], key=lambda h: -h[2] * h[3])[:50]
