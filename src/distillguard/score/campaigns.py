"""Communities become campaigns: member-level evidence, pooled risk, volume, time span.

A community is a campaign only when its firmly attached members (attachment
>= ``min_attachment``) carry *strong* signals of their own
(:func:`strong_communities`): enough of them, and more than a random group of
the same size drawn from the same scan would (a binomial tail at the scan's
rate of strong accounts). Links alone (a cloud range, a NAT, a popular
template, an enterprise card) and weak evidence averaged over many members
never make one. It must also have at least ``min_flagged_share`` of its firm
members at risk 0.5; otherwise it is cleared and its members carry no
campaign id.

Members carry the campaign id whether or not they are flagged themselves, so
an analyst sees the whole ring; their risk already includes the campaign's
pooled evidence (:mod:`distillguard.score.evidence`). Raising every attached
member to the campaign's risk was tried and rejected: on simulated holdout
traffic it flagged mostly benign users who share one coincidental hub with a
ring. Both thresholds are policy data (``campaigns:``).
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import binom

from distillguard.link import Communities
from distillguard.link.graph import weighted_hubs
from distillguard.link.components import UnionFind
from distillguard.score.operators import followed, identity_cells, schedule_parts

__all__ = ["HUB_JOIN_CODE", "HUB_TIE_CODE", "HUB_TIE_TERM", "RING_CODE", "RING_TERM", "campaign_id", "build_campaigns", "campaign_strong_codes", "chance_tail", "characteristic_codes", "hub_holders",
           "hub_ties", "judge_campaigns", "kept_hubs", "ring_links", "shared_strong_codes", "split_by_operator", "strong_cores",
           "strong_communities"]

FLAG_RISK = 0.5
HUB_TIE_CODE = "HUB_TIED"
"""The reason a member of a campaign tied to it by its hubs carries (:func:`hub_ties`); the policy's rules act on it."""
HUB_JOIN_CODE = "HUB_JOINED"
"""The reason an account outside every campaign that joined one by its hubs carries (:func:`hub_ties`)."""
HUB_TIE_TERM = "hub_tie"
RING_CODE = "RING_EVIDENCE"
"""The reason a campaign member that is one of its ring members, or linked to them by its own kept hubs, carries
(:func:`ring_links`)."""
RING_TERM = "ring_evidence"


def _iso(ts) -> str | None:
    return ts.isoformat() if ts else None


def campaign_id(members: list[str]) -> str:
    """A stable id for a set of accounts."""
    return "C-" + hashlib.sha1("\n".join(sorted(members)).encode()).hexdigest()[:10]


def _examples(samples_by_account: dict[str, list[str]], members: list[str], k: int = 8) -> list[str]:
    seen, out = set(), []
    for a in sorted(members):
        for p in samples_by_account.get(a, [])[:2]:
            if p not in seen:
                seen.add(p)
                out.append(p[:500])
            if len(out) >= k:
                return out
    return out


def hub_holders(memberships: pa.Table, account_ids: list[str], comms: Communities, kinds) -> dict[int, list[tuple[str, np.ndarray]]]:
    """Per community, ``(kind, member rows)`` of each hub of ``kinds`` that two or more of its members share."""
    t = memberships.filter(pc.is_in(memberships.column("kind"), pa.array(list(kinds), pa.string())))
    if t.num_rows == 0 or not comms.membership:
        return {}
    at = _rows_of(t.column("account_id"), list(comms.membership))
    comm = np.where(at >= 0, np.fromiter(comms.membership.values(), np.int64, len(comms.membership))[at], -1)
    out: dict[int, list[tuple[str, np.ndarray]]] = {}
    for group, kind, _, rows in _shared_hubs(t, _rows_of(t.column("account_id"), account_ids), comm):
        out.setdefault(group, []).append((kind, rows))
    return out


