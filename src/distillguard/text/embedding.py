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
MAX_CHARS = 2000
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


def embed(texts: Sequence[str], batch_size: int = 2048) -> np.ndarray:
    """Embed ``texts`` into an ``(n, EMBED_DIM)`` float32 array of unit rows.

    ``None`` and empty strings give a zero row (cosine 0 with everything).
    Deterministic; no network; about 10^4 or more short prompts/s on one core.
    """
    texts = list(texts)
    out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
    if not texts:
        return out
    idx = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    if not idx:
        return out
    model = load_model()
    batch = [texts[i][:MAX_CHARS] for i in idx]
    vecs = model.encode(
        batch,
        max_length=MAX_TOKENS,
        batch_size=batch_size,
        use_multiprocessing=False,
        show_progress_bar=False,
    ).astype(np.float32, copy=False)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    np.divide(vecs, norms, out=vecs, where=norms > 0)
    vecs[~np.isfinite(vecs).all(axis=1)] = 0.0
    out[np.asarray(idx)] = vecs
    return out
