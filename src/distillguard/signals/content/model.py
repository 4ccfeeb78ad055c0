"""Per-prompt scorers: intent and capability logistic regressions on shared features.

Features of a prompt (:func:`featurize`): static embedding (128) and hashed
char 2-4-grams (2^16) of the whole text, then the same of its first 300
characters (2^15 buckets), each block unit-norm (see :mod:`distillguard.text`).
The embedding carries meaning (paraphrase), the char n-grams carry non-English
text and exact phrasing, the head block keeps an instruction visible in a long
prompt.

- :class:`IntentScorer`: one L2-regularised logistic regression per intent
  (COT_ELICITATION, RUBRIC_GRADING, DATASET_SYNTHESIS, JAILBREAK); ``p`` in
  [0, 1] is "this prompt asks for that".
- :class:`CapabilityScorer`: multinomial logistic regression over the
  capability classes.

The shipped intent scorer is trained on the exemplar bank plus the public
corpora's training sources by ``make train-content`` (:mod:`.train`); the
capability scorer on the bank. Both are written to ``data/scorers.safetensors``
(float16 weights, no pickle) stamped with digests of the bank, the corpus
manifest and the feature settings. At run time the shipped weights are used
when the stamp matches; otherwise (bank or manifest edited, weights not
rebuilt) the scorers are trained once per process on the bank alone,
deterministically, with a warning.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from functools import lru_cache
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from distillguard.text import char_ngram_features, embed

from .bank import DATA_DIR, CAPABILITIES, INTENTS, bank_digest, capability_training_set, intent_training_set

__all__ = ["featurize", "IntentScorer", "CapabilityScorer", "intent_scorer", "capability_scorer"]

#: Weight of the dense embedding block relative to the (unit-norm) n-gram block.
EMBED_WEIGHT = 1.0
INTENT_C = 64.0
N_HASH = 2**16
#: Characters of the head block and its hashed n-gram buckets.
HEAD_CHARS = 300
N_HASH_HEAD = 2**15
CAPABILITY_C = 16.0

_lock = threading.Lock()


def featurize(texts: Sequence[str | None], embed_weight: float = EMBED_WEIGHT) -> sp.csr_matrix:
    """Sparse ``(n, 2 * 128 + N_HASH + N_HASH_HEAD)`` features: the whole text, then its head.

    Both blocks are averages, so in a long prompt (few-shot judge examples, a
    pasted document) the instruction is diluted; the head block (the first
    ``HEAD_CHARS`` characters, where system prompts and instructions sit)
    keeps it visible. Short texts have the same text in both blocks.
    """
    texts = ["" if t is None else str(t) for t in texts]
    heads = [t[:HEAD_CHARS] for t in texts]
    w = np.float32(embed_weight)
    return sp.hstack(
        [
            sp.csr_matrix(embed(texts) * w),
            char_ngram_features(texts, n_features=N_HASH),
            sp.csr_matrix(embed(heads) * w),
            char_ngram_features(heads, n_features=N_HASH_HEAD),
        ],
        format="csr",
        dtype=np.float32,
    )


def _fit_lr(X, y, C: float, multinomial: bool = False):
    from sklearn.linear_model import LogisticRegression

    if multinomial:
        lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", solver="lbfgs")
    else:
        lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", solver="liblinear", dual=True, random_state=0)
    return lr.fit(X, y)


class IntentScorer:
    """Per-prompt probabilities for every intent in :data:`INTENTS`."""

    def __init__(self, include_holdout: bool = True, C: float = INTENT_C, embed_weight: float = EMBED_WEIGHT):
        self.include_holdout = include_holdout
        self.C = C
        self.embed_weight = embed_weight
        self.coef_: dict[str, np.ndarray] = {}
        self.intercept_: dict[str, float] = {}

    def fit(self) -> "IntentScorer":
        for intent in INTENTS:
            texts, y, _, _ = intent_training_set(intent, include_holdout=self.include_holdout)
            lr = _fit_lr(featurize(texts, self.embed_weight), np.asarray(y), self.C)
            self.coef_[intent] = lr.coef_[0].astype(np.float32)
            self.intercept_[intent] = float(lr.intercept_[0])
        return self

    def predict_features(self, X: sp.csr_matrix) -> dict[str, np.ndarray]:
        out = {}
        for intent in INTENTS:
            z = X @ self.coef_[intent] + self.intercept_[intent]
            out[intent] = 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))
        return out

    def predict(self, texts: Sequence[str | None]) -> dict[str, np.ndarray]:
        return self.predict_features(featurize(texts, self.embed_weight))


class CapabilityScorer:
    """Per-prompt probability over :data:`CAPABILITIES` (rows sum to 1)."""

    classes = CAPABILITIES

    def __init__(self, include_holdout: bool = True, C: float = CAPABILITY_C, embed_weight: float = EMBED_WEIGHT):
        self.include_holdout = include_holdout
        self.C = C
        self.embed_weight = embed_weight
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None

    def fit(self) -> "CapabilityScorer":
        texts, y, _, _ = capability_training_set(include_holdout=self.include_holdout)
        lr = _fit_lr(featurize(texts, self.embed_weight), np.asarray(y), self.C, multinomial=True)
        order = [list(lr.classes_).index(c) for c in self.classes]
        self.coef_ = lr.coef_[order].astype(np.float32)
        self.intercept_ = lr.intercept_[order].astype(np.float64)
        return self

    def predict_features(self, X: sp.csr_matrix) -> np.ndarray:
        z = np.asarray(X @ self.coef_.T, dtype=np.float64) + self.intercept_
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str | None]) -> np.ndarray:
        return self.predict_features(featurize(texts, self.embed_weight))


WEIGHTS_PATH = DATA_DIR / "scorers.safetensors"
#: Bump when features change, so shipped weights are not used with other features.
FEATURE_VERSION = "embed128+charhash2-4+head300:v2"


def _meta() -> dict[str, str]:
    """Settings the shipped weights must match to be used (bank, corpus manifest, features)."""
    from .corpora import manifest_digest

    return {
        "bank_digest": bank_digest(),
        "corpora_manifest_digest": manifest_digest(),
        "feature_version": FEATURE_VERSION,
        "n_hash": str(N_HASH),
        "n_hash_head": str(N_HASH_HEAD),
        "head_chars": str(HEAD_CHARS),
        "embed_weight": repr(EMBED_WEIGHT),
        "intent_c": repr(INTENT_C),
        "capability_c": repr(CAPABILITY_C),
        "intents": ",".join(INTENTS),
        "capabilities": ",".join(CAPABILITIES),
    }


def write_weights(intents: IntentScorer | None = None, training: dict | None = None, path: Path = WEIGHTS_PATH) -> dict[str, str]:
    """Save the intent scorer (default: trained on the bank alone) and the capability scorer.

    ``training`` (what the intent scorer was fitted on) is stored as metadata
    for provenance; it is not part of the staleness check.
    """
    import json

    from safetensors.numpy import save_file

    it = intents or IntentScorer().fit()
    cap = CapabilityScorer().fit()
    tensors = {f"intent.{k}.coef": v.astype(np.float16) for k, v in it.coef_.items()}
    tensors["intent.intercept"] = np.array([it.intercept_[k] for k in INTENTS], dtype=np.float64)
    tensors["capability.coef"] = cap.coef_.astype(np.float16)
    tensors["capability.intercept"] = cap.intercept_.astype(np.float64)
    meta = dict(_meta(), training=json.dumps(training or {"corpus_records": {}}, sort_keys=True))
    save_file(tensors, str(path), metadata=meta)
    return meta


def _load_weights(path: Path = WEIGHTS_PATH):
    """``(IntentScorer, CapabilityScorer)`` from shipped weights, or None if absent or stale."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        stored = f.metadata() or {}
        if any(stored.get(k) != v for k, v in _meta().items()):
            return None
        it = IntentScorer()
        ic = f.get_tensor("intent.intercept")
        for i, k in enumerate(INTENTS):
            it.coef_[k] = f.get_tensor(f"intent.{k}.coef").astype(np.float32)
            it.intercept_[k] = float(ic[i])
        cap = CapabilityScorer()
        cap.coef_ = f.get_tensor("capability.coef").astype(np.float32)
        cap.intercept_ = f.get_tensor("capability.intercept").astype(np.float64)
    return it, cap


@lru_cache(maxsize=1)
def _shipped():
    loaded = _load_weights()
    if loaded is None:
        warnings.warn(
            "distillguard content scorers: shipped weights missing or stale for the exemplar bank; "
            "training on the bank at first use (run `make train-content` to refresh)",
            stacklevel=3,
        )
    return loaded


@lru_cache(maxsize=2)
def intent_scorer(include_holdout: bool = True) -> IntentScorer:
    """The process-wide :class:`IntentScorer`: shipped weights, else trained once."""
    with _lock:
        if include_holdout and _shipped() is not None:
            return _shipped()[0]
        return IntentScorer(include_holdout=include_holdout).fit()


@lru_cache(maxsize=2)
def capability_scorer(include_holdout: bool = True) -> CapabilityScorer:
    """The process-wide :class:`CapabilityScorer`: shipped weights, else trained once."""
    with _lock:
        if include_holdout and _shipped() is not None:
            return _shipped()[1]
        return CapabilityScorer(include_holdout=include_holdout).fit()
