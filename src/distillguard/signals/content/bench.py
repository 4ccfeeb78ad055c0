"""Throughput of the content stage: ``python -m distillguard.signals.content.bench [N] [ACCOUNTS]``.

Builds N prompts (bank exemplars with random filler words appended, so every
prompt is distinct and ~200 characters), spread over ACCOUNTS accounts, then
times ``fit`` + ``score`` of every content signal in sequence, as a scan runs
them. Prints seconds per signal and prompts per second for the whole stage.
"""
from __future__ import annotations

import random
import sys
import time

import pyarrow as pa


def synthetic_prompts(n: int, n_accounts: int, seed: int = 0) -> pa.Table:
    from .bank import load_bank

    bank = [e.text for e in load_bank()]
    rng = random.Random(seed)
    words = "alpha beta gamma delta river mountain code python matrix vector table garden history music".split()
    prompts, accounts = [], []
    for i in range(n):
        filler = " ".join(rng.choice(words) for _ in range(rng.randrange(3, 40)))
        prompts.append(f"{rng.choice(bank)} {filler} #{i}")
        accounts.append(f"acct{rng.randrange(n_accounts)}")
    return pa.table({"account_id": accounts, "prompt": prompts})


def main(n: int = 50_000, n_accounts: int = 2_000) -> dict:
    t0 = time.perf_counter()
    from distillguard.text import embed

    from . import CONTENT_SIGNALS, capability_scorer, intent_scorer
    from .view import PromptView

    embed(["warm up"])
    intent_scorer()
    capability_scorer()
    load_s = time.perf_counter() - t0
    view = PromptView(synthetic_prompts(n, n_accounts))  # shared by the signals, as in a scan
    per = {}
    t1 = time.perf_counter()
    for cls in CONTENT_SIGNALS:
        s = time.perf_counter()
        cls().fit(view).score(view)
        per[cls.name] = round(time.perf_counter() - s, 2)
    total = time.perf_counter() - t1
    out = {"prompts": n, "accounts": n_accounts, "load_s": round(load_s, 2), "per_signal_s": per,
           "total_s": round(total, 2), "prompts_per_s": round(n / total)}
    return out


if __name__ == "__main__":  # pragma: no cover
    args = [int(a) for a in sys.argv[1:]]
    print(main(*args))
