"""Campaigns grouped by operator: one operator's rings share evidence no stranger has.

An operator who runs several rings (one per card, one per proxy pool) still
runs them on one schedule and may pay or connect through the same
identifiers. Two campaigns belong to one operator when

- **their members pay with the same card** (``OPERATOR_KINDS``: a payment
  fingerprint that links under the link rules), at least ``min_members``
  members *of each campaign* — the campaign's own members, not
  the community it was cut from (a core shares its community with ordinary
  users, and their hubs are not the ring's); or
- **their activity moves together** (:func:`co_moving`): the correlation of
  the two campaigns' request counts per 10-minute bucket is at least
  ``min_corr`` and stands ``min_z`` standard deviations above the same
  correlation with one series shifted by 3 hours or more. Waves that start
  together are one schedule; two operators' independent schedules, or the
  day-night rhythm any traffic has, correlate as well shifted as unshifted.

Template bands, signup bursts, client IPs, subnets, user agents and e-mail
domains are not operator evidence on their own: measured on fit-range worlds
(docs/scoring.md, section 5) two unrelated operators' rings share hundreds of
template bands (harvest scripts are public) and their signup windows and
cloud ranges overlap, and rented proxy pools put a few of one operator's
accounts on another's IPs, so joining on them merges operators. Operators are the
connected components of the relation.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.link.components import UnionFind

__all__ = ["OPERATOR_KINDS", "co_moving", "followed", "footprint_candidates", "group_operators", "identity_cells", "join_footprint",
           "operator_campaigns", "operator_id", "schedule_parts"]

OPERATOR_KINDS = ("payment_fingerprint",)
"""Identifiers that tie two campaigns to one operator when members of both hold the same (linking) value."""
BUCKET_S = 600
MIN_LAG_S = 3 * 3600


def operator_id(campaign_ids: list[str]) -> str:
    """A stable id for a set of campaigns."""
    return "O-" + hashlib.sha1("\n".join(sorted(campaign_ids)).encode()).hexdigest()[:10]


def _standardised(series: list[np.ndarray]) -> np.ndarray:
    """Rows of log-scaled counts with mean 0 and standard deviation 1."""
    x = np.log1p(np.vstack(series).astype(float))
    return (x - x.mean(axis=1, keepdims=True)) / np.maximum(x.std(axis=1, keepdims=True), 1e-9)


def _null_lags(t: int) -> np.ndarray | None:
    """The circular shifts of at least ``MIN_LAG_S`` either way; None when too few to make a null."""
    min_lag = MIN_LAG_S // BUCKET_S
    lags = np.arange(min_lag, t - min_lag + 1)
    return lags if len(lags) >= 24 else None


def _corr_and_z(fx: np.ndarray, fy: np.ndarray, t: int, lags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of every row of ``fx`` (FFTs of standardised series) with ``fy`` (one row), and its z
    against the same correlation at every lag of ``lags``."""
    cross = np.fft.irfft(fx * np.conj(fy), n=t, axis=1) / t  # row i: corr(y, x_i shifted)
    r = cross[:, 0]
    null = cross[:, lags]
    return r, (r - null.mean(axis=1)) / np.maximum(null.std(axis=1), 1e-9)


def co_moving(activity: dict[str, np.ndarray], min_corr: float = 0.3, min_z: float = 5.0) -> list[tuple[str, str, float, float]]:
    """Pairs of campaigns whose activity moves together: ``(a, b, correlation, z)``.

    ``activity``: per campaign, its request counts per ``BUCKET_S`` bucket on
    one common time axis. Counts are log-scaled and standardised; the null is
    the pair's circular cross-correlation at every lag of at least
    ``MIN_LAG_S`` (too few such lags: no pair is tested). Cost: one FFT per
    campaign and one inverse FFT per pair, of the scan's buckets (1,008 a week).
    """
    cids = sorted(c for c, s in activity.items() if np.count_nonzero(s) >= 2)
    if len(cids) < 2:
        return []
    x = _standardised([activity[c] for c in cids])
    t = x.shape[1]
    lags = _null_lags(t)
    if lags is None:
        return []
    f = np.fft.rfft(x, axis=1)
    out = []
    for i in range(len(cids)):
        r, z = _corr_and_z(f[i + 1:], f[i], t, lags)
        for j in np.flatnonzero((r >= min_corr) & (z >= min_z)).tolist():
            out.append((cids[i], cids[i + 1 + j], round(float(r[j]), 3), round(float(z[j]), 1)))
    return out


