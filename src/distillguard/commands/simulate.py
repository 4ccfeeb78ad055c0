"""``distillguard simulate``: synthetic API traffic with ground-truth labels."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        out: Path = typer.Option(..., "--out", help="Output folder for events, accounts.parquet and labels.parquet."),
        scenario: Optional[str] = typer.Option(None, "--scenario", help="Preset name (default, smoke, reported-scale) or a YAML file [default: default]."),
        randomize: Optional[str] = typer.Option(None, "--randomize", help="Draw a randomized world from this named range of sim/ranges.yaml (fit, shifted) with --seed, instead of a scenario."),
        exclude_type: List[str] = typer.Option([], "--exclude-type", help="With --randomize: leave this campaign archetype out (repeatable)."),
        include_type: List[str] = typer.Option([], "--include-type", help="With --randomize: always include this campaign archetype (repeatable)."),
        adapt: Optional[str] = typer.Option(None, "--adapt", help="With --randomize: the same world with this adversary adaptation of sim/ranges.yaml (short_outputs, low_volume...)."),
        scale: str = typer.Option("1.0", "--scale", help="Multiplies every population's account count (a positive number)."),
        seed: str = typer.Option("0", "--seed", help="Random seed (a non-negative integer); the same seed gives the same content."),
        fmt: str = typer.Option("parquet", "--format", help="Events file format: parquet or jsonl."),
        family: str = typer.Option("train", "--family", help="Prompt phrasing family: train or holdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
        summary_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    ) -> None:
        """Simulate benign and campaign traffic with labels (deterministic for a seed)."""
        from distillguard.errors import UsageError
        from distillguard.sim.engine import dump_summary, simulate

        try:
            scale_f = float(scale)
        except ValueError:
            raise UsageError(f"--scale must be a positive number, got {scale!r}") from None
        if not (scale_f > 0 and scale_f != float("inf")):
            raise UsageError(f"--scale must be a positive number, got {scale!r}")
        if not seed.isdigit():
            raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
        if randomize is not None:
            from distillguard.sim.randomize import randomized_scenario

            if scenario is not None:
                raise UsageError("give either --scenario or --randomize, not both")
            scenario = randomized_scenario(randomize, int(seed), exclude_type, include_type, adapt)
        elif exclude_type or include_type or adapt:
            raise UsageError("--exclude-type, --include-type and --adapt need --randomize")
        summary = simulate(scenario=scenario or "default", scale=scale_f, seed=int(seed), out=out, fmt=fmt.lower(), family=family.lower(),
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
