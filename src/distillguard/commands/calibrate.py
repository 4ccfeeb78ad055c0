"""``distillguard calibrate``: fit the fusion weights on labelled reference traffic."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer


def calibrate(
    events: List[Path] = typer.Argument(None, help="Labelled reference traffic (any ingest format); or use --world."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Parquet with account_id and is_attack (with EVENTS)."),
    out: Path = typer.Option(..., "--out", help="Where to write the fitted model YAML."),
    accounts: Optional[Path] = typer.Option(None, "--accounts", help="Account metadata file (with EVENTS)."),
    world: List[Path] = typer.Option([], "--world", help="A labelled world folder (events.parquet, accounts.parquet, "
                                     "labels.parquet, as `simulate --randomize` writes); repeatable: each is scored "
                                     "against its own population and one model is fitted over all."),
    target_fpr: float = typer.Option(0.001, "--target-fpr", help="Benign FPR at the challenge threshold (risk 0.5)."),
    c: float = typer.Option(1.0, "--C", help="Inverse L2 regularisation strength."),
    evasion_copies: int = typer.Option(1, "--evasion-copies", min=0,
                                       help="Copies of each attack account with its loudest detector weakened (0: none)."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML whose population settings score the "
                                          "worlds (default: the packaged policy)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Fit the logistic fusion (across worlds) and place its operating point at a target benign FPR."""
    from distillguard.errors import UsageError
    from distillguard.evaluate.analysed import analyse_world
    from distillguard.score.calibration import fit_worlds
    from distillguard.score.policy import Policy

    if not 0 < target_fpr < 1:
        raise UsageError("--target-fpr must lie between 0 and 1")
    if bool(events) == bool(world):
        raise UsageError("give either EVENTS with --labels, or one or more --world folders")
    pol = Policy.load(policy) if policy else None
    if events:
        if labels is None:
            raise UsageError("EVENTS need --labels")
        sets = [analyse_world(events, labels, accounts, pol, progress=not quiet)]
    else:
        sets = []
        for d in world:
            if not (d / "labels.parquet").is_file():
                raise UsageError(f"not a labelled world folder (no labels.parquet): {d}")
            ev = d / "events.parquet" if (d / "events.parquet").exists() else d / "events.jsonl"
            acc = d / "accounts.parquet"
            sets.append(analyse_world([ev], d / "labels.parquet", acc if acc.exists() else None, pol, name=d.name))
            if not quiet:
                print(f"analysed {d.name}: {len(sets[-1].y)} accounts", flush=True)
    model, figures = fit_worlds(sets, target_fpr=target_fpr, C=c, evasion_copies=evasion_copies)
    model.provenance = {"fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "data": [p.name for p in events] if events else [d.name for d in world], **figures}
    out.write_text(model.to_yaml())
    print(json.dumps({k: v for k, v in model.provenance.items() if k != "worlds"}))


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