def identity_cells(rows: np.ndarray, hubs: list[tuple[str, np.ndarray]], kinds) -> list[np.ndarray]:
    """``rows`` grouped by the hubs of ``kinds`` at least two of them hold: connected components, singletons included.

    ``kinds`` are identifiers one operator's accounts share and another's do
    not (a card, a wave band, a signup burst): unlike a cloud range or a
    public harvest template, they do not cross operators.
    """
    mine = set(rows.tolist())
    cells = UnionFind(rows.tolist())
    for kind, held in hubs:
        if kind in kinds:
            cells.union_all([i for i in held.tolist() if i in mine])
    return [np.array(sorted(g), dtype=np.int64) for g in cells.groups()]


def _keeps_schedule(cell: np.ndarray, activity, min_z: float) -> bool:
    """Whether a cell's two halves (alternate members) co-move at ``min_z``: its accounts run on one schedule."""
    halves = {0: activity(cell[0::2]), 1: activity(cell[1::2])}
    return bool(co_moving(halves, min_corr=-1.0, min_z=min_z))


def schedule_parts(cells: list[np.ndarray], activity, *, min_cell: int, min_z: float,
                   follow_z: float = -np.inf) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """``cells`` (:func:`identity_cells`) regrouped into the parts that run on independent schedules.

    ``activity(rows)``: the summed requests per bucket of those accounts.
    Anchors are cells of at least ``min_cell`` accounts that keep a schedule
    of their own (their halves co-move at ``min_z``: a ring sending at a
    steady rate gives no evidence either way, so it is never cut). Anchors
    that co-move at ``min_z`` or more (:func:`co_moving`, any correlation) are
    one part. Every other cell joins the part of the anchor it co-moves with
    most, or the largest part when it co-moves positively with none.

    Returns the parts, the anchors and the **loners**: accounts alone in their
    cell which, active enough to test, follow no anchor at ``follow_z``
    (each is in a part too; :func:`followed` tells whether it follows
    another operator's ring). One part and nothing else without anchors.
    """
    anchors = [j for j, c in enumerate(cells) if len(c) >= min_cell and _keeps_schedule(c, activity, min_z)]
    if not anchors:
        return ([np.concatenate(cells)] if cells else []), [], []
    z: dict[tuple[int, int], float] = {}
    for a, b, _, zz in co_moving({j: activity(c) for j, c in enumerate(cells)}, min_corr=-1.0, min_z=-np.inf):
        z[(a, b)] = z[(b, a)] = zz
    uf = UnionFind(anchors)
    for a in anchors:
        for b in anchors:
            if a < b and z.get((a, b), -np.inf) >= min_z:
                uf.union(a, b)
    groups = uf.groups()
    part_of = {a: k for k, g in enumerate(groups) for a in g}
    largest = max(range(len(groups)), key=lambda k: (sum(len(cells[a]) for a in groups[k]), -k))
    loners = []
    for j in range(len(cells)):
        if j in part_of:
            continue
        best = max(anchors, key=lambda a: (z.get((j, a), -np.inf), len(cells[a])))
        groups[part_of[best] if z.get((j, best), -np.inf) > 0 else largest].append(j)
        if len(cells[j]) == 1 and (j, best) in z and z[(j, best)] < follow_z:
            loners.append(int(cells[j][0]))
    return [np.concatenate([cells[j] for j in g]) for g in groups], [cells[a] for a in anchors], loners


def followed(series: np.ndarray, others: list[np.ndarray], min_z: float) -> list[int]:
    """Which of ``others`` (series on its time axis) ``series`` co-moves with at ``min_z``, any correlation."""
    if not others or np.count_nonzero(series) < 2:
        return []
    x = _standardised([series, *others])
    lags = _null_lags(x.shape[1])
    if lags is None:
        return []
    f = np.fft.rfft(x, axis=1)
    _, z = _corr_and_z(f[1:], f[0], x.shape[1], lags)
    return np.flatnonzero(z >= min_z).tolist()


