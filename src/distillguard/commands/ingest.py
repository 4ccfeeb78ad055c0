"""``distillguard ingest`` and ``distillguard stats``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from distillguard.limits import DEFAULT_MEMORY_LIMIT
from distillguard.subject import OPTION_HELP as SUBJECT_HELP, use_option as use_subject

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        files: List[Path] = typer.Argument(..., help="Event files or Parquet folders.", show_default=False),
        db: Path = typer.Option(Path("distillguard.duckdb"), "--db", help="The DuckDB store (created when missing)."),
        accounts: Optional[Path] = typer.Option(None, "--accounts", help="Account metadata (CSV, JSONL or Parquet)."),
        quarantine: Optional[Path] = typer.Option(
            None, "--quarantine", help="JSONL file for records that fail validation [default: <db>.quarantine.jsonl]."),
        fmt: Optional[str] = typer.Option(
            None, "--format", help="Force the format: jsonl, csv, parquet, otlp, litellm, openai."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON line of counts."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        memory_limit: str = typer.Option(DEFAULT_MEMORY_LIMIT, "--memory-limit", help="DuckDB's memory; beyond it DuckDB spills to disk."),
        policy: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML whose store: section says what is kept [default: the packaged policy]."),
        prompts: Optional[str] = typer.Option(None, "--prompts", help="redacted (default), full, sampled or none: what is stored of prompts and responses."),
        identifier_key: Optional[Path] = typer.Option(None, "--identifier-key", help="Key file for store.identifiers: hashed (64 hex)."),
        db_key_file: Optional[Path] = typer.Option(None, "--db-key-file", help="Encrypt the store at rest with this key (docs/privacy.md)."),
        subject: Optional[str] = typer.Option(None, "--subject", help=SUBJECT_HELP),
    ) -> None:
        """Validate and load request logs into the event store; bad records go to quarantine."""
        import json
        import sys

        from distillguard.ingest import ingest_files
        from distillguard.score.policy import store_privacy
        from distillguard.store import EventStore, memory_errors_as_usage

        use_subject(subject)
        qpath = quarantine if quarantine is not None else Path(str(db) + ".quarantine.jsonl")
        privacy = store_privacy(policy, prompts, identifier_key)
        with memory_errors_as_usage(memory_limit), EventStore(db, memory_limit=memory_limit, privacy=privacy,
                                                              db_key_file=db_key_file) as store:
            result = ingest_files(files, store, quarantine_path=qpath, fmt=fmt, accounts=accounts,
                                  progress=not quiet and not as_json)
        if as_json:
            print(json.dumps(result.as_dict()))
            return
        from rich.console import Console

        con = Console()
        con.print(f"read [bold]{result.read:,}[/] records: accepted [green]{result.accepted:,}[/], "
                  f"quarantined [yellow]{result.quarantined:,}[/], duplicates {result.duplicates:,}")
        if accounts is not None:
            con.print(f"accounts: {result.accounts:,} loaded, {result.accounts_quarantined:,} quarantined")
        if result.quarantined or result.accounts_quarantined:
            con.print(f"quarantine: {qpath}")
        con.print(f"store: {db}")
        sys.stdout.flush()

    @app.command("stats")
    def stats(
        db: Path = typer.Option(Path("distillguard.duckdb"), "--db", help="The DuckDB store."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        top: int = typer.Option(10, "--top", help="How many organisations and models to list."),
    ) -> None:
        """Summarise the event store: counts, time range, accounts, models, top organisations."""
        import json

        from distillguard.errors import UsageError
        from distillguard.ingest.stats import store_stats
        from distillguard.store import EventStore

        if not db.exists():
            raise UsageError(f"{db}: no such store")
        with EventStore(db, read_only=True) as store:
            s = store_stats(store, top=top)
        if as_json:
            print(json.dumps(s, default=str))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"distillguard store {db}", show_header=False)
        t.add_column("what")
        t.add_column("value")
        t.add_row("events", f"{s['events']:,}")
        t.add_row("accounts seen", f"{s['accounts_seen']:,}")
        t.add_row("accounts with metadata", f"{s['accounts_metadata']:,}")
        t.add_row("first event", str(s["first_ts"] or "-"))
        t.add_row("last event", str(s["last_ts"] or "-"))
        t.add_row("input tokens", f"{s['input_tokens']:,}")
        t.add_row("output tokens", f"{s['output_tokens']:,}")
        t.add_row("models", ", ".join(f"{m['model']} ({m['events']:,})" for m in s["models"]) or "-")
        t.add_row("top organisations", ", ".join(f"{o['org_id']} ({o['events']:,})" for o in s["top_orgs"]) or "-")
        Console().print(t)
