"""An account's repeated wrapper: the words it puts around every task, scored on their own.

A harvest wraps many different tasks in the same few instructions ("SYSTEM
OVERRIDE ... Task -> {q} ... print the reasoning too"). Scored whole, each
prompt is mostly its task, so a short wrapper is diluted and the prompt reads
as the task; across the account's distinct prompts the wrapper is what
repeats. The wrapper of a prompt is its runs of word trigrams that recur in
at least ``min_prompts`` and ``min_share`` of the account's sampled distinct
prompts; the intent scorers then read it alone, and a prompt counts for an
intent when either it or its wrapper matches. Nothing here knows any
phrasing: an app's fixed template is a wrapper too, and is judged by the same
scorers (its hard negatives) as any prompt.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from .sampling import AccountSample

__all__ = ["account_wrappers", "fragment", "in_context", "NEUTRAL_TASKS", "TASK_SLOT", "WRAPPER_CHARS"]

#: Characters of a prompt searched for its wrapper (as the scorers read at most 1000).
WRAPPER_CHARS = 1000
#: Runs shorter than this (a stray shared phrase) are not part of a wrapper.
MIN_RUN_CHARS = 12
#: Where the account's task sat in its wrapper.
TASK_SLOT = "{task}"
#: Short ordinary tasks a wrapper is also read around: a fragment alone is out of the scorers' training
#: distribution (whole prompts), and an eval harness's "think it through, then answer with the letter" reads as a
#: reasoning-trace demand on its own but not around a question.
NEUTRAL_TASKS = ("What is the capital of France?", "If 3 pencils cost 45 cents, how much do 7 cost?",
                 "Write a Python function that reverses a string.")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _wrapper(tokens: list[str], recurring: set[tuple[str, ...]]) -> str:
    """The recurring runs of ``tokens`` in order, the first gap between them (where the task sat) as
    :data:`TASK_SLOT` and any later gap as "…"; "" without a run."""
    keep = np.zeros(len(tokens), dtype=bool)
    for i in range(len(tokens) - 2):
        if tuple(tokens[i : i + 3]) in recurring:
            keep[i : i + 3] = True
    parts: list[str | None] = []  # a run's text, or None for a gap
    cur: list[str] = []
    for tok, k in zip(tokens, keep):
        if k:
            cur.append(tok)
            continue
        if cur:
            parts.append(" ".join(cur))
            cur = []
        if parts[-1:] != [None]:
            parts.append(None)
    if cur:
        parts.append(" ".join(cur))
    parts = [p if p is None or len(p) >= MIN_RUN_CHARS else None for p in parts]
    if not any(parts):
        return ""
    out, slotted = [], False
    for p in parts:
        if p is not None:
            out.append(p)
        elif out[-1:] not in ([TASK_SLOT], ["…"]):
            out.append("…" if slotted else TASK_SLOT)
            slotted = True
    return " ".join(out)


def in_context(wrapper: str) -> list[str]:
    """The wrapper around each of :data:`NEUTRAL_TASKS` (its later gaps dropped): what the scorers read as whole prompts."""
    bare = wrapper.replace(" …", "")
    if TASK_SLOT not in bare:
        bare = f"{bare} {TASK_SLOT}"
    return [bare.replace(TASK_SLOT, t) for t in NEUTRAL_TASKS]


def fragment(wrapper: str) -> str:
    """The wrapper alone, its task slot shown as a gap."""
    return wrapper.replace(TASK_SLOT, "…")


def account_wrappers(sample: AccountSample, min_prompts: int = 3, min_share: float = 0.15) -> tuple[list[str], list[list[int]]]:
    """Distinct wrapper texts, and per account the wrapper index of each of its sampled prompts (-1: none).

    A wrapper is per account (the same text may be wrapped differently by two
    accounts); a prompt's wrapper equal to the whole prompt adds nothing and
    is left out.
    """
    texts: list[str] = []
    index: dict[str, int] = {}
    per_account: list[list[int]] = []
    for idx in sample.prompt_idx:
        if len(idx) < min_prompts:
            per_account.append([-1] * len(idx))
            continue
        tokens = [_TOKEN.findall(sample.texts[j][:WRAPPER_CHARS]) for j in idx]
        df = Counter(g for t in tokens for g in {tuple(t[i : i + 3]) for i in range(len(t) - 2)})
        need = max(min_prompts, min_share * len(idx))
        recurring = {g for g, n in df.items() if n >= need}
        row = []
        for t in tokens:
            w = _wrapper(t, recurring) if recurring else ""
            if not w or TASK_SLOT not in w and len(w) >= 0.9 * len(" ".join(t)):
                row.append(-1)
                continue
            if w not in index:
                index[w] = len(texts)
                texts.append(w)
            row.append(index[w])
        per_account.append(row)
    return texts, per_account
