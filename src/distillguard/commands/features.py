"""``distillguard features``: the per-account behaviour features of event files, as Parquet."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from distillguard.limits import DEFAULT_MEMORY_LIMIT
from distillguard.subject import OPTION_HELP as SUBJECT_HELP, use_option as use_subject


def features(
    events: List[Path] = typer.Argument(..., help="Event files or folders (JSONL, CSV, Parquet, OTLP, LiteLLM, OpenAI logs)."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write: one row per account."),
    accounts: Optional[Path] = typer.Option(None, "--accounts", help="Account metadata file: its accounts without events get a row too (n_events 0)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Force the input format instead of detecting it."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML whose store section (prompt redaction, identifiers) applies, as in scan (default: the packaged policy)."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where bad records go (default: OUT with .quarantine.jsonl)."),
    memory_limit: str = typer.Option(DEFAULT_MEMORY_LIMIT, "--memory-limit", help="DuckDB's memory; beyond it DuckDB spills to disk."),
    subject: Optional[str] = typer.Option(None, "--subject", help=SUBJECT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of a line."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Per-account behaviour features (docs/features.md), the columns the scan's detectors and the service read."""
    import pyarrow.parquet as pq

    from distillguard.errors import UsageError
    from distillguard.features import feature_table
    from distillguard.ingest import ingest_files
    from distillguard.privacy import StorePrivacy
    from distillguard.score.policy import Policy
    from distillguard.store import EventStore, memory_errors_as_usage

    use_subject(subject)
    if out.suffix.lower() != ".parquet":
        raise UsageError(f"--out {out}: must name a .parquet file")
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder, not a file")
    if accounts is not None and not accounts.is_file():
        raise UsageError(f"--accounts {accounts}: no such file")
    privacy = StorePrivacy.from_policy(Policy.load(policy).store)  # the rows the scan and the service see
    quarantine = quarantine or out.with_suffix(".quarantine.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="distillguard-") as tmp, memory_errors_as_usage(memory_limit), \
            EventStore(Path(tmp) / "features.duckdb", memory_limit=memory_limit, privacy=privacy) as store:
        counts = ingest_files([str(p) for p in events], store, quarantine_path=quarantine, fmt=fmt,
                              accounts=str(accounts) if accounts else None, progress=not quiet)
        meta = store.con.sql("SELECT account_id FROM accounts").to_arrow_table() if accounts else None
        table = feature_table(store.ibis().table("events"), meta)
    pq.write_table(table, out)
    summary = {"ingest": counts.as_dict(), "accounts": table.num_rows, "columns": table.num_columns,
               "out": str(out), "quarantine": str(quarantine)}
    if as_json:
        print(json.dumps(summary))
    else:
        typer.echo(f"{counts.accepted} events, {counts.quarantined} quarantined -> {table.num_rows} accounts x "
                   f"{table.num_columns - 1} features in {out}")


def register(app: typer.Typer) -> None:
    app.command("features")(features)
