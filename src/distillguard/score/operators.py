"""Campaigns grouped by operator: one operator's rings share evidence no stranger has.

An operator who runs several rings (one per card, one per proxy pool) still
reuses its harvest templates, its wave schedule, its signup bursts and its
infrastructure. Two campaigns belong to one operator when their members hold
the same rare value of such a kind (``OPERATOR_KINDS``): the hubs of the
linkage graph already are rare values (a popular template or a NAT links
nobody, :mod:`distillguard.link`), so a value held inside two campaigns is
operator evidence. Operators are the connected components of that relation.
"""
from __future__ import annotations

import hashlib

from distillguard.link import Communities

__all__ = ["OPERATOR_KINDS", "group_operators", "operator_campaigns", "operator_id"]

OPERATOR_KINDS = ("payment_fingerprint", "client_ip", "subnet", "template", "lockstep", "signup_burst")
"""Kinds of shared value that tie two campaigns to one operator (a user agent or an
e-mail domain is shared by unrelated customers of one SDK or provider)."""


def operator_id(campaign_ids: list[str]) -> str:
    """A stable id for a set of campaigns."""
    return "O-" + hashlib.sha1("\n".join(sorted(campaign_ids)).encode()).hexdigest()[:10]


def group_operators(comms: Communities, assignment: dict[str, str], min_members: int = 2) -> dict[str, dict]:
    """``campaign_id -> {operator_id, shared}``: campaigns joined by values their members hold in common.

    ``assignment`` maps accounts to campaign ids; a value ties two campaigns
    when at least ``min_members`` members of each hold it. ``shared`` lists
    the values that joined the campaign to the rest of its operator.
    """
    cids_of_comm: dict[int, set[str]] = {}
    for acc, c in comms.membership.items():
        if acc in assignment:
            cids_of_comm.setdefault(c, set()).add(assignment[acc])
    holders: dict[tuple[str, str], set[str]] = {}
    for c, cids in cids_of_comm.items():
        for kind, value, n, _ in comms.hubs.get(c, []):
            if kind in OPERATOR_KINDS and n >= min_members:
                holders.setdefault((kind, value), set()).update(cids)
    parent = {cid: cid for cids in cids_of_comm.values() for cid in cids}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    shared: dict[str, list] = {cid: [] for cid in parent}
    for (kind, value), cids in sorted(holders.items()):
        if len(cids) < 2:
            continue
        ordered = sorted(cids)
        for cid in ordered:
            shared[cid].append({"kind": kind, "value": value, "campaigns": len(ordered)})
        for other in ordered[1:]:
            parent[find(other)] = find(ordered[0])
    groups: dict[str, list[str]] = {}
    for cid in parent:
        groups.setdefault(find(cid), []).append(cid)
    out = {}
    for members in groups.values():
        oid = operator_id(members)
        for cid in members:
            out[cid] = {"operator_id": oid, "shared": shared[cid][:20]}
    return out


def operator_campaigns(con, operator_id: str) -> list[str]:
    """The campaign ids of ``operator_id`` in a store's latest scan (``account_results``)."""
    from distillguard.errors import UsageError

    has = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'account_results' "
                      "AND column_name = 'operator_id'").fetchone()[0]
    if not has:
        raise UsageError("the store's scan results carry no operator ids: rescan with this version (scan --db)")
    rows = con.execute("SELECT DISTINCT campaign_id FROM account_results WHERE operator_id = ? AND campaign_id IS NOT NULL "
                       "ORDER BY campaign_id", [operator_id]).fetchall()
    if not rows:
        raise UsageError(f"no operator {operator_id!r} in the store's latest scan")
    return [r[0] for r in rows]
