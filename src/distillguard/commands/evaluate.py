"""``distillguard evaluate``: score a scan against ground-truth labels."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        labels: Path = typer.Option(..., "--labels", help="labels.parquet (account_id, campaign_id, archetype, is_attack)."),
        scan: Path = typer.Option(..., "--scan", help="A scan's output folder (reads accounts.parquet)."),
        as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout instead of a table."),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the results as JSON to this file."),
    ) -> None:
        """Metrics of a scan against labels, next to a volume-threshold baseline."""
        import json

        from rich.console import Console

        from distillguard.errors import UsageError
        from distillguard.evaluate import evaluate
        from distillguard.evaluate.render import render_table

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
        for note in result["notes"]:
            console.print(f"[yellow]note:[/] {note}")
        if out is not None:
            console.print(f"results written to {out}")
