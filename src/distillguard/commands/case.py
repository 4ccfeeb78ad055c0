"""``distillguard case export|verify``: tamper-evident case files for policy and legal staff."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    case_app = typer.Typer(help="Case files: export a campaign's evidence, verify a case folder.", no_args_is_help=True)

    @case_app.command("export")
    def export_cmd(
        campaign_id: str = typer.Argument(..., help="Campaign id (as in campaigns.json or the console), or an operator id "
                                                    "(O-...): one case folder per campaign of the operator, under --out."),
        db: Path = typer.Option(..., "--db", help="The DuckDB store a scan wrote with --db."),
        out: Path = typer.Option(..., "--out", help="Folder for case.html, case.pdf, case.json, accounts.csv, manifest.json."),
        no_pdf: bool = typer.Option(False, "--no-pdf", help="Skip the PDF (needs Chromium)."),
        prices: Optional[Path] = typer.Option(None, "--prices", help="Price list YAML for the harvested value (default: packaged)."),
        db_key_file: Optional[Path] = typer.Option(None, "--db-key-file", help="Key of an encrypted store (docs/privacy.md); the case folder itself is not encrypted."),
    ) -> None:
        """Write a campaign's case file with a manifest of SHA-256 hashes chained with the audit log head."""
        from distillguard.case import export_case

        if campaign_id.startswith("O-"):
            from distillguard.errors import UsageError
            from distillguard.score.operators import operator_campaigns
            from distillguard.store import EventStore

            if not db.is_file():
                raise UsageError(f"no store at {db}")
            with EventStore(db, read_only=True, db_key_file=db_key_file) as store:
                cases = [(c, out / c) for c in operator_campaigns(store.con, campaign_id)]
        else:
            cases = [(campaign_id, out)]
        for cid, folder in cases:
            m = export_case(cid, db, folder, pdf=not no_pdf, prices=prices, db_key_file=db_key_file)
            typer.echo(f"case {cid}: {len(m['files'])} files in {folder}; manifest chain {m['chain'][:16]}… "
                       f"(audit head #{m['audit_head']['seq']})")

    @case_app.command("verify")
    def verify_cmd(
        folder: Path = typer.Argument(..., help="A case folder written by case export."),
        db: Optional[Path] = typer.Option(None, "--db", help="Also check the manifest's audit head against this store's audit log."),
        public_key: Optional[Path] = typer.Option(None, "--public-key", help="The signer's public key (PEM) [default: the keys folder's signing.pub, else the key registered in --db]."),
        db_key_file: Optional[Path] = typer.Option(None, "--db-key-file", help="Key of an encrypted --db."),
    ) -> None:
        """Check every file, the manifest's signature and (with --db) the signed audit chain: exit 0 intact, 1 tampered, 2 unusable input."""
        import sys

        from distillguard.case import verify_case

        r = verify_case(folder, db, public_key, db_key_file)
        if r["ok"]:
            typer.echo(f"intact: case {r['campaign_id']}, audit head #{r['audit_head'].get('seq')}")
            return
        for name in r["changed"]:
            print(f"changed: {name}", file=sys.stderr)
        for name in r["missing"]:
            print(f"missing: {name}", file=sys.stderr)
        for name in r["added"]:
            print(f"added: {name}", file=sys.stderr)
        for p in r["problems"]:
            print(f"problem: {p}", file=sys.stderr)
        typer.echo("TAMPERED: " + ", ".join(r["changed"] + r["missing"] + r["added"]) if (r["changed"] or r["missing"] or r["added"]) else "TAMPERED")
        raise typer.Exit(1)

    app.add_typer(case_app, name="case")
