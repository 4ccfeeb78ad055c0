"""Baseline detectors that distillguard is measured against (issue 4).

Each baseline reads an events Parquet file (or a distillguard DuckDB store)
and returns a per-account risk in 0..1 (higher = more likely extraction):

- :func:`volume_risk`: request count and output tokens (volume threshold);
- :func:`prada_risk`: PRADA-style per-account test (Juuti et al. 2019,
  arXiv:1805.02628): Shapiro-Wilk W of the stream of minimum distances from
  each new query to the account's previous queries, risk = 1 - W;
- :func:`mmd_risk`: per-account MMD test of the account's query embeddings
  against a benign reference distribution (RBF kernel, median-heuristic
  bandwidth; the idea of arXiv 2606.05725).

Only numpy, scipy, scikit-learn and duckdb are used, plus
``distillguard.text.embed`` for the embeddings. Import from a script in
``benchmarks/`` as ``from baselines import ...``. See docs/evaluation.md.
"""
from .events import AccountEmbeddings, AccountSamples, BaselineScores, embed_samples, read_volume, sample_prompts
from .mmd import mmd_risk, rbf_median_bandwidth
from .prada import min_distance_stream, prada_risk
from .volume import volume_risk

__all__ = [
    "AccountEmbeddings",
    "AccountSamples",
    "BaselineScores",
    "embed_samples",
    "min_distance_stream",
    "mmd_risk",
    "prada_risk",
    "rbf_median_bandwidth",
    "read_volume",
    "sample_prompts",
    "volume_risk",
]