def _shared_identifiers(assignment: dict[str, str], memberships: pa.Table, rules, n_accounts: int, min_members: int):
    """``(kind, value) -> campaigns`` with at least ``min_members`` members each holding that linking identifier."""
    t = memberships.filter(pc.is_in(memberships.column("kind"), pa.array(list(OPERATOR_KINDS), pa.string())))
    holders: dict[tuple[str, str], list[str]] = {}
    for a, k, v in zip(*(t.column(c).to_pylist() for c in ("account_id", "kind", "value"))):
        holders.setdefault((k, v), []).append(a)
    rule_of = {r.kind: r for r in rules}
    out = {}
    for (kind, value), accs in holders.items():
        rule = rule_of.get(kind)
        if rule is None or rule.hub_weight(len(set(accs)), n_accounts) <= 0:
            continue
        per: dict[str, set] = {}
        for a in accs:
            if a in assignment:
                per.setdefault(assignment[a], set()).add(a)
        cids = sorted(c for c, m in per.items() if len(m) >= min_members)
        if len(cids) >= 2:
            out[(kind, value)] = cids
    return out


def group_operators(assignment: dict[str, str], memberships: pa.Table, rules, n_accounts: int,
                    activity: dict[str, np.ndarray] | None = None, *, min_members: int = 2, min_corr: float = 0.3,
                    min_z: float = 5.0) -> dict[str, dict]:
    """``campaign_id -> {operator_id, shared}``: campaigns joined by operator evidence.

    ``assignment`` maps accounts to campaign ids; ``memberships`` are the
    linkage's ``(account_id, kind, value)`` rows and ``rules`` its link rules
    (over ``n_accounts``: only values that link count); ``activity`` each
    campaign's requests per 10-minute bucket (:func:`co_moving`). ``shared``
    lists what joined the campaign to the rest of its operator.
    """
    uf = UnionFind(sorted(set(assignment.values())))
    shared: dict[str, list] = {cid: [] for cid in uf.parent}
    for (kind, value), cids in sorted(_shared_identifiers(assignment, memberships, rules, n_accounts, min_members).items()):
        for cid in cids:
            shared[cid].append({"kind": kind, "value": value, "campaigns": len(cids)})
        uf.union_all(cids)
    for a, b, r, z in co_moving(activity or {}, min_corr, min_z):
        shared[a].append({"kind": "activity", "value": f"moves with {b} (r={r}, z={z})", "campaigns": 2})
        shared[b].append({"kind": "activity", "value": f"moves with {a} (r={r}, z={z})", "campaigns": 2})
        uf.union(a, b)
    out = {}
    for members in uf.groups():
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


