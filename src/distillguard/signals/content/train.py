"""Train the shipped intent scorers on the exemplar bank plus public corpora (``make train-content``).

Per intent, one logistic regression on ``featurize`` features over:

- the bank's training set (:func:`.bank.intent_training_set`: exemplars,
  hard negatives, capability prompts, task combinations), weight 1;
- the corpora's ``train`` sources (:func:`.corpora.training_records`, near
  duplicates of held-out text removed): a record whose role is the intent is
  a positive, every other record (real benign text, other intents' real
  prompts) a negative, weight ``REAL_WEIGHT``.

Real benign text is the hard negative the bank lacked (fiction, pasted code,
agendas, tutoring); real jailbreaks and judge prompts add positives. The
``eval`` sources are never read here.

``python -m distillguard.signals.content.train --cv`` prints leave-sources-out
figures over the *training* sources (4 folds of whole sources; each source
scored by a model fitted without its fold): the only figures the settings
below were chosen on.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import scipy.sparse as sp

from .bank import INTENTS, intent_training_set
from .corpora import CorporaMissing, CorpusRecord, training_records
from .intents import PROMPT_THRESHOLD
from .model import INTENT_C, IntentScorer, featurize, write_weights

__all__ = ["REAL_WEIGHT", "fit_intent_scorer", "leave_sources_out", "benign_account_rates"]

#: Sample weight of a corpus record relative to a bank exemplar.
REAL_WEIGHT = 2.0


class _Features:
    """Featurise each distinct text once across intents and folds."""

    def __init__(self):
        self.rows: dict[str, int] = {}
        self.blocks: list[sp.csr_matrix] = []
        self.X: sp.csr_matrix | None = None

    def add(self, texts: list[str]) -> None:
        new = [t for t in dict.fromkeys(texts) if t not in self.rows]
        if new:
            base = len(self.rows)
            self.rows.update({t: base + i for i, t in enumerate(new)})
            self.blocks.append(featurize(new))
            self.X = None

    def __call__(self, texts: list[str]) -> sp.csr_matrix:
        if self.X is None:
            self.X = sp.vstack(self.blocks, format="csr")
        return self.X[[self.rows[t] for t in texts]]


def _training_set(intent: str, records: list[CorpusRecord], real_weight: float):
    texts, y, _, _ = intent_training_set(intent)
    w = [1.0] * len(texts)
    texts = list(texts) + [r.text for r in records]
    y = list(y) + [int(r.role == intent) for r in records]
    w = w + [real_weight] * len(records)
    return texts, np.asarray(y), np.asarray(w)


def fit_intent_scorer(
    records: list[CorpusRecord], features: _Features | None = None, C: float = INTENT_C, real_weight: float = REAL_WEIGHT
) -> IntentScorer:
    """An :class:`IntentScorer` fitted on the bank plus ``records``."""
    from sklearn.linear_model import LogisticRegression

    features = features or _Features()
    scorer = IntentScorer(C=C)
    for intent in INTENTS:
        texts, y, w = _training_set(intent, records, real_weight)
        features.add(texts)
        lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", solver="liblinear", dual=True, random_state=0)
        lr.fit(features(texts), y, sample_weight=w)
        scorer.coef_[intent] = lr.coef_[0].astype(np.float32)
        scorer.intercept_[intent] = float(lr.intercept_[0])
    return scorer


def source_folds(records: list[CorpusRecord], k: int = 4) -> dict[str, int]:
    """Sources dealt round-robin into ``k`` folds by role, so each fold holds out some of every role."""
    sources = sorted({(r.role, r.source) for r in records})
    return {source: i % k for i, (_, source) in enumerate(sources)}


def leave_sources_out(
    records: list[CorpusRecord], C: float = INTENT_C, real_weight: float = REAL_WEIGHT, k: int = 4
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Per training source: matched rates per intent by a model fitted without its fold of sources.

    Also returns those out-of-source probabilities per record (``{intent: p[n]}``
    in ``records`` order), which calibrate the account-level rule.
    """
    features = _Features()
    features.add([r.text for r in records])
    fold_of = source_folds(records, k)
    oos = {i: np.zeros(len(records)) for i in INTENTS}
    for fold in range(k):
        idx = [i for i, r in enumerate(records) if fold_of[r.source] == fold]
        scorer = fit_intent_scorer([r for r in records if fold_of[r.source] != fold], features, C, real_weight)
        probs = scorer.predict_features(features([records[i].text for i in idx]))
        for intent in INTENTS:
            oos[intent][idx] = probs[intent]
    rows = []
    for source in sorted(fold_of, key=lambda s: (fold_of[s], s)):
        idx = [i for i, r in enumerate(records) if r.source == source]
        row = {"source": source, "fold": fold_of[source], "role": records[idx[0]].role, "n": len(idx)}
        row.update({i: round(float(np.mean(oos[i][idx] >= PROMPT_THRESHOLD)), 4) for i in INTENTS})
        rows.append(row)
    return rows, oos


def benign_account_rates(matched: np.ndarray, shares=(0.1, 0.15, 0.2, 0.25, 0.3, 0.4), min_matching: int = 2,
                         n_accounts: int = 20_000, seed: int = 0) -> dict[float, float]:
    """Share of simulated benign accounts that would carry an intent, per ``min_share``.

    ``matched``: ``(n_prompts, n_intents)`` booleans (out-of-source matches of
    real benign prompts). Each account draws 1-60 distinct prompts
    (log-uniform), as in ``benchmarks/bench_content.py``.
    """
    rng = np.random.default_rng(seed)
    sizes = np.rint(np.exp(rng.uniform(0, np.log(60), n_accounts))).astype(int)
    hits = np.stack([matched[rng.choice(len(matched), k, replace=False)].sum(axis=0) for k in sizes])
    out = {}
    for share in shares:
        carries = (hits >= min_matching) & (hits / sizes[:, None] >= share)
        out[share] = round(float(carries.any(axis=1).mean()), 5)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m distillguard.signals.content.train", description=__doc__.splitlines()[0])
    ap.add_argument("--cv", action="store_true", help="leave-one-source-out figures over the training sources; write nothing")
    ap.add_argument("--C", type=float, default=INTENT_C)
    ap.add_argument("--real-weight", type=float, default=REAL_WEIGHT)
    args = ap.parse_args(argv)
    try:
        records = training_records()
    except CorporaMissing as exc:
        print(f"train-content: {exc}", file=sys.stderr)
        return 2
    if args.cv:
        rows, oos = leave_sources_out(records, args.C, args.real_weight)
        benign = np.array([r.role == "benign" for r in records])
        matched = np.stack([oos[k][benign] >= PROMPT_THRESHOLD for k in INTENTS], axis=1)
        print(json.dumps({"sources": rows, "benign_accounts_carrying_any_by_min_share": benign_account_rates(matched)}, indent=1))
        return 0
    scorer = fit_intent_scorer(records, C=args.C, real_weight=args.real_weight)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.source] = counts.get(r.source, 0) + 1
    training = {"corpus_records": counts, "C": args.C, "real_weight": args.real_weight}
    print(json.dumps(write_weights(scorer, training=training), indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