def _rows_of(values: pa.ChunkedArray, names) -> np.ndarray:
    """The position of each value in ``names`` (distinct), -1 where it is not there."""
    at = pc.index_in(values, value_set=pa.array(names, pa.string()))
    return pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _shared_hubs(t: pa.Table, row: np.ndarray, group: np.ndarray):
    """``(group, kind, value, holder rows)`` of each hub (a ``kind``/``value`` row of ``t``) that two or more
    accounts hold within one group: ``row`` and ``group`` per row of ``t``, -1 where the row is left out.
    Ordered by group, then hub; holders ascending, each once."""
    encoded = pc.binary_join_element_wise(t.column("kind"), t.column("value"), "\x1f").combine_chunks().dictionary_encode()
    hub = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    on = (row >= 0) & (group >= 0)
    row, group, hub = row[on], group[on], hub[on]
    order = np.lexsort((row, hub, group))
    row, group, hub = row[order], group[order], hub[order]
    first = np.r_[True, (group[1:] != group[:-1]) | (hub[1:] != hub[:-1])]  # each (group, hub)'s first row
    keep = first | np.r_[True, row[1:] != row[:-1]]  # one row per holder
    row, group, hub, first = row[keep], group[keep], hub[keep], first[keep]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.r_[starts, len(row)])
    names = encoded.dictionary.to_pylist()
    for a, n in zip(starts[sizes >= 2].tolist(), sizes[sizes >= 2].tolist()):
        kind, value = names[hub[a]].split("\x1f", 1)
        yield int(group[a]), kind, value, row[a:a + n]


def kept_hubs(memberships: pa.Table, account_ids: list[str], rules, kinds, values: bool = False,
              weighted: pa.Table | None = None) -> list[tuple]:
    """``(kind, holder rows)`` of every hub of ``kinds`` over the whole scan that the link rules keep (not popular);
    ``(kind, holder rows, value)`` with ``values``. ``weighted``: :func:`weighted_hubs` of ``memberships`` under
    ``rules`` when the caller has it already (a hub's weight depends on its own kind's holders only)."""
    if weighted is None:
        weighted = weighted_hubs(memberships, {r.kind: r for r in rules}, len(account_ids))
    t = weighted.filter(pc.is_in(weighted.column("kind"), pa.array(list(kinds), pa.string())))
    if t.num_rows == 0:
        return []
    shared = _shared_hubs(t, _rows_of(t.column("account_id"), account_ids), np.zeros(t.num_rows, dtype=np.int64))
    return [(kind, rows, value) if values else (kind, rows) for _, kind, value, rows in shared]


def hub_ties(comms: Communities, account_ids: list[str], risk: np.ndarray, belongs: dict, hubs: list[tuple],
             min_hubs: int, min_share: float, strays=frozenset()) -> dict[str, dict]:
    """Accounts below the flag level whose kept hubs are mostly a campaign's: ``account_id -> evidence``.

    An account is **tied** to a campaign when that campaign's flagged members
    (risk 0.5) share at least ``min_hubs`` of its kept hubs (``hubs``:
    :func:`kept_hubs` with values), making at least ``min_share`` of them: a
    ring member whose links are all the ring's, whatever kinds carry them
    (template bands weigh 0.3 each, so attachment caps a template-only member
    below ``min_attachment``). A member of a campaign below the flag level is
    tested against its own campaign; an account outside every campaign
    against the campaigns of its community, and **joins** the one with the
    most such hubs (``joined``: true). Tying flags nothing here; the policy
    decides (reasons ``HUB_TIED``, ``HUB_JOINED``). Evidence: ``campaign`` (the community
    key), ``joined``, the shared ``hubs`` (kind, value) and the account's
    ``kept_hubs``. ``strays`` (:func:`split_by_operator`: another operator's
    accounts) join nothing. ``min_hubs`` 0 turns it off.
    """
    if min_hubs <= 0 or not hubs or not belongs:
        return {}
    index, hub_of, row_of, kept = _hub_rows(hubs, account_ids)
    n = len(account_ids)
    comm = np.array([comms.membership.get(a, -1) for a in account_ids])
    outside = np.ones(n, dtype=bool)
    outside[[index[a] for a in belongs]] = False
    outside[[index[a] for a in strays if a in index]] = False
    best: dict[int, tuple] = {}
    tied_to: dict = {}
    for c in set(belongs.values()):
        members = np.array([index[a] for a, k in belongs.items() if k == c])
        flagged = np.zeros(n, dtype=bool)
        flagged[members[risk[members] >= FLAG_RISK]] = True
        tied = tied_to[c] = np.bincount(hub_of, weights=flagged[row_of], minlength=len(hubs)) > 0
        shared = np.bincount(row_of, weights=tied[hub_of], minlength=n)
        near = outside & (comm == (c[0] if isinstance(c, tuple) else c))
        near[members[~flagged[members]]] = True
        for i in np.flatnonzero(near & (shared >= min_hubs) & (shared >= min_share * np.maximum(kept, 1))).tolist():
            if i not in best or shared[i] > best[i][1]:
                best[i] = (c, shared[i])
    out = {}
    for i, (c, _) in best.items():
        ties = hub_of[(row_of == i) & tied_to[c][hub_of]]
        out[account_ids[i]] = {"campaign": c, "joined": bool(outside[i]), "kept_hubs": int(kept[i]),
                               "hubs": [{"kind": hubs[j][0], "value": hubs[j][2]} for j in ties.tolist()]}
    return out


