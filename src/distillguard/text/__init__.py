"""Text utilities shared by the detectors.

- :func:`embed`: the static sentence-embedding model shipped in the package
  (model2vec distilled from all-MiniLM-L6-v2; no torch, no download).
- :func:`normalize_prompt`, :func:`template_skeleton`: normalisation and
  template placeholders.
- :func:`minhash_signatures`, :func:`band_keys`, :func:`make_lsh`: MinHash of
  template skeletons.
- :func:`char_ngram_features`, :func:`script_of`: language-agnostic lexical
  features.
"""
from .embedding import EMBED_DIM, MODEL_DIR, embed, load_model
from .features import N_HASH_FEATURES, char_ngram_features, script_of
from .minhash import (
    DEFAULT_NUM_PERM,
    band_keys,
    band_keys_many,
    band_key_array,
    jaccard_estimate,
    make_lsh,
    minhash_signatures,
    shingles,
    to_lean_minhash,
)
from .normalize import PLACEHOLDERS, normalize_prompt, template_skeleton

__all__ = [
    "EMBED_DIM",
    "MODEL_DIR",
    "embed",
    "load_model",
    "N_HASH_FEATURES",
    "char_ngram_features",
    "script_of",
    "DEFAULT_NUM_PERM",
    "band_keys",
    "band_keys_many",
    "band_key_array",
    "jaccard_estimate",
    "make_lsh",
    "minhash_signatures",
    "shingles",
    "to_lean_minhash",
    "PLACEHOLDERS",
    "normalize_prompt",
    "template_skeleton",
]
