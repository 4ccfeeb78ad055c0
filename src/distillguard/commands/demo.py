"""``distillguard demo``: simulate traffic, scan it, evaluate the scan, say where the results are."""
from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the simulated traffic, the store and the results."),
    scale: float = typer.Option(0.25, "--scale", help="Simulator scale (1.0 is the default scenario's full size)."),
    seed: int = typer.Option(2026, "--seed"),
) -> None:
    """Run the main job end to end on the embedded DuckDB default."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from distillguard.evaluate import evaluate
    from distillguard.evaluate.render import render_table
    from distillguard.ingest import ingest_files
    from distillguard.report import store_results, write_outputs
    from distillguard.scan import run_scan, store_inputs
    from distillguard.sim import simulate
    from distillguard.store import EventStore

    console = Console()
    traffic, results, db = out / "traffic", out / "scan", out / "distillguard.duckdb"
    console.rule("1. simulate (holdout phrasing: text the detectors were never developed on)")
    simulate("default", scale=scale, seed=seed, out=traffic, fmt="parquet", family="holdout")
    console.rule("2. scan")
    db.unlink(missing_ok=True)
    with EventStore(db) as store:
        counts = ingest_files([str(traffic / "events.parquet")], store, quarantine_path=results / "quarantine.jsonl",
                              accounts=str(traffic / "accounts.parquet"))
        show = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console)
        with show:
            result = run_scan(*store_inputs(store), progress=show)
        paths = write_outputs(result, results, counts.as_dict())
        store_results(result, store)
    console.rule("3. evaluate against the simulator's ground truth")
    metrics = evaluate(traffic / "labels.parquet", results)
    console.print(render_table(metrics, title="demo evaluation"))
    console.rule("results")
    console.print(f"report:     {paths['report'].resolve()}")
    console.print(f"accounts:   {paths['accounts']}")
    console.print(f"campaigns:  {paths['campaigns']}  ({len(result.campaigns)} campaigns)")
    console.print(f"quarantine: {results / 'quarantine.jsonl'}")
    console.print(f"store:      {db}  (try: distillguard stats --db {db})")
    console.rule("review it in the console (every endpoint but /healthz needs a token)")
    console.print(f"1. make an analyst token (printed once, last line):\n"
                  f"   distillguard auth create-token --db {db} --role analyst --name \"$USER\"")
    console.print(f"2. start the service:  distillguard serve --db {db}")
    console.print("3. open http://127.0.0.1:8787/ and paste the token to sign in")
    console.print("   (gateways need a gateway token, step-up verifiers a verifier token: docs/security.md)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
