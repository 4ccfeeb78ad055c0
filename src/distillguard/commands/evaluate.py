"""``distillguard evaluate``: score a scan against ground-truth labels."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        labels: Optional[Path] = typer.Option(None, "--labels", help="labels.parquet (account_id, campaign_id, archetype, is_attack[, operator_id])."),
        scan: Optional[Path] = typer.Option(None, "--scan", help="A scan's output folder (reads accounts.parquet, campaigns.json)."),
        as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout instead of a table."),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the results as JSON to this file."),
        worlds: Optional[str] = typer.Option(None, "--worlds", help="Cross-world protocol instead of --labels/--scan: 'report' (the protocol's report worlds) or RANGE:LO-HI[:FAMILY],..."),
        work: Path = typer.Option(Path("bench-data/worlds"), "--work", help="With --worlds: folder for the simulated worlds and their scans (reused when present)."),
        exclude_type: List[str] = typer.Option([], "--exclude-type", help="With --worlds: leave this campaign archetype out of the worlds."),
        include_type: List[str] = typer.Option([], "--include-type", help="With --worlds: always include this campaign archetype (leave-one-type-out evaluation)."),
        scale: float = typer.Option(1.0, "--scale", help="With --worlds: multiply every population's account count."),
        policy: Optional[Path] = typer.Option(None, "--policy", help="With --worlds: policy YAML for the scans."),
        model: Optional[Path] = typer.Option(None, "--model", help="With --worlds: fusion model YAML for the scans."),
    ) -> None:
        """Metrics of a scan against labels, next to a volume-threshold baseline; or the cross-world protocol."""
        import json

        from rich.console import Console

        from distillguard.errors import UsageError
        from distillguard.evaluate import evaluate
        from distillguard.evaluate.render import render_table

        if worlds is not None:
            if labels is not None or scan is not None:
                raise UsageError("give either --worlds or --labels and --scan, not both")
            _cross_world(worlds, work, exclude_type, include_type, scale, policy, model, as_json, out)
            return
        if labels is None or scan is None:
            raise UsageError("evaluate needs --labels and --scan (or --worlds)")
        result = evaluate(labels, scan)
        text = json.dumps(result, indent=2, sort_keys=False)
        if out is not None:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
        if as_json:
            typer.echo(text)
            return
        console = Console()
        console.print(render_table(result, title=f"distillguard evaluate: {scan}"))
        from rich.markup import escape

        from distillguard.evaluate.communities import describe

        for entry in result["benign_communities"]:
            console.print(f"[red]benign community flagged:[/] {escape(describe(entry))}", highlight=False)
        for note in result["notes"]:
            console.print(f"[yellow]note:[/] {note}")
        if out is not None:
            console.print(f"results written to {out}")


def _cross_world(worlds, work, exclude, include, scale, policy, model, as_json, out) -> None:
    """``evaluate --worlds``: every world simulated, scanned and scored; the targets judged on the worst."""
    import json

    from rich.console import Console

    from distillguard.evaluate.render import render_verdicts, render_worlds
    from distillguard.evaluate.worlds import dump, judge, parse_worlds, run_world

    specs = parse_worlds(worlds)
    scan_args = [*(["--policy", str(policy)] if policy else []), *(["--model", str(model)] if model else [])]
    err = Console(stderr=True)
    figs = []
    for spec in specs:
        if not as_json:
            err.print(f"world {spec[0]}-{spec[1]} ...", highlight=False)
        figs.append(run_world(spec, work, exclude, include, scale, scan_args))
    verdicts = judge(figs, include[0] if len(include) == 1 else None)
    if out is not None:
        dump(figs, verdicts, out)
    if as_json:
        typer.echo(json.dumps({"worlds": [{k: v for k, v in f.items() if k != "evaluation"} for f in figs],
                               "targets": verdicts}, indent=1, default=str))
        return
    console = Console()
    console.width = max(console.width, 160)  # one row per world stays on one line in logs too
    console.print(render_worlds(figs))
    console.print(render_verdicts(verdicts))
