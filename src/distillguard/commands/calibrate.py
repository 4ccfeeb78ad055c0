"""``distillguard calibrate``: fit the fusion weights on labelled reference traffic."""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer


def calibrate(
    events: List[Path] = typer.Argument(..., help="Labelled reference traffic (any ingest format)."),
    labels: Path = typer.Option(..., "--labels", help="Parquet with account_id and is_attack."),
    out: Path = typer.Option(..., "--out", help="Where to write the fitted model YAML."),
    accounts: Optional[Path] = typer.Option(None, "--accounts", help="Account metadata file."),
    target_fpr: float = typer.Option(0.001, "--target-fpr", help="Benign FPR at the challenge threshold (risk 0.5)."),
    c: float = typer.Option(1.0, "--C", help="Inverse L2 regularisation strength."),
    evasion_copies: int = typer.Option(1, "--evasion-copies", min=0,
                                       help="Copies of each attack account with its loudest detector weakened (0: none)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Fit the logistic fusion and place its operating point at a target benign FPR."""
    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.metrics import roc_auc_score

    from distillguard.errors import UsageError
    from distillguard.ingest import ingest_files
    from distillguard.scan import analyse, store_inputs
    from distillguard.score.fusion import FusionModel, shift_to_operating_point
    from distillguard.store import EventStore

    if not 0 < target_fpr < 1:
        raise UsageError("--target-fpr must lie between 0 and 1")
    try:
        lab = pq.read_table(labels, columns=["account_id", "is_attack"]).to_pylist()
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise UsageError(f"cannot read labels {labels}: {str(exc).splitlines()[0]}") from exc
    truth = {r["account_id"]: bool(r["is_attack"]) for r in lab}
    with tempfile.TemporaryDirectory(prefix="distillguard-") as tmp, EventStore(Path(tmp) / "cal.duckdb") as store:
        ingest_files([str(p) for p in events], store, quarantine_path=Path(tmp) / "q.jsonl",
                     accounts=str(accounts) if accounts else None, progress=not quiet)
        an, _ = analyse(*store_inputs(store))
    ev = an.evidence
    y = np.array([truth.get(a, False) for a in ev.account_ids])
    if y.all() or not y.any():
        raise UsageError("calibration needs both attack and benign accounts in the labels")
    model = FusionModel.fit(ev, y, C=c, evasion_copies=evasion_copies)
    fpr = shift_to_operating_point(model, ev, ~y, target_fpr)
    risk = model.risk(ev)
    model.provenance = {
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": [p.name for p in events],
        "accounts": int(len(y)),
        "attack_accounts": int(y.sum()),
        "target_fpr": target_fpr,
        "benign_fpr_at_0.5": round(fpr, 6),
        "recall_at_0.5": round(float(np.mean(risk[y] >= 0.5)), 4),
        "train_roc_auc": round(float(roc_auc_score(y, risk)), 4),
        "C": c,
        "evasion_copies": evasion_copies,
    }
    out.write_text(model.to_yaml())
    print(json.dumps(model.provenance))


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