def _hub_rows(hubs: list[tuple], account_ids: list[str]):
    """Account -> row, then one entry per (hub, holder) of ``hubs`` (:func:`kept_hubs`): the hub's index and the
    holder's row, and each row's number of kept hubs."""
    row_of = np.concatenate([r for _, r, *_ in hubs])
    return ({a: i for i, a in enumerate(account_ids)}, np.concatenate([np.full(len(r), j) for j, (_, r, *_) in enumerate(hubs)]),
            row_of, np.bincount(row_of, minlength=len(account_ids)))


def ring_links(account_ids: list[str], belongs: dict, ring: np.ndarray, hubs: list[tuple], min_hubs: int,
               min_share: float) -> dict[str, dict]:
    """Campaign members linked to their campaign's **ring members** by their own kept hubs: ``account_id -> evidence``.

    Ring members: ``ring`` per row, the members whose strong own signal is
    their campaign's (:func:`shared_strong_codes`). A member is linked when
    at least ``min_hubs`` of its kept hubs (:func:`kept_hubs`, every kind),
    and at least ``min_share`` of them, are held by another ring member of
    its campaign. A ring member without a strong signal shares the ring's
    templates, waves and bursts; a templated app's user that its community
    merged with a ring shares one signup burst or template with it and its
    other hubs with its own app (docs/scoring.md section 9, "Clean
    identifiers"). Evidence: ``linked_hubs`` and ``kept_hubs``. ``min_hubs``
    0 links nobody (off).
    """
    if min_hubs <= 0 or not hubs or not belongs:
        return {}
    index, hub_of, row_of, kept = _hub_rows(hubs, account_ids)
    n = len(account_ids)
    out = {}
    for c in set(belongs.values()):
        member = np.zeros(n, dtype=bool)
        member[[index[a] for a, k in belongs.items() if k == c]] = True
        in_ring = member & ring
        held = np.bincount(hub_of, weights=in_ring[row_of], minlength=len(hubs))  # ring holders of each hub
        by_other = held[hub_of] - in_ring[row_of] >= 1
        linked = np.bincount(row_of, weights=by_other & member[row_of], minlength=n)
        for i in np.flatnonzero(member & (linked >= min_hubs) & (linked >= min_share * np.maximum(kept, 1))).tolist():
            out[account_ids[i]] = {"linked_hubs": int(linked[i]), "kept_hubs": int(kept[i])}
    return out


def _enough_strong(k: int, n: int, min_strong_members: int, min_strong_share: float) -> bool:
    """Whether ``k`` strong members of ``n`` are a campaign's share: at least ``min_strong_members`` and
    ``min_strong_share`` of them (a templated app's few strong users do not carry it)."""
    return n > 0 and k >= max(min_strong_members, min_strong_share * n)


def chance_tail(k: int, n: int, rate: float, tried: int) -> float:
    """P(Binomial(n, rate) >= k), times the ``tried`` groups it was the best of (Bonferroni): the random-group null."""
    return min(1.0, float(binom.sf(k - 1, n, rate)) * max(tried, 1))


def strong_cores(firm: np.ndarray, strong: np.ndarray, hubs: list[tuple[str, np.ndarray]], min_strong_share: float):
    """Groups of firm members tied by hubs mostly held by strong members, and how many hubs were tried.

    A campaign mixed into a community of ordinary users (a shared cloud range
    merges them) is still the accounts its own template, lockstep, burst or
    card ties together. A hub counts when at least two of its firm holders,
    and at least ``min_strong_share`` of them, carry a strong signal; the
    groups are the connected components of the counted hubs' holders, so a
    ring and a templated app in the same community stay apart.
    """
    in_firm = np.zeros(len(strong), dtype=bool)
    in_firm[firm] = True
    cores = UnionFind()
    tried = 0
    for _, held in hubs:
        held = held[in_firm[held]]
        if len(held) < 2:
            continue
        tried += 1
        k = int(strong[held].sum())
        if k >= 2 and k >= min_strong_share * len(held):
            cores.union_all(held.tolist())
    return [np.array(sorted(g)) for g in cores.groups()], tried