def footprint_candidates(operator_of: dict[str, str], memberships: pa.Table, rules, n_accounts: int, kinds,
                         min_members: int = 2) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Accounts outside every campaign that hold an operator's ring evidence: ``account -> {operator_id: hubs}``.

    ``operator_of`` maps campaign members to their operator. A linking value
    of ``kinds`` is an operator's ring evidence when at least ``min_members``
    of that operator's members hold it and they are at least half of all its
    holders in the scan (a ring's template or card, not a popular value a few
    members also use). Harvest templates are shared between operators, so this
    alone does not attribute an account: :func:`join_footprint` asks its
    activity too.
    """
    t = memberships.filter(pc.is_in(memberships.column("kind"), pa.array(list(kinds), pa.string())))
    t = t.select(["account_id", "kind", "value"])  # one row per distinct value an account holds (link.memberships)
    member = pa.table({"account_id": pa.array(list(operator_of), pa.string()),
                       "operator_id": pa.array(list(operator_of.values()), pa.string())})
    held = (t.join(member, "account_id", join_type="inner").group_by(["kind", "value", "operator_id"])
            .aggregate([("account_id", "count")]))
    held = held.filter(pc.greater_equal(held.column("account_id_count"), min_members))
    if held.num_rows == 0:
        return {}
    t = t.join(held.select(["kind", "value"]).group_by(["kind", "value"]).aggregate([]), ["kind", "value"], join_type="left semi")
    total = t.group_by(["kind", "value"]).aggregate([("account_id", "count")]).rename_columns(["kind", "value", "holders"])
    held = held.join(total, ["kind", "value"])
    held = held.filter(pc.greater_equal(pc.multiply(held.column("account_id_count"), 2), held.column("holders")))
    rule_of = {r.kind: r for r in rules}
    owner: dict[tuple[str, str], tuple[int, str]] = {}
    for k, v, oid, n, holders in zip(*(held.column(c).to_pylist() for c in ("kind", "value", "operator_id", "account_id_count", "holders"))):
        rule = rule_of.get(k)
        if rule is not None and rule.hub_weight(holders, n_accounts) > 0 and (n, oid) > owner.get((k, v), (0, "")):
            owner[(k, v)] = (n, oid)
    out: dict[str, dict[str, list[tuple[str, str]]]] = {}
    hubs = pa.table({"kind": [k for k, _ in owner], "value": [v for _, v in owner], "owner": [o for _, o in owner.values()]},
                    schema=pa.schema([("kind", pa.string()), ("value", pa.string()), ("owner", pa.string())]))
    outside = t.join(hubs, ["kind", "value"], join_type="inner").join(member, "account_id", join_type="left anti")
    outside = outside.sort_by([("account_id", "ascending"), ("kind", "ascending"), ("value", "ascending")])
    for a, k, v, oid in zip(*(outside.column(c).to_pylist() for c in ("account_id", "kind", "value", "owner"))):
        out.setdefault(a, {}).setdefault(oid, []).append((k, v))
    return out


def join_footprint(candidates: dict[str, dict[str, list[tuple[str, str]]]], account_activity: dict[str, np.ndarray],
                   operator_activity: dict[str, np.ndarray], min_corr: float = 0.15, min_z: float = 4.0) -> dict[str, dict]:
    """``account -> {operator_id, shared}``: candidates whose activity moves with exactly one of their operators.

    An account holding an operator's ring evidence (:func:`footprint_candidates`)
    joins that operator's footprint when its requests per 10-minute bucket
    correlate with the operator's at ``min_corr`` or more, ``min_z`` standard
    deviations above the same correlation at every circular shift of 3 hours
    or more (as :func:`co_moving`, at a lower bar: one account's requests are a
    sparse sample of its operator's schedule, and the ring evidence is the
    other half of the case). It carries the ``operator_id``, not a campaign id:
    it is attributed, not flagged. Series: on one common time axis.
    """
    accs = sorted(a for a in candidates if np.count_nonzero(account_activity.get(a, 0)) >= 2)
    oids = sorted({o for a in accs for o in candidates[a]} & operator_activity.keys())
    if not accs or not oids:
        return {}
    fx = np.fft.rfft(_standardised([account_activity[a] for a in accs]), axis=1)
    fo = np.fft.rfft(_standardised([operator_activity[o] for o in oids]), axis=1)
    t = len(account_activity[accs[0]])
    lags = _null_lags(t)
    if lags is None:
        return {}
    moves: dict[str, list[tuple[str, float, float]]] = {}
    for j, oid in enumerate(oids):
        rows = [i for i, a in enumerate(accs) if oid in candidates[a]]
        r, z = _corr_and_z(fx[rows], fo[j], t, lags)
        for k in np.flatnonzero((r >= min_corr) & (z >= min_z)).tolist():
            moves.setdefault(accs[rows[k]], []).append((oid, round(float(r[k]), 3), round(float(z[k]), 1)))
    out = {}
    for a, found in moves.items():
        if len(found) != 1:  # moves with two operators' schedules: not attributed
            continue
        oid, r, z = found[0]
        shared = [{"kind": k, "value": v} for k, v in candidates[a][oid][:5]]
        out[a] = {"operator_id": oid, "shared": shared + [{"kind": "activity", "value": f"moves with {oid} (r={r}, z={z})"}]}
    return out
