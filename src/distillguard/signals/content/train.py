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
figures over the *training* sources (4 folds of whole sources, each role's
sources dealt on their own; each source scored by a model fitted without its
fold): the only figures the settings
below were chosen on. Training runs the same folds first and writes each
intent's per-prompt decision threshold (:func:`choose_thresholds`) to
``prompt_thresholds.yaml``: so the threshold is set on sources the model had
not seen, as the eval sources will be.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .bank import INTENTS, intent_training_set
from .corpora import CorporaMissing, CorpusRecord, training_records
from .intents import THRESHOLDS_PATH
from .model import INTENT_C, WEIGHTS_PATH, IntentScorer, featurize, write_weights

__all__ = ["REAL_WEIGHT", "fit_intent_scorer", "leave_sources_out", "choose_thresholds", "fixed_thresholds", "benign_account_rates"]

#: Sample weight of a corpus record relative to a bank exemplar.
REAL_WEIGHT = 2.0
#: Threshold search: the lowest threshold on this grid whose out-of-source benign rate meets the target.
THRESHOLD_GRID = tuple(round(0.5 + 0.01 * i, 2) for i in range(46))
#: Target share of real benign prompts matched per intent (source-averaged, out of source).
TARGET_BENIGN_RATE = 0.01
#: A threshold may not cost more than this share of the intent's out-of-source recall at 0.5.
MAX_RECALL_LOSS = 0.1


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
    """Each role's sources dealt round-robin into ``k`` folds on their own (sorted by name).

    Every fold holds out some of every role with at least ``k`` sources, and a
    source added to one role re-deals only that role: dealing all roles in one
    sequence let an added jailbreak source move every judge source, and with
    them the thresholds chosen on the folds. Each role starts at its own fold
    (its place in ``benign`` + :data:`INTENTS`, a fixed list) so the roles'
    remainders do not all land in fold 0.
    """
    roles = ("benign", *INTENTS)
    by_role: dict[str, list[str]] = {}
    for role, source in sorted({(r.role, r.source) for r in records}):
        by_role.setdefault(role, []).append(source)
    return {source: (roles.index(role) + i) % k for role, sources in by_role.items() for i, source in enumerate(sources)}


