"""Language-agnostic lexical features: hashed character n-grams and scripts.

The static embedding is English-centric (MiniLM's WordPiece vocabulary); hashed
character n-grams carry the signal for Chinese, Russian, Arabic and other
languages and for obfuscated spellings.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Sequence

import numpy as np

from .normalize import normalize_prompt

__all__ = ["N_HASH_FEATURES", "char_ngram_features", "script_of"]

N_HASH_FEATURES = 2**18


@lru_cache(maxsize=4)
def _vectorizer(n_features: int, ngram_range: tuple[int, int]):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=ngram_range,
        n_features=n_features,
        alternate_sign=False,
        norm="l2",
        lowercase=False,  # normalize_prompt already case-folds
        dtype=np.float32,
    )


def char_ngram_features(
    texts: Sequence[str | None],
    n_features: int = N_HASH_FEATURES,
    ngram_range: tuple[int, int] = (2, 4),
    max_chars: int = 1500,
):
    """Sparse CSR ``(n, n_features)`` L2-normalised hashed char n-gram counts."""
    vec = _vectorizer(n_features, tuple(ngram_range))
    return vec.transform([normalize_prompt(t)[:max_chars] for t in texts])


_SCRIPT_RANGES = (
    ("han", 0x4E00, 0x9FFF),
    ("han", 0x3400, 0x4DBF),
    ("kana", 0x3040, 0x30FF),
    ("hangul", 0xAC00, 0xD7AF),
    ("cyrillic", 0x0400, 0x04FF),
    ("arabic", 0x0600, 0x06FF),
    ("devanagari", 0x0900, 0x097F),
    ("greek", 0x0370, 0x03FF),
    ("hebrew", 0x0590, 0x05FF),
    ("thai", 0x0E00, 0x0E7F),
)


def script_of(text: str | None) -> str:
    """Dominant writing system of ``text``: latin, han, kana, hangul, cyrillic, ..."""
    if not text:
        return "unknown"
    counts: dict[str, int] = {}
    for ch in text[:500]:
        o = ord(ch)
        if ch.isascii():
            if ch.isalpha():
                counts["latin"] = counts.get("latin", 0) + 1
            continue
        for name, lo, hi in _SCRIPT_RANGES:
            if lo <= o <= hi:
                counts[name] = counts.get(name, 0) + 1
                break
        else:
            if unicodedata.category(ch).startswith("L"):
                counts["latin"] = counts.get("latin", 0) + 1
    if not counts:
        return "unknown"
    if counts.get("kana", 0) and counts.get("han", 0):
        return "kana"  # Japanese mixes both
    return max(counts.items(), key=lambda kv: kv[1])[0]
