"""The evidence vector of each account: its own signals and its campaign's pooled evidence.

Campaign-level entries are the mean of each signal over the members and, for
each kind of link the account itself shares inside the campaign, the share
of members that kind covers; all scaled by how firmly the account is attached to the campaign (its shared-hub strength relative to the
members' median, and how many kinds of link it shares). This is what lets
accounts that each look light be caught together.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distillguard.link import Communities
from distillguard.link.kinds import evidence_columns

__all__ = ["EvidenceMatrix", "attachment", "build_evidence", "own_scores"]


@dataclass
class EvidenceMatrix:
    """Rows = accounts, columns = named evidence in [0, 1] (``log_*`` may exceed 1).

    ``reasons[j]`` is the reason code column ``j`` supports (None for
    columns that only modulate, such as size or a declared organisation).
    """

    account_ids: list[str]
    names: list[str]
    reasons: list[str | None]
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def attachment(ids: list[str], comms: Communities, attach_of: dict[str, float]) -> np.ndarray:
    """How firmly each account is attached to its community, in [0, 1].

    Its shared-hub strength relative to the members' median, times how many
    kinds of link it shares (2 for full attachment; a kind worth ``attach``
    < 1, such as a signup window, counts that much). 0 outside communities.
    """
    index = {a: i for i, a in enumerate(ids)}
    attach = np.zeros(len(ids))
    for members in comms.members().values():
        rows = [index[a] for a in members if a in index]
        if not rows:
            continue
        strength = np.array([comms.strength.get(ids[i], 0.0) for i in rows])
        kinds = np.array([sum(attach_of.get(k, 1.0) for k in comms.kinds.get(ids[i], ())) for i in rows])
        attach[rows] = np.minimum(1.0, strength / max(np.median(strength), 1e-9)) * np.minimum(1.0, kinds / 2)
    return attach


def _campaign_stats(own: np.ndarray, ids: list[str], comms: Communities, declared: dict[str, str | None],
                    attach: np.ndarray, pool, cores):
    index = {a: i for i, a in enumerate(ids)}
    n, d = own.shape
    pooled = np.zeros((n, d))
    columns = evidence_columns()
    cover = np.zeros((n, len(columns)))
    size = np.zeros(n)
    org = np.zeros(n)
    share = np.zeros(n)
    for key, members in [*comms.members().items(), *(cores or {}).items()]:
        c = key[0] if isinstance(key, tuple) else key  # (community, core number): a strong core of c
        rows = [index[a] for a in members if a in index]
        if not rows or (pool is not None and key not in pool):
            continue
        pooled[rows] = own[rows].mean(axis=0)
        cov = comms.coverage.get(c, {})
        for i in rows:
            mine = comms.kinds.get(ids[i], set())
            cover[i] = [max((cov.get(k, 0.0) for k in kinds if k in mine), default=0.0)
                        for _, kinds in columns.values()]
        size[rows] = np.log10(len(rows))
        stats = pool.get(key) if isinstance(pool, dict) else None
        if stats and stats.get("firm_members"):
            share[rows] = stats["strong_members"] / stats["firm_members"]
        declared_orgs = Counter(declared[a] for a in members if declared.get(a))
        org[rows] = max(declared_orgs.values(), default=0) / len(members)
    # Pooled evidence applies to a member in proportion to how firmly it is
    # attached: a user who shares one weak hub with a ring is not the ring.
    return pooled * attach[:, None], cover * attach[:, None], size, org, share * attach


def own_scores(account_ids: list[str], signal_tables: list[tuple[str, str, pa.Table]]) -> np.ndarray:
    """Accounts x signals matrix of the detectors' raw scores (0 where a detector is silent)."""
    index = {a: i for i, a in enumerate(account_ids)}
    own = np.zeros((len(account_ids), len(signal_tables)))
    for j, (col, _, table) in enumerate(signal_tables):
        for acc, v in zip(table.column("account_id").to_pylist(), table.column(col).to_pylist()):
            i = index.get(acc)
            if i is not None and v is not None:
                own[i, j] = v
    return own


def build_evidence(
    account_ids: list[str],
    signal_tables: list[tuple[str, str, pa.Table]],
    communities: Communities,
    declared_org: dict[str, str | None],
    n_events: np.ndarray,
    attach_of: dict[str, float] | None = None,
    *,
    own: np.ndarray | None = None,
    pool=None,
    cores: dict[int, list[str]] | None = None,
    attach: np.ndarray | None = None,
) -> EvidenceMatrix:
    """Assemble the evidence matrix.

    Parameters
    ----------
    signal_tables
        ``(score column, reason code, table with account_id + that column)``.
    declared_org
        ``account_id -> org_id`` of accounts that belong to a verified,
        declared organisation (None otherwise).
    n_events
        Requests per account, aligned with ``account_ids``.
    attach_of
        ``link kind -> how much sharing it ties an account`` (link rules' ``attach``).
    own
        The accounts' own signal scores (default: the raw scores of
        ``signal_tables``; the scan passes them relative to its population).
    pool
        Communities whose evidence is pooled and whose links count (the
        campaigns); None pools every community (reference fits). A mapping
        ``community -> {"firm_members", "strong_members", ...}`` (the
        candidates of :func:`distillguard.score.campaigns.strong_communities`)
        also gives each member its candidate's share of strong firm members
        (``campaign_strong_share``, scaled by attachment): the campaign evidence
        that does not depend on *which* detector its members trip, so it
        carries to a ring whose type the fit saw little of.
    cores
        ``(community, core number) -> accounts``: campaigns that are a strong
        core of their community
        (:func:`distillguard.score.campaigns.strong_communities`) pool over
        the core only.
    attach
        Each account's :func:`attachment` when the caller has it already
        (the scan computes it once for campaign candidates and evidence).
    """
    if own is None:
        own = own_scores(account_ids, signal_tables)
    if attach is None:
        attach = attachment(account_ids, communities, attach_of or {})
    pooled, cover, size, org, share = _campaign_stats(own, account_ids, communities, declared_org, attach, pool, cores)
    names = [c for c, _, _ in signal_tables]
    reasons = [r for _, r, _ in signal_tables]
    link = cover.max(axis=1)
    content = pooled.max(axis=1) if pooled.size else np.zeros(len(account_ids))
    values = np.hstack(
        [
            own,
            pooled,
            cover,
            np.column_stack([size, org, attach, link * content * attach, share, np.log10(1 + n_events)]),
        ]
    )
    return EvidenceMatrix(
        account_ids=list(account_ids),
        names=names + [f"campaign_{c}" for c in names] + [f"link_{k}" for k in evidence_columns()]
        + ["campaign_log_size", "campaign_declared_org", "campaign_attachment", "campaign_link_x_signal",
           "campaign_strong_share", "log_events"],
        reasons=reasons + reasons + [r for r, _ in evidence_columns().values()] + [None] * 6,
        values=values,
    )
