"""The static sentence-embedding model shipped inside the package.

The model (``model/``) is a model2vec static model distilled from
sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0); see ``model/PROVENANCE.md``
and ``scripts/build_embedding_model.py``. Loading reads package files only,
with model2vec (numpy + tokenizers); nothing is downloaded and torch is never
imported.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["MODEL_DIR", "EMBED_DIM", "embed", "load_model"]

MODEL_DIR = Path(__file__).resolve().parent / "model"
EMBED_DIM = 128
#: Characters of a prompt that are embedded; the rest is ignored (speed).
MAX_CHARS = 1000
#: Tokens per prompt the static model averages over.
MAX_TOKENS = 256

_lock = threading.Lock()


@lru_cache(maxsize=1)
def load_model():
    """Load (once per process) and return the packaged ``model2vec.StaticModel``."""
    from model2vec import StaticModel

    needed = ("config.json", "model.safetensors", "tokenizer.json")
    missing = [n for n in needed if not (MODEL_DIR / n).is_file()]
    if missing:  # never fall back to a hub download
        raise FileNotFoundError(
            f"distillguard's embedding model is incomplete in {MODEL_DIR}: missing {missing}"
        )
    with _lock:
        return StaticModel.from_pretrained(MODEL_DIR, normalize=True, force_download=False)


@lru_cache(maxsize=1)
def _tables():
    """float32 token-embedding matrix, the tokenizer and the id to drop ([UNK])."""
    model = load_model()
    if model.weights is not None or model.token_mapping is not None:  # pragma: no cover - not our model
        return None
    return np.asarray(model.embedding, dtype=np.float32), model.tokenizer, model.unk_token_id


_WORD_CACHE: dict[str, tuple[np.ndarray, int]] = {}
_WORD_CACHE_MAX = 500_000


def _word_vectors(words: list[str]) -> None:
    """Fill the cache: per whitespace-separated chunk, the sum of its token vectors and count."""
    emb, tok, unk = _tables()
    if len(_WORD_CACHE) + len(words) > _WORD_CACHE_MAX:
        _WORD_CACHE.clear()
    encs = tok.encode_batch_fast(words, add_special_tokens=False)
    for w, e in zip(words, encs):
        ids = [i for i in e.ids if i != unk]
        if ids:
            _WORD_CACHE[w] = (emb[ids].sum(axis=0), len(ids))
        else:
            _WORD_CACHE[w] = (np.zeros(emb.shape[1], dtype=np.float32), 0)


def _encode_fast(texts: list[str]) -> np.ndarray:
    """Mean of token vectors, as ``StaticModel.encode``, computed per distinct word.

    The BERT normaliser and pre-tokeniser act on each whitespace-separated
    chunk independently, so tokenising distinct chunks once (cached) and
    pooling with a sparse product gives the same mean as tokenising every
    text, at a fraction of the cost.
    """
    import scipy.sparse as sp

    local: dict[str, int] = {}
    indptr = [0]
    indices: list[int] = []
    for t in texts:
        for w in t.split():
            j = local.get(w)
            if j is None:
                j = local[w] = len(local)
            indices.append(j)
        indptr.append(len(indices))
    words = list(local)
    missing = [w for w in words if w not in _WORD_CACHE]
    if missing:
        _word_vectors(missing)
    dim = _tables()[0].shape[1]
    W = np.empty((len(words), dim), dtype=np.float32)
    C = np.empty(len(words), dtype=np.float32)
    for j, w in enumerate(words):
        W[j], C[j] = _WORD_CACHE[w]
    M = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
        shape=(len(texts), len(words)),
    )
    out = np.asarray(M @ W, dtype=np.float32)
    counts = M @ C
    nz = counts > 0
    out[nz] /= counts[nz, None]
    out[~nz] = 0.0
    return out


def embed(texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
    """Embed ``texts`` into an ``(n, EMBED_DIM)`` float32 array of unit rows.

    ``None`` and empty strings (and texts made only of unknown tokens) give a
    zero row (cosine 0 with everything). Deterministic; no network. The
    first ``MAX_CHARS`` characters are used.
    """
    texts = list(texts)
    out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
    if not texts:
        return out
    idx = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    if not idx:
        return out
    batch = [texts[i][:MAX_CHARS] for i in idx]
    if _tables() is not None:
        vecs = np.concatenate([_encode_fast(batch[s : s + batch_size]) for s in range(0, len(batch), batch_size)])
    else:  # pragma: no cover - generic model2vec path
        vecs = load_model().encode(
            batch, max_length=MAX_TOKENS, batch_size=batch_size, use_multiprocessing=False
        ).astype(np.float32, copy=False)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    np.divide(vecs, norms, out=vecs, where=norms > 0)
    vecs[~np.isfinite(vecs).all(axis=1)] = 0.0
    out[np.asarray(idx)] = vecs
    return out
