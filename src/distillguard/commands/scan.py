"""``distillguard scan``: ingest, detect, decide, and write the results."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import typer

from distillguard.limits import DEFAULT_MEMORY_LIMIT
from distillguard.subject import OPTION_HELP as SUBJECT_HELP, use_option as use_subject


def scan(
    events: List[Path] = typer.Argument(..., help="Event files or folders (JSONL, CSV, Parquet, OTLP, LiteLLM, OpenAI logs)."),
    out: Path = typer.Option(..., "--out", help="Folder for accounts.parquet, campaigns.json, report.html, quarantine.jsonl."),
    accounts: Optional[Path] = typer.Option(None, "--accounts", help="Account metadata file."),
    db: Optional[Path] = typer.Option(None, "--db", help="DuckDB store to ingest into and keep results in (default: a temporary one)."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML (default: the packaged policy)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Fusion model YAML (default: the packaged calibration)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Force the input format instead of detecting it."),
    intel_key: Optional[Path] = typer.Option(None, "--intel-key", help="Consortium key file: match imported threat intelligence (else $DISTILLGUARD_INTEL_KEY)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of a table."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (default) or spark (needs the spark extra and Java 17; docs/spark.md)."),
    spark_master: Optional[str] = typer.Option(None, "--spark-master", help="Spark master URL with --engine spark (default: local[*], or spark-submit's)."),
    memory_limit: str = typer.Option(DEFAULT_MEMORY_LIMIT, "--memory-limit", help="DuckDB's memory for the store; beyond it DuckDB spills to disk."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="redacted (default), full, sampled or none: what is stored of prompts and responses (the policy's store.prompts)."),
    identifier_key: Optional[Path] = typer.Option(None, "--identifier-key", help="Key file for store.identifiers: hashed (64 hex)."),
    db_key_file: Optional[Path] = typer.Option(None, "--db-key-file", help="Encrypt the store at rest with this key (docs/privacy.md)."),
    subject: Optional[str] = typer.Option(None, "--subject", help=SUBJECT_HELP),
) -> None:
    """Scan request logs for distillation campaigns and decide an action per account."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from distillguard.errors import UsageError
    from distillguard.ingest import ingest_files
    from distillguard.report import store_results, write_outputs
    from distillguard.audit import analyst_overrides, confirmed_indicators, matches_dismissed
    from distillguard.intel import resolve_key
    from distillguard.scan import intel_matcher, run_scan, store_inputs
    from distillguard.score.fusion import FusionModel
    from distillguard.privacy import StorePrivacy
    from distillguard.score.policy import Policy
    from distillguard.store import EventStore, memory_errors_as_usage

    use_subject(subject)
    if engine not in ("duckdb", "spark"):
        raise UsageError(f"unknown engine {engine!r} (choose duckdb or spark)")
    pol = Policy.load(policy)
    privacy = StorePrivacy.from_policy(pol.store, prompts=prompts, identifier_key=identifier_key)
    fusion = FusionModel.load(model)
    out.mkdir(parents=True, exist_ok=True)
    err = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="distillguard-") as tmp, memory_errors_as_usage(memory_limit):
        store = EventStore(db if db else Path(tmp) / "scan.duckdb", memory_limit=memory_limit, privacy=privacy, scratch=not db,
                           db_key_file=db_key_file)
        with store:
            t0 = time.perf_counter()
            if engine == "spark":  # events read and validated by Spark; the store keeps results only
                from distillguard.engines.spark import scan_inputs

                inputs, counts = scan_inputs(events, out / "quarantine.jsonl", accounts, fmt, spark_master, tmp, not quiet)
            else:
                counts = ingest_files(
                    [str(p) for p in events], store, quarantine_path=out / "quarantine.jsonl", fmt=fmt,
                    accounts=str(accounts) if accounts else None, progress=not quiet,
                )
                inputs = store_inputs(store)
            ingest_s = time.perf_counter() - t0
            show = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, disable=quiet)
            with show:
                feedback = analyst_overrides(store)  # the analysts' decisions feed back into policy
                dismissed = feedback.dismissed_campaign_member_sets
                result = run_scan(
                    *inputs, pol.with_allowlist(feedback.allow_accounts, feedback.allow_orgs), fusion, progress=show,
                    match_intel=intel_matcher(store, resolve_key(intel_key), confirmed_indicators(store)),
                    is_dismissed=(lambda members: matches_dismissed(members, dismissed)) if dismissed else None,
                    cleared=feedback.allow_accounts.union(*dismissed),
                )
            summary = counts.as_dict()
            t0 = time.perf_counter()
            paths = write_outputs(result, out, summary)
            if db:
                store_results(result, store)
                if privacy.retention_days:
                    from distillguard.erasure import retain

                    retain(store, privacy.retention_days)
            result.timings = {"ingest": round(ingest_s, 3), **result.timings, "outputs": round(time.perf_counter() - t0, 3)}
    actions = {}
    for a in result.accounts.column("action").to_pylist():
        actions[a] = actions.get(a, 0) + 1
    report = {
        "ingest": summary,
        "accounts": result.accounts.num_rows,
        "campaigns": len(result.campaigns),
        "actions": actions,
        "outputs": {k: str(v) for k, v in paths.items()} | {"quarantine": str(out / "quarantine.jsonl")},
        "timings_s": result.timings,
    }
    if as_json:
        print(json.dumps(report))
        return
    console = Console()
    console.print(
        f"[bold]{summary.get('accepted', 0)}[/] events accepted, {summary.get('quarantined', 0)} quarantined; "
        f"{result.accounts.num_rows} accounts, [bold red]{len(result.campaigns)}[/] campaigns"
    )
    console.print("actions: " + ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))
    console.print(f"report: [link=file://{paths['report'].resolve()}]{paths['report']}[/link]")
    console.print(f"accounts: {paths['accounts']}  campaigns: {paths['campaigns']}")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
