"""``distillguard simulate``: synthetic API traffic with ground-truth labels."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        out: Path = typer.Option(..., "--out", help="Output folder for events, accounts.parquet and labels.parquet."),
        scenario: str = typer.Option("default", "--scenario", help="Preset name (default, smoke, reported-scale) or a YAML file."),
        scale: float = typer.Option(1.0, "--scale", help="Multiplies every population's account count."),
        seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same content."),
        fmt: str = typer.Option("parquet", "--format", help="Events file format: parquet or jsonl."),
        family: str = typer.Option("train", "--family", help="Prompt phrasing family: train or holdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
        summary_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    ) -> None:
        """Simulate benign and campaign traffic with labels (deterministic for a seed)."""
        from distillguard.errors import UsageError
        from distillguard.sim.engine import dump_summary, simulate

        if seed < 0:
            raise UsageError(f"--seed must be a non-negative integer, got {seed}")
        summary = simulate(scenario=scenario, scale=scale, seed=seed, out=out, fmt=fmt.lower(), family=family.lower(),
                           progress=not quiet and not summary_json)
        if summary_json:
            typer.echo(dump_summary(summary))
        elif not quiet:
            import sys

            print(
                f"simulated {summary['events']:,} events, {summary['accounts']:,} accounts "
                f"({summary['attack_accounts']:,} in {summary['campaigns']} campaigns) in {summary['seconds']:.1f}s "
                f"({summary['events_per_second']:,} events/s) -> {out}",
                file=sys.stderr,
            )
