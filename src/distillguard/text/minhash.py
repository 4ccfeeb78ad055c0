"""MinHash signatures of prompt templates.

Prompts are reduced to their :func:`~distillguard.text.normalize.template_skeleton`,
cut into token shingles (words; every CJK/Kana/Hangul character is its own
token, so Chinese or Japanese templates shingle too), and MinHashed with
64-bit affine permutations (``a*h + b mod 2^64`` with odd ``a``, a bijection,
as datasketch 2's "affine64" scheme) vectorised in numpy: ~2*10^4 prompts/s.
Signatures plug into ``datasketch.MinHashLSH`` via :func:`to_lean_minhash` /
:func:`make_lsh`; they are stable across processes and versions (fixed seed).
"""
from __future__ import annotations

import binascii

import re
import zlib
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .normalize import template_skeleton

__all__ = [
    "DEFAULT_NUM_PERM",
    "shingles",
    "minhash_signatures",
    "band_keys",
    "band_keys_many",
    "band_key_array",
    "to_lean_minhash",
    "make_lsh",
    "jaccard_estimate",
]

DEFAULT_NUM_PERM = 64
_SEED = 1
_MAX_HASH = np.uint64(np.iinfo(np.uint64).max)
_TEXT_BLOCK = 20_000
_TOKEN = re.compile(
    r"<\w+>|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+|[^\w\s]",
    re.UNICODE,
)


def shingles(skeleton: str, k: int = 3) -> list[bytes]:
    """Token k-shingles (as UTF-8 bytes) of an already-normalised text."""
    toks = _TOKEN.findall(skeleton)
    if not toks:
        return []
    if len(toks) <= k:
        return [" ".join(toks).encode("utf-8")]
    return [" ".join(toks[i : i + k]).encode("utf-8") for i in range(len(toks) - k + 1)]


@lru_cache(maxsize=8)
def _perms(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = gen.randint(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def _h64(s: bytes) -> int:
    """A 64-bit shingle hash, stable across processes: two seeded CRC-32s (C speed).

    MinHash needs a well-spread hash, not a cryptographic one; a keyed hash is
    applied where values leave the machine (intel export).
    """
    return (zlib.crc32(s) << 32) | zlib.crc32(s, 0x9E3779B9)


def minhash_signatures(
    texts: Sequence[str | None],
    num_perm: int = DEFAULT_NUM_PERM,
    k: int = 3,
    skeletonize: bool = True,
    seed: int = _SEED,
) -> np.ndarray:
    """``(n, num_perm)`` uint64 MinHash values of the texts' template shingles.

    Empty texts get the all-max signature (matches only other empty texts).
    Each distinct text is skeletonised once and each distinct skeleton hashed
    once: a campaign's prompts differ mostly in the slots the skeleton blanks.
    """
    form_of: dict[str, int] = {}  # skeleton (or text) -> row of its signature
    seen: dict = {}  # text -> the same row
    which = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        j = seen.get(t)
        if j is None:
            j = seen[t] = form_of.setdefault(template_skeleton(t) if skeletonize else (t or ""), len(form_of))
        which[i] = j
    return _signatures(list(form_of), num_perm, k, seed)[which]


def _signatures(forms: list[str], num_perm: int, k: int, seed: int) -> np.ndarray:
    """MinHash of each already-skeletonised text's token shingles."""
    a, b = _perms(num_perm, seed)
    n = len(forms)
    out = np.full((n, num_perm), _MAX_HASH, dtype=np.uint64)
    # Texts in blocks, so the Python lists of shingle hashes stay small however many texts there are.
    for lo in range(0, n, _TEXT_BLOCK):
        hashes: list[int] = []
        owners: list[int] = []
        for i in range(lo, min(n, lo + _TEXT_BLOCK)):
            sh = set(shingles(forms[i], k))
            hashes.extend(_h64(s) for s in sh)
            owners.extend([i] * len(sh))
        if not hashes:
            continue
        hv = np.asarray(hashes, dtype=np.uint64)
        own = np.asarray(owners, dtype=np.int64)  # ascending: each text's shingles are contiguous
        del hashes, owners
        # chunk to bound memory: (chunk, num_perm) uint64
        chunk = max(1, 2_000_000 // num_perm)
        for s in range(0, len(hv), chunk):
            h, o = hv[s : s + chunk, None], own[s : s + chunk]
            with np.errstate(over="ignore"):
                ph = h * a[None, :] + b[None, :]  # wraps modulo 2^64
            starts = np.flatnonzero(np.r_[True, o[1:] != o[:-1]])
            rows = o[starts]  # a text cut by a chunk boundary takes the smaller of both chunks' minima
            out[rows] = np.minimum(out[rows], np.minimum.reduceat(ph, starts, axis=0))
    return out


def band_keys(signature: np.ndarray, bands: int = 16) -> list[str]:
    """LSH band keys ``"b{i}:{hex}"`` of one signature (rows = num_perm / bands).

    Two prompts share a key with probability ~ 1-(1-J^r)^b for Jaccard J. The
    keys are what ``campaign_indicators`` stores for templates.
    """
    return band_keys_many(np.asarray(signature, dtype=np.uint64)[None, :], bands)[0]


def _folded(signatures: np.ndarray, bands: int) -> np.ndarray:
    """``(n, bands)`` uint64: each band's values folded into one key by a multiply-xor mix (wrapping)."""
    sig = np.asarray(signatures, dtype=np.uint64)
    n, num_perm = sig.shape
    r = num_perm // bands
    folded = np.zeros((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(r):
            folded = (folded ^ sig[:, j : bands * r : r]) * np.uint64(0x9E3779B97F4A7C15)
            folded ^= folded >> np.uint64(29)
    return folded


def band_keys_many(signatures: np.ndarray, bands: int = 16) -> list[list[str]]:
    """:func:`band_keys` of every row, vectorised."""
    return [[f"b{i}:{v:016x}" for i, v in enumerate(row)] for row in _folded(signatures, bands).tolist()]


def band_key_array(signatures: np.ndarray, bands: int = 16) -> pa.Array:
    """:func:`band_keys_many` flattened row by row into one Arrow string array, built
    without a Python string per key (millions of keys at scale)."""
    folded = _folded(signatures, bands)
    n = folded.size
    hexed = binascii.hexlify(folded.astype(">u8").tobytes())
    digits = pa.Array.from_buffers(pa.binary(16), n, [None, pa.py_buffer(hexed)]).cast(pa.binary()).cast(pa.string())
    labels = pa.array([f"b{i}" for i in range(bands)], pa.string())
    prefix = labels.take(pa.array(np.tile(np.arange(bands), len(folded))))
    return pc.binary_join_element_wise(prefix, digits, ":")


def to_lean_minhash(signature: np.ndarray, seed: int = _SEED):
    """A ``datasketch.LeanMinHash`` for one signature (for ``MinHashLSH``)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=np.asarray(signature, dtype=np.uint64), scheme="affine64")


def make_lsh(signatures: np.ndarray, keys: Iterable, threshold: float = 0.5):
    """Build a ``datasketch.MinHashLSH`` over ``signatures`` keyed by ``keys``."""
    from datasketch import MinHashLSH

    sigs = np.asarray(signatures, dtype=np.uint64)
    lsh = MinHashLSH(threshold=threshold, num_perm=sigs.shape[1])
    with lsh.insertion_session() as sess:
        for key, sig in zip(keys, sigs):
            sess.insert(key, to_lean_minhash(sig))
    return lsh


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.mean(np.asarray(sig_a) == np.asarray(sig_b)))
