"""``distillguard replay``: a recorded log through the decision service, time-to-detection per campaign."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay(
        events: Path = typer.Argument(..., help="Recorded events (any ingest format).", show_default=False),
        speed: float = typer.Option(0.0, "--speed", help="Time compression (60 = an hour per minute); 0 = as fast as possible."),
        url: Optional[str] = typer.Option(None, "--url", help="A running service, e.g. http://127.0.0.1:8787 (a gateway token in $DISTILLGUARD_TOKEN)."),
        db: Optional[Path] = typer.Option(None, "--db", help="Decide in this process against this store's last scan (nothing is written)."),
        accounts: Optional[Path] = typer.Option(None, "--accounts", help="Account metadata, sent with each account's first request."),
        labels: Optional[Path] = typer.Option(None, "--labels", help="Ground truth (account_id, campaign_id) to group by campaign."),
        policy: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML for --db [default: packaged]."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Feed a recorded log into the service in time order; report exchanges harvested before detection."""
        import json

        from distillguard.errors import UsageError

        if (url is None) == (db is None):
            raise UsageError("give exactly one of --url and --db")
        if speed < 0:
            raise UsageError("--speed must be >= 0")
        for p in (events, accounts, labels, db):
            if p is not None and not Path(p).exists():
                raise UsageError(f"{p}: no such file or directory")
        from distillguard.ingest import read_path
        from distillguard.serve.replay import HttpTarget, LocalTarget, replay as run

        rows = []
        for rb in read_path(events)[1]:
            rows.extend(rb.events.to_pylist())
        meta = {}
        if accounts is not None:
            from distillguard.ingest.accounts import read_accounts

            table, _ = read_accounts(accounts)
            meta = {r["account_id"]: r for r in table.to_pylist()}
        truth = None
        if labels is not None:
            import pyarrow.parquet as pq

            if str(labels).endswith((".parquet", ".pq")):
                t = pq.read_table(labels, columns=["account_id", "campaign_id"])
            else:
                from distillguard.ingest.accounts import iter_rows  # JSONL/CSV rows

                import pyarrow as pa

                t = pa.Table.from_pylist([{"account_id": r.get("account_id"), "campaign_id": r.get("campaign_id")}
                                          for _, r, _ in iter_rows(Path(labels))])
            truth = dict(zip(t.column("account_id").to_pylist(), t.column("campaign_id").to_pylist()))
        if url is not None:
            target = HttpTarget(url)
        else:
            from distillguard.serve import Engine, EngineConfig

            target = LocalTarget(Engine(EngineConfig(db=str(db), policy=policy, persist=False, warm_max_events=0)).start(background=False))
        try:
            report = run(rows, target, speed=speed, accounts=meta, labels=truth)
        finally:
            target.close()
        if as_json:
            print(json.dumps(report))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"replay of {events}: {report['events']:,} events in {report['wall_seconds']} s")
        for col in ("campaign", "accounts", "exchanges", "harvested before detection", "share", "within target",
                    "stopped", "at 1st request"):
            t.add_column(col)
        for c in report["campaigns"]:
            t.add_row(c["campaign_id"], str(c["accounts"]), f"{c['exchanges']:,}", f"{c['harvested_before_detection']:,}",
                      f"{c['harvested_share']:.2%}", "yes" if c["within_target"] else "NO",
                      str(c["accounts_stopped"]), str(c["accounts_stopped_at_first_request"]))
        con = Console()
        con.print(t)
        if labels is not None:
            con.print(f"benign accounts stopped: {report['benign_accounts_stopped']} of {report['benign_accounts']}")
