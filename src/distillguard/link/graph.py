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
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.link.rules import LinkRule

__all__ = ["Communities", "find_communities", "weighted_hubs"]


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


def weighted_hubs(memberships: pa.Table, rules: dict[str, LinkRule], n_accounts: int) -> pa.Table:
    """Memberships of hubs that link (weight > 0), with the hub's weight.

    Values held by a single account are dropped in Arrow first: most prompt
    bands and IPs are unique, and they need not reach Python at all.
    """
    counts = memberships.group_by(["kind", "value"]).aggregate([("account_id", "count_distinct")])
    counts = counts.filter(pc.greater_equal(counts.column("account_id_count_distinct"), 2))
    k = counts.column("account_id_count_distinct").to_numpy().astype(float)
    kinds = counts.column("kind")
    weight = np.zeros(len(k))
    for rule in rules.values():
        mine = pc.equal(kinds, rule.kind).to_numpy(zero_copy_only=False)
        weight[mine] = rule.hub_weights(k[mine], n_accounts)
    keep = weight > 0
    hubs = counts.select(["kind", "value"]).filter(pa.array(keep)).append_column("weight", pa.array(weight[keep]))
    linked = memberships.join(hubs, ["kind", "value"], join_type="inner")
    # A canonical order: Leiden's result depends on the order edges arrive in,
    # and ingest order is not fixed (parallel inserts).
    return linked.sort_by([("kind", "ascending"), ("value", "ascending"), ("account_id", "ascending")])


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list]:
    """(integer code per row, distinct values in order of first appearance)."""
    enc = column.combine_chunks().dictionary_encode()
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def find_communities(
    memberships: pa.Table,
    rules: tuple[LinkRule, ...],
    n_accounts: int,
    *,
    min_size: int = 3,
    resolution: float = 1.0,
    seed: int = 7,
    linked: pa.Table | None = None,
) -> Communities:
    """Leiden communities of the account-hub graph.

    Edges are integer-coded arrays until Leiden needs its list of
    ``(node, node, weight)`` tuples, whose node names are one string per node,
    shared by all its edges: memory grows with edges by a tuple each, not by
    strings, so tens of millions of edges fit one machine.

    Parameters
    ----------
    memberships
        ``(account_id, kind, value)`` rows, one per distinct value an account holds.
    rules
        Link rules; kinds without a rule are ignored.
    n_accounts
        All accounts in the scan (for rarity weights).
    linked
        :func:`weighted_hubs` of ``memberships`` under ``rules``, when the caller has it already.
    """
    if linked is None:
        linked = weighted_hubs(memberships, {r.kind: r for r in rules}, n_accounts)
    if linked.num_rows == 0:
        return Communities()
    acc, accounts = _codes(linked.column("account_id"))
    hub, hub_names = _codes(pc.binary_join_element_wise("h", linked.column("kind"), linked.column("value"), "\x1f"))
    kind, kind_names = _codes(linked.column("kind"))
    weight = linked.column("weight").to_numpy()
    del linked
    # Each kind of evidence gets a bounded vote per account: an account seen on
    # 300 proxy IPs does not outweigh the one card it shares.
    _, per_kind_of, per_kind = np.unique(acc * len(kind_names) + kind, return_inverse=True, return_counts=True)
    share = weight / per_kind[per_kind_of]
    nodes = ["a\x1f" + a for a in accounts]
    edges = list(zip(map(nodes.__getitem__, acc.tolist()), map(hub_names.__getitem__, hub.tolist()), share.tolist()))
    _, partition = gn.leiden(edges, resolution=resolution, seed=seed, trials=1, iterations=2)
    del edges
    community = np.array([partition[n] for n in nodes], dtype=np.int64)
    del partition
    return _summarise(community, acc, hub, kind, weight, share, accounts, hub_names, kind_names, min_size)


def _summarise(community, acc, hub, kind, weight, share, accounts, hub_names, kind_names, min_size) -> Communities:
    """Renumber communities of at least ``min_size`` accounts (largest first) and describe them."""
    result = Communities()
    sizes = np.bincount(community)
    kept = np.flatnonzero(sizes >= min_size)
    first = {}
    for i in np.argsort(np.array(accounts, dtype=object), kind="stable"):
        first.setdefault(int(community[i]), accounts[i])  # smallest account id of each community
    order = sorted(kept.tolist(), key=lambda c: (-int(sizes[c]), first[c]))
    new_id = np.full(len(sizes), -1, dtype=np.int64)
    new_id[order] = np.arange(len(order))
    comm_of = new_id[community]
    for i in sorted(np.flatnonzero(comm_of >= 0).tolist(), key=lambda i: (comm_of[i], accounts[i])):
        result.membership[accounts[i]] = int(comm_of[i])
    # A hub is evidence inside a community when at least two of its members hold it.
    ec = comm_of[acc]
    on = np.flatnonzero(ec >= 0)
    pair = hub[on] * len(order) + ec[on]
    _, pair_of, pair_n = np.unique(pair, return_inverse=True, return_counts=True)
    inside = on[pair_n[pair_of] >= 2]
    strength = np.bincount(acc[inside], weights=share[inside], minlength=len(accounts))
    for i in np.flatnonzero(strength > 0):
        result.strength[accounts[i]] = float(strength[i])
    held = np.unique(acc[inside] * len(kind_names) + kind[inside])
    for code in held.tolist():
        result.kinds.setdefault(accounts[code // len(kind_names)], set()).add(kind_names[code % len(kind_names)])
    touched = np.unique(ec[inside] * len(kind_names) + kind[inside])  # (community, kind) pairs
    members = np.unique((ec[inside] * len(kind_names) + kind[inside]) * len(accounts) + acc[inside]) // len(accounts)
    covered = dict(zip(*np.unique(members, return_counts=True)))
    for code in touched.tolist():
        c = code // len(kind_names)
        result.coverage.setdefault(c, {})[kind_names[code % len(kind_names)]] = covered[code] / int(sizes[order[c]])
    for c in range(len(order)):
        result.coverage.setdefault(c, {})
    # Each community's hubs, strongest (members x weight) first, ties in hub order.
    h_in, first_row = np.unique(hub[inside] * len(order) + ec[inside], return_index=True)
    rows = inside[first_row]
    n_in = pair_n[pair_of[np.searchsorted(on, rows)]]
    score = n_in * weight[rows]
    c_of, h_of = ec[rows], hub[rows]
    for j in np.lexsort((h_of, -score, c_of)).tolist():
        c = int(c_of[j])
        lst = result.hubs.setdefault(c, [])
        if len(lst) < 50:
            _, k, value = hub_names[h_of[j]].split("\x1f", 2)
            lst.append((k, value, int(n_in[j]), float(weight[rows[j]])))
    return result
