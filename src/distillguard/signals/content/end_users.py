"""Harvest by a few end users of a router or reseller account.

A reseller serves hundreds of real end users; an operator hiding behind it
sends its harvest through a handful of them. Per account the harvest is
diluted by the real customers, per end user it is not. This detector scores
each of the account's busiest end users on the four extraction intents and
estimates the share of the account's traffic that comes from end users who
harvest: who mostly send extraction prompts, or who send them far more often
than the key's other end users do. The second is the key's own reference: the
intent scorer matches only part of a harvest phrased unlike its training
text, and a key's ordinary customers show how often it matches ordinary
prompts of that key.
"""
from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

import numpy as np
import pyarrow as pa
from scipy.stats import binom

from distillguard.signals.base import Signal, SignalResult, ramp

from .bank import INTENTS
from .intents import PROMPT_THRESHOLDS
from .sampling import EXAMPLE_CHARS
from .view import PromptView

__all__ = ["EndUserHarvest"]


class EndUserHarvest(Signal):
    """Share of a router account's traffic sent by end users who mostly harvest.

    Parameters
    ----------
    prompt_threshold
        A prompt is an extraction prompt when an intent's probability reaches this;
        default each intent's calibrated threshold (:data:`.intents.PROMPT_THRESHOLDS`).
    min_prompts
        End users with fewer sampled prompts are not judged.
    share_lo, share_hi
        An end user's share of extraction prompts maps linearly from 0 at ``share_lo``
        to "harvester" (1) at ``share_hi``.
    traffic_lo, traffic_hi
        The account scores 0 when harvesters carry ``traffic_lo`` of its traffic, 1 at ``traffic_hi``.
    p_lo, p_hi
        An end user is also a harvester, from 0 at p-value ``p_lo`` to 1 at ``p_hi``, when its count of
        extraction prompts is improbable for the key's other end users' rate (binomial tail, Laplace-smoothed
        rate, times the end users tested): a harvest the intent scorer matches only in part still stands
        out from the customers beside it.
    """

    name = "end_user_harvest"
    reason = "END_USER_HARVEST"
    requires: ClassVar[tuple[str, ...]] = ("end_user", "prompt", "eu_events", "account_eu_events")

    def __init__(self, prompt_threshold: float | None = None, min_prompts: int = 3, share_lo: float = 0.2, share_hi: float = 0.6,
                 traffic_lo: float = 0.05, traffic_hi: float = 0.25, p_lo: float = 1e-2, p_hi: float = 1e-4,
                 evidence_floor: float = 0.3, n_examples: int = 3):
        self.prompt_threshold = prompt_threshold
        self.min_prompts = min_prompts
        self.share_lo = share_lo
        self.share_hi = share_hi
        self.traffic_lo = traffic_lo
        self.traffic_hi = traffic_hi
        self.p_lo = p_lo
        self.p_hi = p_hi
        self.evidence_floor = evidence_floor
        self.n_examples = n_examples

    def score(self, data: PromptView | pa.Table) -> SignalResult:
        view = PromptView.of(data)
        table = view.table
        cols = {c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
                for c in ("account_id", "end_user", "prompt", "eu_events", "account_eu_events", "busiest")}
        texts = sorted({p for p in cols["prompt"] if p})
        probs = view.scores(texts)["intent"]
        P = np.vstack([probs[i] for i in INTENTS])  # (intents, texts)
        t = [PROMPT_THRESHOLDS[i] if self.prompt_threshold is None else self.prompt_threshold for i in INTENTS]
        margin = P / np.asarray(t)[:, None]  # >= 1: the intent matches
        which = margin.argmax(axis=0)
        best, extraction = P[which, np.arange(P.shape[1])], margin.max(axis=0) >= 1
        index = {t: i for i, t in enumerate(texts)}
        users: dict[str, dict[str, dict]] = defaultdict(dict)
        others: dict[str, set[int]] = defaultdict(set)  # the key's other end users' distinct prompts
        for a, e, p, n, total, busiest in zip(*cols.values()):
            if a is None or e is None or not p:
                continue
            if busiest is False:
                others[a].add(index[p])
                continue
            u = users[a].setdefault(e, {"prompts": [], "events": n or 0, "total": total or 0})
            u["prompts"].append(index[p])
        ids = sorted({a for a in cols["account_id"] if a is not None})
        values = np.zeros(len(ids))
        evidence = {}
        for k, a in enumerate(ids):
            judged = {e: u for e, u in users.get(a, {}).items() if len(u["prompts"]) >= self.min_prompts and u["total"]}
            rest = list(others.get(a, ()))
            rate = (float(np.sum(extraction[rest])) + 1.0) / (len(rest) + 2.0)  # Laplace: no sample, no evidence
            harvesters, harvested = [], 0.0
            for e, u in sorted(judged.items()):
                rows = u["prompts"]
                hits = int(np.sum(extraction[rows]))
                share = hits / len(rows)
                p_value = min(1.0, float(binom.sf(hits - 1, len(rows), rate)) * len(judged))
                weight = max(float(ramp(share, self.share_lo, self.share_hi)),
                             float(ramp(-np.log10(max(p_value, 1e-300)), -np.log10(self.p_lo), -np.log10(self.p_hi))))
                if weight > 0:
                    traffic = u["events"] / u["total"]
                    harvested += weight * traffic
                    harvesters.append((e, u, share, traffic, rows, p_value))
            values[k] = float(ramp(harvested, self.traffic_lo, self.traffic_hi))
            if values[k] >= self.evidence_floor:
                evidence[a] = {
                    "harvested_traffic_share": round(harvested, 4),
                    "other_end_users": {"prompts": len(rest), "extraction_share": round(float(np.mean(extraction[rest])), 4) if rest else None},
                    "end_users": [
                        {"end_user": e, "requests": u["events"], "traffic_share": round(traffic, 4),
                         "extraction_share": round(share, 4), "p_value": float(f"{p_value:.3g}"),
                         "examples": [{"text": texts[j][:EXAMPLE_CHARS], "intent": INTENTS[int(which[j])],
                                       "score": round(float(best[j]), 4)}
                                      for j in sorted(rows, key=lambda j: -best[j])[: self.n_examples]]}
                        for e, u, share, traffic, rows, p_value in sorted(harvesters, key=lambda h: -h[3])
                    ],
                }
        scores = pa.table({"account_id": pa.array(ids, pa.string()), self.name: pa.array(values, pa.float64())})
        return SignalResult(self.name, scores, evidence)
