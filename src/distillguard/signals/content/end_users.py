"""Harvest by a few end users of a router or reseller account.

A reseller serves hundreds of real end users; an operator hiding behind it
sends its harvest through a handful of them. Per account the harvest is
diluted by the real customers, per end user it is not. This detector scores
each of the account's busiest end users on the four extraction intents and
estimates the share of the account's traffic that comes from end users who
mostly send extraction prompts.
"""
from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

import numpy as np
import pyarrow as pa

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
    """

    name = "end_user_harvest"
    reason = "END_USER_HARVEST"
    requires: ClassVar[tuple[str, ...]] = ("end_user", "prompt", "eu_events", "account_eu_events")

    def __init__(self, prompt_threshold: float | None = None, min_prompts: int = 3, share_lo: float = 0.2, share_hi: float = 0.6,
                 traffic_lo: float = 0.05, traffic_hi: float = 0.25, evidence_floor: float = 0.3, n_examples: int = 3):
        self.prompt_threshold = prompt_threshold
        self.min_prompts = min_prompts
        self.share_lo = share_lo
        self.share_hi = share_hi
        self.traffic_lo = traffic_lo
        self.traffic_hi = traffic_hi
        self.evidence_floor = evidence_floor
        self.n_examples = n_examples

    def score(self, data: PromptView | pa.Table) -> SignalResult:
        view = PromptView.of(data)
        table = view.table
        cols = {c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
                for c in ("account_id", "end_user", "prompt", "eu_events", "account_eu_events")}
        texts = sorted({p for p in cols["prompt"] if p})
        probs = view.scores(texts)["intent"]
        P = np.vstack([probs[i] for i in INTENTS])  # (intents, texts)
        t = [PROMPT_THRESHOLDS[i] if self.prompt_threshold is None else self.prompt_threshold for i in INTENTS]
        margin = P / np.asarray(t)[:, None]  # >= 1: the intent matches
        which = margin.argmax(axis=0)
        best, extraction = P[which, np.arange(P.shape[1])], margin.max(axis=0) >= 1
        index = {t: i for i, t in enumerate(texts)}
        users: dict[str, dict[str, dict]] = defaultdict(dict)
        for a, e, p, n, total in zip(*cols.values()):
            if a is None or e is None or not p:
                continue
            u = users[a].setdefault(e, {"prompts": [], "events": n or 0, "total": total or 0})
            u["prompts"].append(index[p])
        ids = sorted({a for a in cols["account_id"] if a is not None})
        values = np.zeros(len(ids))
        evidence = {}
        for k, a in enumerate(ids):
            harvesters, harvested = [], 0.0
            for e, u in sorted(users.get(a, {}).items()):
                rows = u["prompts"]
                if len(rows) < self.min_prompts or not u["total"]:
                    continue
                share = float(np.mean(extraction[rows]))
                weight = float(ramp(share, self.share_lo, self.share_hi))
                if weight > 0:
                    traffic = u["events"] / u["total"]
                    harvested += weight * traffic
                    harvesters.append((e, u, share, traffic, rows))
            values[k] = float(ramp(harvested, self.traffic_lo, self.traffic_hi))
            if values[k] >= self.evidence_floor:
                evidence[a] = {
                    "harvested_traffic_share": round(harvested, 4),
                    "end_users": [
                        {"end_user": e, "requests": u["events"], "traffic_share": round(traffic, 4),
                         "extraction_share": round(share, 4),
                         "examples": [{"text": texts[j][:EXAMPLE_CHARS], "intent": INTENTS[int(which[j])],
                                       "score": round(float(best[j]), 4)}
                                      for j in sorted(rows, key=lambda j: -best[j])[: self.n_examples]]}
                        for e, u, share, traffic, rows in sorted(harvesters, key=lambda h: -h[3])
                    ],
                }
        scores = pa.table({"account_id": pa.array(ids, pa.string()), self.name: pa.array(values, pa.float64())})
        return SignalResult(self.name, scores, evidence)