def leave_sources_out(
    records: list[CorpusRecord], C: float = INTENT_C, real_weight: float = REAL_WEIGHT, k: int = 4
) -> dict[str, np.ndarray]:
    """Per record, each intent's probability from a model fitted without the record's fold of sources.

    ``{intent: p[n]}`` in ``records`` order: the figures the thresholds and
    the account-level rule are calibrated on.
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
    return oos


def source_table(records: list[CorpusRecord], oos: dict[str, np.ndarray], thresholds: dict[str, float]) -> list[dict]:
    """Per training source: its fold, role, size and matched share per intent at ``thresholds``."""
    fold_of = source_folds(records)
    rows = []
    for source in sorted(fold_of, key=lambda s: (fold_of[s], s)):
        idx = [i for i, r in enumerate(records) if r.source == source]
        row = {"source": source, "fold": fold_of[source], "role": records[idx[0]].role, "n": len(idx)}
        row.update({i: round(float(np.mean(oos[i][idx] >= thresholds[i])), 4) for i in INTENTS})
        rows.append(row)
    return rows


def _source_rates(p: np.ndarray, sources: np.ndarray, threshold: float) -> dict[str, float]:
    return {s: float(np.mean(p[sources == s] >= threshold)) for s in sorted(set(sources))}


def choose_thresholds(records: list[CorpusRecord], oos: dict[str, np.ndarray], target: float = TARGET_BENIGN_RATE,
                      max_recall_loss: float = MAX_RECALL_LOSS, fixed: dict[str, float] | None = None) -> tuple[dict[str, float], dict]:
    """Per intent, the lowest threshold (>= 0.5) whose out-of-source benign rate is at most ``target``.

    ``fixed`` (the ``fixed`` section of ``prompt_thresholds.yaml``, each with
    its reason) holds an intent's threshold where it is; its rates are still
    reported at that threshold.

    The benign rate is the mean over benign training sources of each source's
    matched share (every source counts the same, as each held-out source is
    judged on its own). The threshold stops rising where the intent's own
    training sources would lose more than ``max_recall_loss`` of their
    out-of-source recall at 0.5 (a rule that only counted false matches would
    trade away the positives). Returns the thresholds and, per intent, the
    rates at the chosen threshold.
    """
    sources = np.array([r.source for r in records])
    roles = np.array([r.role for r in records])
    benign = roles == "benign"
    chosen, report = {}, {}
    for intent in INTENTS:
        p, own = oos[intent], roles == intent

        def benign_rate(t):
            return float(np.mean(list(_source_rates(p[benign], sources[benign], t).values())))

        def recall(t):
            return float(np.mean(p[own] >= t)) if own.any() else 0.0

        floor = recall(0.5) * (1 - max_recall_loss)
        t = THRESHOLD_GRID[0]
        for candidate in THRESHOLD_GRID if intent not in (fixed or {}) else ():
            if recall(candidate) < floor:
                break
            t = candidate
            if benign_rate(candidate) <= target:
                break
        t = (fixed or {}).get(intent, t)
        chosen[intent] = t
        report[intent] = {
            "threshold": t,
            "benign_rate_source_mean": round(benign_rate(t), 4),
            "benign_rate_worst_source": round(max(_source_rates(p[benign], sources[benign], t).values()), 4),
            "benign_rate_source_mean_at_0.5": round(benign_rate(0.5), 4),
            "recall_own_sources": round(recall(t), 4) if own.any() else None,
            "recall_own_sources_at_0.5": round(recall(0.5), 4) if own.any() else None,
        }
    return chosen, report


def fixed_thresholds(path: Path = THRESHOLDS_PATH) -> dict[str, dict]:
    """The hand-kept ``fixed`` section of ``prompt_thresholds.yaml``: ``{intent: {threshold, why}}``."""
    import yaml

    if not path.is_file():
        return {}
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("fixed") or {}


def write_thresholds(thresholds: dict[str, float], report: dict, fixed: dict[str, dict], path: Path = THRESHOLDS_PATH) -> None:
    import hashlib

    import yaml

    doc = {
        "thresholds": thresholds,
        "fixed": fixed,
        "rule": (f"per intent, the lowest threshold >= 0.5 whose leave-sources-out benign rate (mean over benign "
                 f"training sources) is <= {TARGET_BENIGN_RATE}, without losing more than {MAX_RECALL_LOSS:.0%} of "
                 f"the intent's own sources' recall at 0.5"),
        "weights_sha256": hashlib.sha256(WEIGHTS_PATH.read_bytes()).hexdigest()[:16],
        "leave_sources_out": report,
    }
    header = ("# Per-intent per-prompt decision thresholds: written by `make train-content` (train.py); edit only\n"
              "# the `fixed` section (an intent the rule must not move, with the reason), then retrain.\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


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
    oos = leave_sources_out(records, args.C, args.real_weight)
    fixed = fixed_thresholds()
    thresholds, report = choose_thresholds(records, oos, fixed={k: float(v["threshold"]) for k, v in fixed.items()})
    if args.cv:
        benign = np.array([r.role == "benign" for r in records])
        matched = np.stack([oos[k][benign] >= thresholds[k] for k in INTENTS], axis=1)
        print(json.dumps({"sources": source_table(records, oos, thresholds), "thresholds": report,
                          "benign_accounts_carrying_any_by_min_share": benign_account_rates(matched)}, indent=1))
        return 0
    scorer = fit_intent_scorer(records, C=args.C, real_weight=args.real_weight)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.source] = counts.get(r.source, 0) + 1
    training = {"corpus_records": counts, "C": args.C, "real_weight": args.real_weight}
    meta = write_weights(scorer, training=training)
    write_thresholds(thresholds, report, fixed)
    print(json.dumps({"weights": meta, "thresholds": report}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
