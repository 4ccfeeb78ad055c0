"""Reading events for the baselines: per-account volume and prompt samples."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "AccountSamples",
    "AccountEmbeddings",
    "BaselineScores",
    "connect_events",
    "read_volume",
    "sample_prompts",
    "embed_samples",
]

EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class BaselineScores:
    """A baseline's verdict: ``risk[i]`` (0..1) for ``account_id[i]``."""

    name: str
    account_id: np.ndarray  # object (str)
    risk: np.ndarray  # float64 in 0..1
    statistic: np.ndarray | None = None  # the raw test statistic, when there is one
    n_used: np.ndarray | None = None  # queries the test used per account

    def as_dict(self) -> dict[str, float]:
        return {str(a): float(r) for a, r in zip(self.account_id, self.risk)}


@dataclass(frozen=True)
class AccountSamples:
    """Up to ``k`` prompts per account, in time order; account ``i`` owns
    ``texts[offsets[i]:offsets[i+1]]``."""

    account_id: np.ndarray  # object (str), unique
    offsets: np.ndarray  # int64, len = accounts + 1
    texts: list[str]


@dataclass(frozen=True)
class AccountEmbeddings:
    """Embeddings of :class:`AccountSamples`: rows ``offsets[i]:offsets[i+1]``
    of ``vectors`` belong to ``account_id[i]``, in time order."""

    account_id: np.ndarray
    offsets: np.ndarray
    vectors: np.ndarray  # float32 (n, d), unit rows

    def of(self, i: int) -> np.ndarray:
        return self.vectors[self.offsets[i] : self.offsets[i + 1]]

    def __len__(self) -> int:
        return int(self.account_id.size)


def _lit(s: str) -> str:
    """A SQL string literal (DuckDB cannot prepare DDL parameters)."""
    return "'" + s.replace("'", "''") + "'"


def connect_events(path: str | Path, threads: int = 2):
    """A DuckDB connection with a view ``ev`` over the events.

    ``path`` is a Parquet file or glob, or a distillguard DuckDB store (``.duckdb``
    / ``.db``) whose ``events`` table is used.
    """
    import duckdb

    p = str(path)
    con = duckdb.connect()
    con.execute(f"SET threads={int(threads)}")
    if p.endswith((".duckdb", ".db")):
        if not Path(p).is_file():
            raise FileNotFoundError(p)
        con.execute(f"ATTACH {_lit(p)} AS src (READ_ONLY)")
        con.execute("CREATE VIEW ev AS SELECT * FROM src.events")
    else:
        if "*" not in p and not Path(p).exists():
            raise FileNotFoundError(p)
        con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet({_lit(p)})")
    return con


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(account_id, n_events, output_tokens)`` per account (nulls count 0)."""
    con = connect_events(path)
    try:
        rows = con.execute(
            "SELECT account_id, count(*)::BIGINT, coalesce(sum(output_tokens), 0)::DOUBLE "
            "FROM ev WHERE account_id IS NOT NULL GROUP BY account_id ORDER BY account_id"
        ).fetchall()
    finally:
        con.close()
    ids = np.array([r[0] for r in rows], dtype=object)
    n = np.array([r[1] for r in rows], dtype=np.float64)
    out = np.array([r[2] for r in rows], dtype=np.float64)
    return ids, n, out


def sample_prompts(path: str | Path, max_per_account: int = 64, seed: int = 0) -> AccountSamples:
    """A seeded random sample of at most ``max_per_account`` non-empty prompts
    per account, returned in time order (ties broken by event id)."""
    con = connect_events(path)
    try:
        rows = con.execute(
            """
            WITH p AS (
              SELECT account_id, ts, event_id, prompt,
                     row_number() OVER (PARTITION BY account_id
                                        ORDER BY hash(coalesce(event_id, '') || ?::VARCHAR), ts) AS rn
              FROM ev
              WHERE account_id IS NOT NULL AND prompt IS NOT NULL AND length(trim(prompt)) > 0
            )
            SELECT account_id, prompt FROM p WHERE rn <= ?
            ORDER BY account_id, ts, event_id
            """,
            [str(seed), int(max_per_account)],
        ).fetchall()
    finally:
        con.close()
    ids: list[str] = []
    offsets = [0]
    texts: list[str] = []
    prev = None
    for acc, prompt in rows:
        if acc != prev:
            if prev is not None:
                offsets.append(len(texts))
            ids.append(acc)
            prev = acc
        texts.append(prompt)
    if ids:
        offsets.append(len(texts))
    return AccountSamples(np.array(ids, dtype=object), np.array(offsets, dtype=np.int64), texts)


def embed_samples(samples: AccountSamples, embed_fn: EmbedFn | None = None) -> AccountEmbeddings:
    """Embed every sampled prompt once (duplicates are embedded once).

    ``embed_fn`` defaults to :func:`distillguard.text.embed`.
    """
    if embed_fn is None:
        from distillguard.text import embed as embed_fn
    uniq: dict[str, int] = {}
    idx = np.empty(len(samples.texts), dtype=np.int64)
    for i, t in enumerate(samples.texts):
        idx[i] = uniq.setdefault(t, len(uniq))
    vecs = np.asarray(embed_fn(list(uniq)), dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(uniq):
        raise ValueError("embed_fn must return an (n, d) array")
    vectors = vecs[idx] if len(uniq) else np.zeros((0, vecs.shape[1] if vecs.ndim == 2 else 1), np.float32)
    return AccountEmbeddings(samples.account_id, samples.offsets, vectors)
