"""Language-agnostic lexical features: hashed character n-grams and scripts.

The static embedding is English-centric (MiniLM's WordPiece vocabulary); hashed
character n-grams carry the signal for Chinese, Russian, Arabic and other
languages and for obfuscated spellings.
"""
from __future__ import annotations

import unicodedata
from typing import Sequence

import numpy as np

from .normalize import normalize_prompt

__all__ = ["N_HASH_FEATURES", "char_ngram_features", "script_of"]

N_HASH_FEATURES = 2**18


_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK = 4096


def _hash_chunk(norm: list[str], n_features: int, lo: int, hi: int):
    """Rows, columns of every char n-gram (lo..hi) of the texts in one chunk."""
    joined = "\x00".join(norm)
    a = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    sep = a == 0
    doc = np.cumsum(sep)  # text index of each position (separators belong to the next)
    sep_cum = np.concatenate([[0], np.cumsum(sep)])
    rows, cols = [], []
    with np.errstate(over="ignore"):
        for n in range(lo, hi + 1):
            L = len(a) - n + 1
            if L <= 0:
                continue
            h = np.full(L, np.uint64(n), dtype=np.uint64)
            for k in range(n):
                h = h * _PRIME + a[k : k + L]
            ok = (sep_cum[n : n + L] - sep_cum[:L]) == 0
            h = h[ok] * _MIX
            h ^= h >> np.uint64(29)
            rows.append(doc[:L][ok])
            cols.append((h % np.uint64(n_features)).astype(np.int64))
    return np.concatenate(rows), np.concatenate(cols)


def char_ngram_features(
    texts: Sequence[str | None],
    n_features: int = N_HASH_FEATURES,
    ngram_range: tuple[int, int] = (2, 4),
    max_chars: int = 1000,
):
    """Sparse CSR ``(n, n_features)`` L2-normalised hashed char n-gram counts.

    The normalised text (:func:`normalize_prompt`, first ``max_chars``
    characters) is padded with one space each side, and every character
    n-gram, ``ngram_range`` inclusive, is hashed (64-bit polynomial hash, fixed:
    stable across processes and versions) into ``n_features`` buckets.
    Vectorised with numpy: some 10^4 prompts/s.
    """
    import scipy.sparse as sp

    lo, hi = ngram_range
    n = len(texts)
    parts = []
    # normalise a bounded prefix (twice the kept length: NFKC and whitespace folding change lengths), so a
    # 100 kB pasted document costs no more than a short prompt
    normed = [normalize_prompt(t[: 2 * max_chars] if isinstance(t, str) else t)[:max_chars].replace("\x00", " ") for t in texts]
    for s in range(0, n, _CHUNK):
        chunk = normed[s : s + _CHUNK]
        r, c = _hash_chunk([" " + t + " " for t in chunk], n_features, lo, hi)
        m = sp.csr_matrix(
            (np.ones(len(r), dtype=np.float32), (r, c)), shape=(len(chunk), n_features), dtype=np.float32
        )
        m.sum_duplicates()
        parts.append(m)
    X = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n_features), dtype=np.float32)
    # empty texts (just the padding) have no features
    empty = np.array([not t for t in normed], dtype=bool)
    if empty.any():
        X = sp.diags((~empty).astype(np.float32)) @ X
        X.eliminate_zeros()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return (sp.diags(1.0 / norms).astype(np.float32) @ X).tocsr()


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
