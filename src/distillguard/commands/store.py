"""``distillguard store forget`` and ``distillguard store retain``: erasure and retention (docs/privacy.md)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]

store_app = typer.Typer(help="Erase an account or apply retention to the event store (docs/privacy.md).",
                        no_args_is_help=True)


def _open(db: Path, db_key_file: Optional[Path], identifier_key: Optional[Path] = None, *, recorded: bool = False):
    """The store; ``recorded``: under the privacy settings it recorded (another --identifier-key: exit 2)."""
    from distillguard.errors import UsageError
    from distillguard.privacy import StorePrivacy
    from distillguard.privacy.keyed import load_key
    from distillguard.store import EventStore

    if not db.exists():
        raise UsageError(f"{db}: no such store")
    store = EventStore(db, db_key_file=db_key_file)
    if recorded:
        try:
            store.privacy = StorePrivacy.of_store(store.con, load_key(identifier_key) if identifier_key else None)
        except UsageError as exc:
            store.close()
            raise UsageError(f"{db}: {exc}") from None
    return store


@store_app.command("forget")
def forget(
    db: Path = typer.Option(..., "--db", help="The DuckDB store."),
    account: str = typer.Option(..., "--account", help="The account to erase."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the audit log), e.g. the request's reference."),
    db_key_file: Optional[Path] = typer.Option(None, "--db-key-file", help="Key of an encrypted store."),
    identifier_key: Optional[Path] = typer.Option(None, "--identifier-key", help="The identifier key the store was written with (needed, and checked, when it was written with one)."),
) -> None:
    """Delete an account's events, metadata, results and quarantine lines; audit it; list exported case files.

    Exit 1 (after printing the counts) when the store held nothing of the account."""
    import sys

    from distillguard.erasure import forget as forget_account

    with _open(db, db_key_file, identifier_key, recorded=True) as store:
        out = forget_account(store, account, reason)
    print(json.dumps(out, default=str))
    if not out["found"]:
        print(f"distillguard: WARNING: nothing of account {account!r} in {db} (looked for {out['account_id']!r}): "
              "nothing erased; check the id (the erasure request is audited all the same)", file=sys.stderr)
        raise typer.Exit(1)


@store_app.command("retain")
def retain(
    db: Path = typer.Option(..., "--db", help="The DuckDB store."),
    keep_days: int = typer.Option(..., "--keep-days", help="Keep raw events of the last N days."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Count the days back from this time (ISO 8601) [default: now]."),
    db_key_file: Optional[Path] = typer.Option(None, "--db-key-file", help="Key of an encrypted store."),
) -> None:
    """Aggregate, then delete, raw events older than N days (idempotent)."""
    from distillguard.errors import UsageError
    from distillguard.erasure import retain as retain_events

    when = None
    if as_of is not None:
        try:
            when = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--as-of {as_of!r} is not an ISO 8601 time (e.g. 2026-03-01T00:00:00Z)") from None
    with _open(db, db_key_file) as store:
        out = retain_events(store, keep_days, when)
    print(json.dumps(out, default=str))


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
