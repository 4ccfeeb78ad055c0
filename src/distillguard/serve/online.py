"""Online scoring: the fused behaviour risk of an account's running features.

The :data:`~distillguard.features.FEATURE_COLUMNS` row of
:class:`~distillguard.serve.state.AccountState` (the stream fold of the scan's
feature declaration) is scored by the scan's behaviour
:class:`~distillguard.signals.base.Signal` classes, made relative to the last scan's population baselines by the scan's
:func:`~distillguard.score.relative.make_relative` (the packaged reference
baselines while no scan stored any, as a small scan does), assembled by the
scan's :func:`~distillguard.score.evidence.build_evidence` and fused by the same
:class:`~distillguard.score.fusion.FusionModel`, with the scan's rule for
reasons: an own signal's code is listed when it is strong (relative score at
least the policy's ``population.strong``, and the scan did not find the account
to look like one analysts cleared), whatever its weight.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from distillguard.link import Communities
from distillguard.score.evidence import EvidenceMatrix, build_evidence, own_scores
from distillguard.score.relative import Baselines, make_relative, reference_baselines
from distillguard.signals.behaviour import BEHAVIOUR_SIGNALS

__all__ = ["OnlineScorer"]

_CAMPAIGN_TERMS = ("campaign_", "link_")
"""Evidence terms of an account's campaign (:func:`~distillguard.score.evidence.build_evidence`): only a scan finds them."""


class OnlineScorer:
    """Scores accounts of ``state`` with ``model``; ``campaign_map()`` gives the loaded scan's map (its campaign
    terms, its fit and its baselines); ``population`` is the policy's section of that name (``strong``)."""

    def __init__(self, model, state, campaign_map, population: dict | None = None):
        self.model, self.state, self._campaign_map = model, state, campaign_map
        self.strong = float((population or {}).get("strong", 0.5))
        self.signals = [cls() for cls in BEHAVIOUR_SIGNALS]
        self._cache: dict[str, tuple] = {}
        self.baselines = self._baselines()

    @property
    def map(self):
        return self._campaign_map()

    def forget(self, account_id: str) -> None:
        """Drop the account's cached score (its label or state changed)."""
        self._cache.pop(account_id, None)

    def clear(self) -> None:
        """Forget every cached score and take what the loaded scan's fit learned (the population's rates)."""
        self._cache.clear()
        for sig in self.signals:
            sig.set_fitted(self.map.behaviour_fit.get(sig.name, {}))
        self.baselines = self._baselines()

    def _baselines(self) -> Baselines:
        """The loaded scan's baselines; the packaged reference ones when no scan stored any (as a small scan)."""
        if self.map.baselines is not None:
            return self.map.baselines
        why = "no scan in the store yet" if self.map.run_id is None else "the last scan stored no baselines"
        return reference_baselines(self.model.reference_baselines, [s.name for s in self.signals],
                                   note=f"{why}: packaged reference baselines")

    def score(self, account_id: str) -> tuple[float, list, dict | None]:
        """(fused behaviour risk, reasons, features) of the running state; cached per state version."""
        st = self.state.account(account_id)
        if st is None:
            return 0.0, [], None
        version = (st.version, self.map.run_id)
        hit = self._cache.get(account_id)
        if hit is not None and hit[0] == version:
            return hit[1], hit[2], hit[3]
        released, start = self.state.release_times()
        feats = st.features(released, start)
        table = pa.Table.from_pylist([feats])
        names = list(self.model.coefficients)
        results = [(sig, sig.score(table)) for sig in self.signals]
        evidence = {sig.reason: res.evidence.get(account_id, {}) for sig, res in results if sig.name in names}
        tables = [(sig.name, sig.reason, res.scores) for sig, res in results]
        own_signals = {t[0] for t in tables}
        relative = make_relative(own_scores([account_id], tables), [t[0] for t in tables], self.baselines)
        # The account's own terms come from the scan's evidence builder over its running features, relative to the
        # scan's population; the scan's content and campaign terms of a known account (its campaign, a declared
        # org that cleared it) stay, their codes with the scan's reasons.
        own = build_evidence([account_id], tables, Communities(), {}, np.array([float(st.n)]), own=relative)
        known = self.map.accounts.get(account_id)
        scanned = known.evidence if known is not None else {}
        mine = [n in own.names and not n.startswith(_CAMPAIGN_TERMS) for n in names]
        values = np.array([[own.column(n)[0] if m else float(scanned.get(n, 0.0)) for n, m in zip(names, mine)]])
        reasons_of = [own.reasons[own.names.index(n)] if m else None for n, m in zip(names, mine)]
        em = EvidenceMatrix([account_id], names, reasons_of, values)
        cleared = account_id in self.map.lookalikes  # looks like an account analysts cleared (the scan's rule)
        strong = {n: (values[:, j] >= self.strong) & (not cleared) for j, n in enumerate(names) if mine[j] and n in own_signals}
        risk = float(self.model.risk(em)[0]) if st.n else 0.0
        reasons = [{"code": r.code, "weight": float(r.weight),
                    "details": {"source": "online", "terms": list(r.terms), "features": evidence.get(r.code) or {},
                                "baselines": self.baselines.source}}
                   for r in self.model.reasons(em, strong=strong)[0]]
        self._cache[account_id] = (version, risk, reasons, feats)
        return risk, reasons, feats