def _ring_evidence(core: np.ndarray, hubs: list[tuple[str, np.ndarray]], in_rings: np.ndarray) -> dict[int, set]:
    """Accounts outside ``core`` -> the kinds of the core's ring evidence they hold.

    Ring evidence: a hub that at least two members of ``core`` hold and at
    least half of whose holders in the community are in its strong cores
    (``in_rings``): the ring's template, wave band, signup burst or card, not
    a popular value a few ring members also use.
    """
    mine = np.zeros(len(in_rings), dtype=bool)
    mine[core] = True
    kinds_of: dict[int, set] = {}
    for kind, held in hubs:
        if mine[held].sum() >= 2 and in_rings[held].mean() >= 0.5:
            for i in held[~mine[held]].tolist():
                kinds_of.setdefault(i, set()).add(kind)
    return kinds_of


def _rejoin_and_grow(cores: list[np.ndarray], members: np.ndarray, hubs, n: int, min_kinds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(core, grown members)`` after rejoining the cores of one split ring and growing each to its ring.

    Two cores are one ring when at least two members of one hold the other's
    ring evidence (:func:`_ring_evidence`) of ``min_kinds`` kinds or more (a
    ring's signup burst and its wave band, say): the ring was cut where too
    few of its members were strong. A community member outside every core
    that holds a core's ring evidence of ``min_kinds`` kinds is that ring's
    account without a strong signal or a firm attachment of its own; at most
    ``len(core)`` are added (most kinds first): growth completes a ring, it
    does not turn a ring into its community.
    """
    if min_kinds <= 0 or not cores:
        return [(c, np.zeros(0, dtype=np.int64)) for c in cores]
    in_rings = np.zeros(n, dtype=bool)
    for c in cores:
        in_rings[c] = True
    evidence = [_ring_evidence(c, hubs, in_rings) for c in cores]
    uf = UnionFind(range(len(cores)))
    for a in range(len(cores)):
        for b in range(len(cores)):
            if a != b and sum(len(evidence[a].get(i, ())) >= min_kinds for i in cores[b].tolist()) >= 2:
                uf.union(a, b)
    member = set(members.tolist())
    out = []
    for group in uf.groups():
        core = np.unique(np.concatenate([cores[g] for g in group]))
        kinds_of = evidence[group[0]] if len(group) == 1 else _ring_evidence(core, hubs, in_rings)
        grown = sorted((i for i, k in kinds_of.items() if len(k) >= min_kinds and i in member and not in_rings[i]),
                       key=lambda i: (-len(kinds_of[i]), i))
        out.append((core, np.array(grown[:len(core)], dtype=np.int64)))
    return out


def strong_communities(
    comms: Communities,
    account_ids: list[str],
    strong: np.ndarray,
    attachment: np.ndarray,
    *,
    min_attachment: float = 0.3,
    min_strong_share: float = 0.5,
    min_strong_members: int = 3,
    max_p_value: float = 1e-4,
    is_dismissed=None,
    core_hubs: dict[int, list[tuple[str, np.ndarray]]] | None = None,
    grow_kinds: int = 2,
) -> dict[int, dict]:
    """Communities whose firm members carry strong signals of their own, with the test's figures.

    ``strong``: per account, whether it has at least one strong (relative)
    signal. The null is a random group of the same size from the same scan
    (every account, light ones included, as communities hold them): the
    number of strong members is Binomial(firm members, base rate), the base
    rate measured outside the groups under test. Members of a
    templated benign app are correlated, which that null does not know;
    ``min_strong_share`` (a sizeable share of members, not a handful) is what
    keeps a popular template's few strong users from carrying it. A community
    for which ``is_dismissed(members)`` holds (an analyst cleared the same
    cluster) is left out.

    ``core_hubs`` (:func:`hub_holders` of the specific link kinds): a
    community that fails the test as a whole is tested again on its strong
    core (:func:`strong_cores`), with the p-value multiplied by the number of
    hubs tried (Bonferroni: picking the strongest part of a community must
    not make chance look like a ring). Such a campaign is its core
    (``"core"``: account ids), not the whole community, keyed
    ``(community, core number)``. Cores of one split ring are rejoined, and
    each core is grown by the community members holding its own evidence of
    ``grow_kinds`` kinds (``"grown"``: account ids; :func:`_rejoin_and_grow`;
    0 turns both off). The test is on the core alone: growth never makes a
    candidate, it completes one.
    """
    index = {a: i for i, a in enumerate(account_ids)}
    groups = []
    for c, members in comms.members().items():
        if is_dismissed is not None and is_dismissed(members):
            continue
        rows = np.array([index[a] for a in members if a in index], dtype=int)
        firm = rows[attachment[rows] >= min_attachment]
        k = int(strong[firm].sum())
        if _enough_strong(k, len(firm), min_strong_members, min_strong_share):
            groups.append((c, firm, k, 0, None))
        elif core_hubs and c in core_hubs and len(firm):
            cores, tried = strong_cores(firm, strong, core_hubs[c], min_strong_share)
            passing = [core for core in cores if _enough_strong(int(strong[core].sum()), len(core), min_strong_members, min_strong_share)]
            for j, (core, grown) in enumerate(_rejoin_and_grow(passing, rows, core_hubs[c], len(account_ids), grow_kinds)):
                groups.append(((c, j), core, int(strong[core].sum()), tried, grown))
    # The null's base rate comes from the accounts outside the groups under test: a
    # campaign that is 20% of the scan must not raise the bar it is measured against.
    everyone = np.ones(len(account_ids), dtype=bool)
    outside = everyone.copy()
    for _, firm, _, _, _ in groups:
        outside[firm] = False
    pool = outside if outside.sum() >= 0.2 * len(outside) else everyone
    rate = float(strong[pool].mean()) if pool.any() else 0.0
    rate = min(max(rate, 1.0 / max(int(pool.sum()), 1)), 0.5)
    out: dict[int, dict] = {}
    for c, firm, k, tried, grown in groups:
        p = chance_tail(k, len(firm), rate, tried)
        if p <= max_p_value:
            out[c] = {"firm_members": int(len(firm)), "strong_members": k, "p_value": p, "base_rate": round(rate, 5)}
            if tried:
                out[c]["core"] = sorted(account_ids[i] for i in firm)
                out[c]["grown"] = sorted(account_ids[i] for i in grown)
    return out


def split_by_operator(candidates: dict, comms: Communities, account_ids: list[str], strong: np.ndarray, attachment: np.ndarray,
                      core_hubs: dict, activity_of, *, kinds, min_cell: int, min_z: float, follow_z: float = -np.inf,
                      min_attachment: float = 0.3, min_strong_share: float = 0.5, min_strong_members: int = 3,
                      max_p_value: float = 1e-4) -> dict:
    """``candidates`` with each whole community that two operators' rings share split into their parts.

    Two operators on one cloud range, sending the same public harvest
    templates, fall into one Leiden community; once their members are strong
    it passes as a whole, and one campaign (one operator id) spans both. The
    members the whole campaign would hold (firm, or loose with a strong
    signal) are grouped by the identifiers no two operators share
    (:func:`~distillguard.score.operators.identity_cells` of ``kinds``), and
    groups of at least ``min_cell`` accounts that keep schedules of their own
    which do not co-move at ``min_z`` are different operators
    (:func:`~distillguard.score.operators.schedule_parts`;
    ``activity_of(account_ids) -> {account: requests per bucket}``). A member
    tied by no such identifier whose activity follows none of its ring's
    schedule (``follow_z``) but does follow (``min_z``) an anchor of another
    community that does not move with this ring is a stray: another
    operator's account, left out. Each part is then tested as the whole was,
    on its firm members, the p-value times the parts, and keyed
    ``(community, part)`` with all its members as the core; a part that
    fails is no campaign. ``min_cell`` 0 turns it off.
    """
    whole = [c for c, t in candidates.items() if "core" not in t]
    if min_cell <= 0 or not whole:
        return candidates
    groups = comms.members()
    index = {a: i for i, a in enumerate(account_ids)}
    held_of = {}  # the members a whole campaign may hold: firm ones, and loose ones with a strong signal
    for c in whole:
        rows = np.array([index[a] for a in groups[c] if a in index], dtype=np.int64)
        held_of[c] = rows[(attachment[rows] >= min_attachment) | strong[rows]]
    series = activity_of(sorted(account_ids[i] for rows in held_of.values() for i in rows.tolist()))
    zero = np.zeros(len(next(iter(series.values()))) if series else 1)

    def activity(rows: np.ndarray) -> np.ndarray:
        return sum((series.get(account_ids[i], zero) for i in rows.tolist()), zero)

    split = {}
    for c in whole:
        cells = identity_cells(held_of[c], core_hubs.get(c, []), kinds)
        split[c] = schedule_parts(cells, activity, min_cell=min_cell, min_z=min_z, follow_z=follow_z)
    anchors = [(d, activity(a)) for d, (_, held, _) in split.items() for a in held]
    out = dict(candidates)
    for c, (parts, _, loners) in split.items():
        own = [s for d, s in anchors if d == c]
        elsewhere = [s for d, s in anchors if d != c]
        # a ring another community's anchor belongs to, unless that anchor moves with this ring too (one operator's)
        strays = {i for i in loners if any(not followed(elsewhere[h], own, min_z)
                                           for h in followed(activity(np.array([i])), elsewhere, min_z))}
        if len(parts) < 2 and not strays:
            continue
        rate = out.pop(c)["base_rate"]
        for j, part in enumerate(parts):
            part = part[~np.isin(part, list(strays))]
            firm = part[attachment[part] >= min_attachment]
            k = int(strong[firm].sum())
            p = chance_tail(k, len(firm), rate, len(parts))
            if _enough_strong(k, len(firm), min_strong_members, min_strong_share) and p <= max_p_value:
                out[(c, j)] = {"firm_members": int(len(firm)), "strong_members": k, "p_value": p, "base_rate": rate,
                               "core": sorted(account_ids[i] for i in part), "grown": [], "parts": len(parts),
                               "strays": sorted(account_ids[i] for i in strays)}
    return out


def judge_campaigns(
    comms: Communities,
    account_ids: list[str],
    risk: np.ndarray,
    attachment: np.ndarray,
    candidates: dict,
    strong: np.ndarray,
    min_flagged_share: float = 0.5,
    min_attachment: float = 0.5,
) -> tuple[dict[int, float], dict[str, int]]:
    """Which communities are campaigns.

    Returns ``community -> campaign risk`` (the mean risk of its flagged
    members) and ``account_id -> community`` for the members that belong to
    a campaign: the firmly attached ones and, of a whole community, every
    member at risk 0.5 with a ``strong`` signal of its own however loosely
    attached (a ring member with few links to the ring). Only
    ``candidates`` (from :func:`strong_communities`) are considered; strong
    cores (keyed ``(community, core number)``) are judged on the core's members
    and hold only them; the members they were grown by (``"grown"``) belong to
    the campaign too.
    """
    index = {a: i for i, a in enumerate(account_ids)}
    camp_risk: dict = {}
    belongs: dict[str, object] = {}
    groups = comms.members()
    for c in candidates:
        core = candidates[c].get("core")
        if core is not None:
            rows = firm = np.array([index[a] for a in core])
        else:
            rows = np.array([index[a] for a in groups[c] if a in index])
            firm = rows[attachment[rows] >= min_attachment]
        if len(firm) == 0:
            continue
        flagged = firm[risk[firm] >= FLAG_RISK]
        if len(flagged) < max(2, min_flagged_share * len(firm)):
            continue
        camp_risk[c] = float(risk[flagged].mean())
        loose = rows[(risk[rows] >= FLAG_RISK) & strong[rows]]
        grown = np.array([index[a] for a in candidates[c].get("grown", ())], dtype=np.int64)
        for i in np.concatenate([firm, loose, grown]):
            belongs[account_ids[i]] = c
    return camp_risk, belongs


def characteristic_codes(assignment: dict, strong: list[set[str]], account_ids: list[str], share: float) -> dict:
    """Per campaign, the codes that at least ``share`` of its members with a strong signal carry.

    A campaign's characteristic detectors: its own intent (a rubric ring's
    RUBRIC_GRADING), not the strong signal of a grading app's user that
    linkage merged into a hydra campaign. ``assignment``: account -> campaign
    (id or community key).
    """
    holders: dict = {}
    for i, a in enumerate(account_ids):
        if a in assignment and strong[i]:
            holders.setdefault(assignment[a], []).append(strong[i])
    out = {c: set() for c in set(assignment.values())}
    for c, sets in holders.items():
        counts = Counter(code for codes in sets for code in codes)
        out[c] = {code for code, n in counts.items() if n >= share * len(sets)}
    return out


def shared_strong_codes(assignment: dict, strong: list[set[str]], account_ids: list[str], characteristic: dict) -> list[set[str]]:
    """Per account, the codes of its strong own signals that are its campaign's :func:`characteristic_codes`.

    Accounts outside campaigns get none.
    """
    return [strong[i] & characteristic[assignment[a]] if a in assignment else set() for i, a in enumerate(account_ids)]


def campaign_strong_codes(stored_reasons) -> set[str]:
    """:func:`shared_strong_codes` of one account, read back from the reasons a scan stored (the decision service)."""
    return {r["code"] for r in stored_reasons if r.get("strong") and r.get("campaign_shared")}


def build_campaigns(
    comms: Communities,
    account_ids: list[str],
    risk: np.ndarray,
    camp_risk: dict[int, float],
    belongs: dict[str, int],
    reasons: list[list],
    features: pa.Table,
    samples_by_account: dict[str, list[str]],
    signal_evidence: dict[str, dict[str, dict]],
    tied: dict[str, dict] | None = None,
) -> tuple[list[dict], dict[str, str]]:
    """Campaign records (highest risk first) and ``account_id -> campaign_id``; ``tied`` (:func:`hub_ties`): the
    members tied to it by their hubs (``joined``: from outside every campaign), recorded with the hubs that tie them."""
    tied = tied or {}
    index = {a: i for i, a in enumerate(account_ids)}
    feat = {c: features.column(c).to_pylist() for c in ("n_events", "input_tokens", "output_tokens", "first_ts", "last_ts")}
    by_comm: dict[int, list[str]] = {}
    for a, c in belongs.items():
        by_comm.setdefault(c, []).append(a)
    campaigns, assignment = [], {}
    for c, members in by_comm.items():
        community = c[0] if isinstance(c, tuple) else c  # a strong core's community
        rows = [index[a] for a in members]
        cid = campaign_id(members)
        codes = Counter()
        for i in rows:
            for r in reasons[i]:
                codes[r.code] += r.weight
        signals = {}
        for name, ev in signal_evidence.items():
            hit = [a for a in members if a in ev]
            if hit:
                signals[name] = {"accounts": len(hit), "examples": [dict(account_id=a, **ev[a]) for a in sorted(hit)[:3]]}
        campaigns.append(
            {
                "campaign_id": cid,
                "risk": round(camp_risk[c], 4),
                "max_risk": round(float(np.max(risk[rows])), 4),
                "n_accounts": len(rows),
                "accounts": sorted(members),
                "n_events": int(sum(feat["n_events"][i] for i in rows)),
                "input_tokens": int(sum(feat["input_tokens"][i] or 0 for i in rows)),
                "output_tokens": int(sum(feat["output_tokens"][i] or 0 for i in rows)),
                "first_seen": _iso(min((feat["first_ts"][i] for i in rows if feat["first_ts"][i]), default=None)),
                "last_seen": _iso(max((feat["last_ts"][i] for i in rows if feat["last_ts"][i]), default=None)),
                "reasons": [{"code": k, "weight": round(v / len(rows), 3)} for k, v in codes.most_common()],
                "link_coverage": {k: round(v, 3) for k, v in sorted(comms.coverage.get(community, {}).items())},
                "shared": [
                    {"kind": kind, "value": value, "accounts": n, "weight": round(w, 3)}
                    for kind, value, n, w in comms.hubs.get(community, [])[:20]
                ],
                "signals": signals,
                "example_prompts": _examples(samples_by_account, members),
                "hub_tied": {a: {k: tied[a][k] for k in ("joined", "kept_hubs", "hubs")}
                             for a in sorted(members) if a in tied and tied[a]["campaign"] == c},
            }
        )
        for a in members:
            assignment[a] = cid
    campaigns.sort(key=lambda c: (-c["risk"], -c["n_accounts"]))
    return campaigns, assignment
