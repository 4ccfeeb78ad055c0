"""``distillguard keys init``: the Ed25519 key pair that signs evidence (docs/security.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(help="Signing keys for the audit log head and case files.", no_args_is_help=True)

    @keys_app.command("init")
    def init_cmd(
        folder: Optional[Path] = typer.Option(None, "--dir", help="Keys folder [default: $DISTILLGUARD_KEYS or ~/.config/distillguard]; keep it outside the store."),
        db: Optional[Path] = typer.Option(None, "--db", help="Also sign this store's audit log head now."),
        force: bool = typer.Option(False, "--force", help="Replace an existing key pair (old signatures then verify only against the old public key)."),
    ) -> None:
        """Make a signing key pair: the private key stays in the keys folder, the public key is exported beside it."""
        from distillguard import signing
        from distillguard.errors import UsageError

        if db is not None and not db.is_file():
            raise UsageError(f"no store at {db}")
        priv, pub = signing.init_keys(folder, force=force)
        key = signing.load_private(priv.parent)
        if db is not None:
            from distillguard import audit

            audit.sign_current_head(db, key)
        typer.echo(f"private key {priv} (mode 0600; never copy it into the store)")
        typer.echo(f"public key {pub} (key id {signing.key_id(key.public_key())}): give it to whoever verifies")

    app.add_typer(keys_app, name="keys")
