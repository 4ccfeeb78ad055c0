"""``distillguard report transparency``: aggregate figures about attacks, with no customer identifier."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    report_app = typer.Typer(help="Reports built from a store's scan results.", no_args_is_help=True)

    @report_app.command("transparency")
    def transparency_cmd(
        db: Path = typer.Option(..., "--db", help="The DuckDB store a scan wrote with --db."),
        period: str = typer.Option(..., "--period", help="YYYY-Qn (e.g. 2026-Q4), YYYY-MM or YYYY."),
        out: Path = typer.Option(..., "--out", help="Folder for transparency-PERIOD.html and .json."),
    ) -> None:
        """Campaigns, accounts, exchanges, techniques, capabilities targeted, actions taken, time to detection."""
        from distillguard.case import transparency_report

        fig = transparency_report(db, period, out)
        typer.echo(f"transparency {fig['period']}: {fig['campaigns']['count']} campaigns, "
                   f"{fig['accounts']['in_campaigns']} accounts, {fig['harvest']['exchanges']} exchanges -> {out}")

    app.add_typer(report_app, name="report")
