"""``distillguard auth create-token|list|revoke``: scoped credentials for the service (docs/security.md)."""
from __future__ import annotations

import getpass
from pathlib import Path

import typer


def _actor() -> str:
    """Who ran the command, for the audit log (the operating-system user)."""
    try:
        return "cli:" + getpass.getuser()
    except Exception:
        return "cli"


def register(app: typer.Typer) -> None:
    auth_app = typer.Typer(help="Credentials for the service: gateway, verifier, analyst, reader tokens.", no_args_is_help=True)

    @auth_app.command("create-token")
    def create_cmd(
        db: Path = typer.Option(..., "--db", help="The store the service runs on."),
        role: str = typer.Option(..., "--role", help="gateway, verifier, analyst or reader."),
        name: str = typer.Option(..., "--name", help="Who or what uses it (audit rows carry this name)."),
    ) -> None:
        """Make a token; it is printed once, as the last line (the store keeps only its SHA-256)."""
        from distillguard.auth import create_token

        token, row = create_token(db, role, name, _actor())
        typer.echo(f"{role} token {row['token_id']} for {name!r}; shown once, keep it secret:")
        typer.echo(token)

    @auth_app.command("list")
    def list_cmd(db: Path = typer.Option(..., "--db", help="The store the service runs on.")) -> None:
        """Tokens (id, role, name, created, revoked); never the tokens themselves."""
        from distillguard.auth import list_tokens

        for t in list_tokens(db):
            state = f"revoked {t['revoked_at']:%Y-%m-%d %H:%M}" if t["revoked_at"] else "live"
            typer.echo(f"{t['token_id']}  {t['role']:<8}  {state:<22}  {t['created_at']:%Y-%m-%d %H:%M}  {t['name']}")

    @auth_app.command("revoke")
    def revoke_cmd(
        which: str = typer.Argument(..., help="Token id (from auth list) or name."),
        db: Path = typer.Option(..., "--db", help="The store the service runs on."),
    ) -> None:
        """Revoke tokens by id or name (a running service stops accepting them within 2 s)."""
        from distillguard.errors import UsageError
        from distillguard.auth import revoke_token

        done = revoke_token(db, which, _actor())
        if not done:
            raise UsageError(f"no live token with id or name {which!r}")
        for t in done:
            typer.echo(f"revoked {t['role']} token {t['token_id']} ({t['name']})")

    app.add_typer(auth_app, name="auth")
