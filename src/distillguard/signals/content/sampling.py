"""Per-account prompt sampling, shared scoring of unique prompts, aggregation.

Content signals read a per-account prompt sample table with columns
``account_id``, ``prompt`` and optionally ``system_prompt`` and ``uses``.
Work is bounded: at most ``max_prompts`` distinct prompts per account (a
deterministic choice by hash of the normalised prompt, so the same account
always gets the same sample), and every distinct text is featurised and
scored once however many accounts send it (campaign templates repeat).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from distillguard.text import normalize_prompt, script_of, template_skeleton

from .model import capability_scorer, featurize, intent_scorer

__all__ = ["AccountSample", "sample_accounts", "score_texts", "aggregate_intent", "EXAMPLE_CHARS"]

EXAMPLE_CHARS = 300


@dataclass
class AccountSample:
    """Accounts in input order and, per account, indices into ``texts``."""

    account_ids: list[str]
    texts: list[str]  # unique texts (first raw spelling seen)
    prompt_idx: list[list[int]] = field(default_factory=list)
    system_idx: list[list[int]] = field(default_factory=list)
    scripts: dict[int, str] = field(default_factory=dict)  # lazily filled: text index -> script


def _col(data: pa.Table, name: str) -> list | None:
    if name not in data.column_names:
        return None
    return data.column(name).to_pylist()


def _key(norm: str) -> bytes:
    return hashlib.blake2b(norm.encode("utf-8", "replace"), digest_size=8).digest()


def _quota(available: list[int], max_prompts: int, max_total: int, floor: int = 4) -> int:
    """The largest per-account quota whose total stays within ``max_total`` (water-filling).

    Most accounts send few distinct prompts, so a quota of ``max_total /
    accounts`` would leave most of the budget unused; this one spends it on
    the accounts that have more to show. Never below ``floor``.
    """
    if max_prompts <= floor:
        return max_prompts
    sizes = np.sort(np.minimum(np.asarray(available, dtype=np.int64), max_prompts))
    # total(q) = sum(min(size, q)); find the largest q in [floor, max_prompts] with total(q) <= max_total
    below = np.concatenate([[0], np.cumsum(sizes)])
    lo, hi = floor, max_prompts
    while lo < hi:
        q = (lo + hi + 1) // 2
        k = int(np.searchsorted(sizes, q))  # accounts with fewer than q prompts
        if below[k] + q * (len(sizes) - k) <= max_total:
            lo = q
        else:
            hi = q - 1
    return lo


def sample_accounts(
    data: pa.Table, max_prompts: int = 64, max_system: int = 4, max_total: int | None = 60_000
) -> AccountSample:
    """Deduplicate and sample prompts per account (missing optional columns are fine).

    ``max_total`` bounds the work of a whole scan: the per-account quota
    shrinks (water-filling, not below 4) when ``max_prompts`` per account
    would exceed it (``None``: no bound). Signals of one scan share the
    result through :class:`.view.PromptView`.
    """
    accounts = _col(data, "account_id") or []
    prompts = _col(data, "prompt") or [None] * len(accounts)
    systems = _col(data, "system_prompt") or [None] * len(accounts)
    order: dict[str, int] = {}
    per_p: list[dict[bytes, str]] = []
    per_s: list[dict[bytes, str]] = []
    for a, p, s in zip(accounts, prompts, systems):
        if a is None:
            continue
        a = str(a)
        i = order.get(a)
        if i is None:
            i = order[a] = len(per_p)
            per_p.append({})
            per_s.append({})
        for val, bucket in ((p, per_p[i]), (s, per_s[i])):
            if isinstance(val, str):
                n = normalize_prompt(val)
                if n:
                    bucket.setdefault(_key(n), val)
    index: dict[bytes, int] = {}
    texts: list[str] = []

    def pick(bucket: dict[bytes, str], k: int) -> list[int]:
        keys = sorted(bucket)[:k]
        out = []
        for key in keys:
            j = index.get(key)
            if j is None:
                j = index[key] = len(texts)
                texts.append(bucket[key])
            out.append(j)
        return out

    sample = AccountSample(list(order), texts)
    if max_total is not None and per_p:
        max_prompts = _quota([len(b) for b in per_p], max_prompts, max_total)
    for bp, bs in zip(per_p, per_s):
        sample.prompt_idx.append(pick(bp, max_prompts))
        sample.system_idx.append(pick(bs, max_system))
    return sample


def score_texts(texts: list[str]) -> dict:
    """Features-derived per-text outputs: featurises ``texts`` (the costly step) and scores them.

    Returns ``{"intent": {intent: p[n]}, "capability": P[n, k], "embedding": E[n, 128]}``.
    Signals of one scan share the result through :class:`.view.PromptView`.
    """
    if not texts:
        from .bank import CAPABILITIES, INTENTS

        return {
            "intent": {i: np.zeros(0) for i in INTENTS},
            "capability": np.zeros((0, len(CAPABILITIES))),
            "embedding": np.zeros((0, 128), dtype=np.float32),
        }
    X = featurize(texts)
    return {
        "intent": intent_scorer().predict_features(X),
        "capability": capability_scorer().predict_features(X),
        "embedding": np.asarray(X[:, :128].todense(), dtype=np.float32),
    }


def aggregate_intent(
    sample: AccountSample,
    p: np.ndarray,
    threshold: float,
    top_k: int,
    full_share: float,
    system_weight: float,
    evidence_floor: float,
    n_examples: int,
    min_matching: int = 2,
    min_share: float = 0.25,
    wrappers: tuple[list[list[int]], np.ndarray, list[str]] | None = None,
) -> tuple[np.ndarray, dict[str, dict]]:
    """Per-account intent score and evidence from per-text probabilities ``p``.

    For an account with distinct prompts scored ``p_1..p_n`` of which ``h``
    match (``p_i >= threshold``): the score is 0 unless the intent is
    systematic, ``h >= min_matching`` and ``h / n >= min_share`` (one story
    request among many prompts does not make a jailbreaker), or the account's
    usual system prompt matches (at least half of its distinct ones); otherwise
    ``share = h / (n + 1)`` (one pseudo-prompt of prior), ``top = mean of the
    top-k p_i`` and ``score = top * min(1, share / full_share) ** 0.5``. System
    prompts count as prompts with weight ``system_weight`` on their probability.
    With ``wrappers`` (per account the wrapper index of each prompt, the
    wrappers' probabilities and texts; :mod:`.wrappers`) a prompt's
    probability is the larger of its own and its wrapper's, and the evidence
    names the best matching wrapper.
    """
    n_acc = len(sample.account_ids)
    scores = np.zeros(n_acc)
    evidence: dict[str, dict] = {}
    for a in range(n_acc):
        pi = sample.prompt_idx[a]
        si = sample.system_idx[a]
        if not pi and not si:
            continue
        own = [float(p[j]) for j in pi]
        wrap = [] if wrappers is None else [float(wrappers[1][w]) if w >= 0 else 0.0 for w in wrappers[0][a]]
        lifted = [max(o, w) for o, w in zip(own, wrap)] if wrap else own
        vals = [(v, j, "prompt") for v, j in zip(lifted, pi)] + [(float(p[j]) * system_weight, j, "system_prompt") for j in si]
        probs = np.array([v[0] for v in vals])
        hits = int((probs >= threshold).sum())
        share = hits / (len(vals) + 1)
        k = min(top_k, len(vals))
        top = float(np.sort(probs)[-k:].mean())
        # a system prompt rides on the account's requests, so one that matches is systematic by itself
        # when it is the account's usual one (at least half of its distinct system prompts)
        sys_hits = sum(v[0] >= threshold for v in vals[len(pi):])
        systematic = (hits >= min_matching and hits / len(vals) >= min_share) or (si and sys_hits / len(si) >= 0.5)
        s = top * min(1.0, share / full_share) ** 0.5 if systematic else 0.0
        scores[a] = s
        if s >= evidence_floor:
            best = []
            seen: set[str] = set()
            for v in sorted(vals, key=lambda v: (-v[0], v[1]))[: 8 * n_examples]:
                sk = template_skeleton(sample.texts[v[1]][:400])[:200]
                if sk in seen:
                    continue
                seen.add(sk)
                best.append(v)
                if len(best) >= n_examples:
                    break
            scripts: dict[str, int] = {}
            for v in vals:
                if v[0] >= threshold:
                    sc = sample.scripts.get(v[1])
                    if sc is None:
                        sc = sample.scripts[v[1]] = script_of(sample.texts[v[1]][:200])
                    scripts[sc] = scripts.get(sc, 0) + 1
            ev = evidence[sample.account_ids[a]] = {
                "n_prompts": len(pi),
                "n_system_prompts": len(si),
                "n_matching": hits,
                "share_matching": round(hits / len(vals), 4),
                "top_k_mean": round(top, 4),
                "scripts_matching": scripts,
                "examples": [
                    {"text": sample.texts[j][:EXAMPLE_CHARS], "field": f, "score": round(v, 4)} for v, j, f in best
                ],
            }
            if wrap and max(wrap) >= threshold:
                w = wrappers[0][a][int(np.argmax(wrap))]
                ev["wrapper"] = {"text": wrappers[2][w][:EXAMPLE_CHARS], "score": round(max(wrap), 4),
                                 "n_prompts": sum(x >= threshold for x in wrap)}
    return np.clip(scores, 0.0, 1.0), evidence
