"""WordLlama's static token embedding (256-d), read from the files its wheel ships.

The ``wordllama`` package (MIT) ships ``weights/l2_supercat_256.safetensors``
(32,000 x 256 float16: token embeddings of the Llama-2 vocabulary, trained
for sentence similarity) and the Llama-2 tokenizer. Its own loader would
download files it does not find; this module reads only the two packaged
files (a missing one raises) and pools the way :func:`.embed` does
(:class:`.embedding.WordPool`). The vocabulary is case-sensitive with byte
fallback, so word forms and non-Latin scripts that MiniLM's vocabulary maps
to [UNK] still get vectors.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .embedding import MAX_CHARS, WordPool

__all__ = ["LLAMA_DIM", "embed_llama", "llama_model_files"]

LLAMA_DIM = 256
_WEIGHTS = "weights/l2_supercat_256.safetensors"
_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
#: Llama special tokens (<unk>, <s>, </s>): never pooled.
_SPECIAL_IDS = frozenset({0, 1, 2})


def llama_model_files() -> tuple[Path, Path]:
    """The packaged weights and tokenizer files (FileNotFoundError if either is missing)."""
    import importlib.util

    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the wordllama package is not installed (pinned in pyproject.toml)")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = root / _WEIGHTS, root / _TOKENIZER
    missing = [str(f) for f in files if not f.is_file()]
    if missing:  # never fall back to a download
        raise FileNotFoundError(f"wordllama's packaged model files are missing: {missing}")
    return files


@lru_cache(maxsize=1)
def _tables():
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    weights, tokenizer = llama_model_files()
    emb = load_file(str(weights))["embedding.weight"].astype(np.float32)
    tok = Tokenizer.from_file(str(tokenizer))
    tok.no_padding()
    tok.no_truncation()
    return emb, tok, _SPECIAL_IDS


_POOL = WordPool(_tables)


def embed_llama(texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
    """``(n, LLAMA_DIM)`` float32 unit rows (zero rows for empty/``None``); the first ``MAX_CHARS`` characters."""
    return _POOL.embed(texts, LLAMA_DIM, MAX_CHARS, batch_size)
