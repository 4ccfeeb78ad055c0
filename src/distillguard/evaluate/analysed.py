"""A labelled world analysed exactly as a scan would, for ``distillguard calibrate``
(:func:`distillguard.score.calibration.fit_worlds` fits across such worlds)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from distillguard.score.calibration import LabelledWorld

__all__ = ["analyse_world"]


def analyse_world(events: list[Path], labels: Path, accounts: Path | None = None, policy=None, name: str = "",
                  progress: bool = False) -> LabelledWorld:
    """Ingest one world into a temporary store and analyse it as a scan would."""
    import pyarrow.parquet as pq

    from distillguard.errors import UsageError
    from distillguard.ingest import ingest_files
    from distillguard.scan import analyse, store_inputs
    from distillguard.store import EventStore

    try:
        lab = pq.read_table(labels, columns=["account_id", "is_attack"]).to_pylist()
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise UsageError(f"cannot read labels {labels}: {str(exc).splitlines()[0]}") from exc
    truth = {r["account_id"]: bool(r["is_attack"]) for r in lab}
    with tempfile.TemporaryDirectory(prefix="distillguard-") as tmp, EventStore(Path(tmp) / "cal.duckdb") as store:
        ingest_files([str(p) for p in events], store, quarantine_path=Path(tmp) / "q.jsonl",
                     accounts=str(accounts) if accounts else None, progress=progress)
        an, _ = analyse(*store_inputs(store), policy=policy)
    y = np.array([truth.get(a, False) for a in an.evidence.account_ids])
    return LabelledWorld(name or str(events[0]), an.evidence, y, an.baselines)
