"""One prompt table and the text work derived from it, computed once and kept on the view.

A scan builds a :class:`PromptView` per prompt table and hands the same view
to every content signal, so the signals share the per-account sample and the
featurisation of its texts (the costly part) explicitly: nothing is cached at
module level, and the work lives exactly as long as the view. A signal given
a plain ``pa.Table`` (tests, direct calls) wraps it in a fresh view.
"""
from __future__ import annotations

import hashlib

import pyarrow as pa

from .sampling import AccountSample, sample_accounts, score_texts
from .wrappers import NEUTRAL_TASKS, account_wrappers, fragment, in_context

__all__ = ["PromptView"]


class PromptView:
    """A prompt table (``account_id``, ``prompt``, optional ``system_prompt``...) with memoised samples and scores."""

    def __init__(self, table: pa.Table):
        self.table = table
        self._samples: dict[tuple, AccountSample] = {}
        self._scores: dict[bytes, dict] = {}
        self._wrappers: dict[tuple, tuple] = {}

    @classmethod
    def of(cls, data: "PromptView | pa.Table") -> "PromptView":
        """``data`` itself when it is a view, else a fresh view of the table."""
        return data if isinstance(data, PromptView) else cls(data)

    def sample(self, max_prompts: int = 64, max_system: int = 4, max_total: int | None = 60_000) -> AccountSample:
        """:func:`.sampling.sample_accounts` of the table, once per set of limits."""
        key = (max_prompts, max_system, max_total)
        if key not in self._samples:
            self._samples[key] = sample_accounts(self.table, max_prompts, max_system, max_total)
        return self._samples[key]

    def wrapper_scores(self, sample: AccountSample, min_prompts: int, min_share: float) -> tuple[list[list[int]], dict, dict, list[str]]:
        """:func:`.wrappers.account_wrappers` of ``sample`` (per account, each prompt's wrapper index or -1),
        the wrappers' intent probabilities alone and (mean) around the neutral tasks, and their texts; once per
        sample and settings."""
        key = (id(sample), min_prompts, min_share)
        if key not in self._wrappers:
            texts, per_account = account_wrappers(sample, min_prompts, min_share)
            n, k = len(texts), len(NEUTRAL_TASKS)
            p = score_texts([fragment(w) for w in texts] + [c for w in texts for c in in_context(w)])["intent"]
            alone = {i: v[:n] for i, v in p.items()}
            around = {i: v[n:].reshape(n, k).mean(axis=1) for i, v in p.items()}
            self._wrappers[key] = (per_account, alone, around, texts)
        return self._wrappers[key]

    def scores(self, texts: list[str]) -> dict:
        """:func:`.sampling.score_texts` of ``texts``, once per distinct text list."""
        h = hashlib.blake2b(digest_size=16)
        for t in texts:
            h.update(t.encode("utf-8", "replace"))
            h.update(b"\x00")
        key = h.digest()
        if key not in self._scores:
            self._scores[key] = score_texts(texts)
        return self._scores[key]
