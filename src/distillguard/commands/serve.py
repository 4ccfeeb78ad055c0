"""``distillguard serve``: the real-time decision service."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distillguard.subject import OPTION_HELP as SUBJECT_HELP, use_option as use_subject

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        db: Path = typer.Option(Path("distillguard.duckdb"), "--db", help="The DuckDB store (events, last scan's results)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8787, "--port", help="Port to listen on."),
        policy: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML [default: the packaged policy]."),
        model: Optional[Path] = typer.Option(None, "--model", help="Fusion model YAML [default: the packaged model]."),
        redis: Optional[str] = typer.Option(None, "--redis", help="Share state between processes, e.g. redis://127.0.0.1:6379/0."),
        refresh_seconds: float = typer.Option(30.0, "--refresh-seconds", help="Reload the campaign map from the store this often."),
        flush_seconds: float = typer.Option(1.0, "--flush-seconds", help="Move the journal into the store this often."),
        max_body: int = typer.Option(10 * 1024 * 1024, "--max-body-bytes", help="Refuse larger request bodies (413)."),
        journal: Optional[Path] = typer.Option(None, "--journal", help="Write-ahead journal [default: <db>.journal.jsonl]."),
        no_fsync: bool = typer.Option(False, "--no-fsync", help="Do not fsync the journal before answering (faster, loses the last events on a power cut)."),
        warm_max_events: int = typer.Option(2_000_000, "--warm-events", help="Rebuild running state from this many most recent stored events at start."),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
        prompts: Optional[str] = typer.Option(None, "--prompts", help="redacted (default), full, sampled or none: what is stored of prompts and responses."),
        identifier_key: Optional[Path] = typer.Option(None, "--identifier-key", help="Key file for store.identifiers: hashed (64 hex)."),
        subject: Optional[str] = typer.Option(None, "--subject", help=SUBJECT_HELP),
        intel_key: Optional[Path] = typer.Option(None, "--intel-key", help="Consortium key file: match imported threat intelligence at decision time (else $DISTILLGUARD_INTEL_KEY)."),
        insecure_no_auth: bool = typer.Option(False, "--insecure-no-auth", help="No credentials at all: for a local demo on a loopback address only."),
        proxy_header: Optional[str] = typer.Option(None, "--trusted-proxy-header", help="Console identity from this header (e.g. X-Forwarded-User) on requests from --trusted-proxy."),
        proxies: list[str] = typer.Option([], "--trusted-proxy", help="CIDR of the reverse proxy that sets --trusted-proxy-header (repeatable)."),
    ) -> None:
        """Answer real-time decisions over HTTP (FastAPI + uvicorn); see docs/serve.md."""
        from distillguard.errors import UsageError
        from distillguard.serve import Engine, EngineConfig, create_app, run_server

        use_subject(subject)
        if refresh_seconds <= 0 or flush_seconds <= 0:
            raise UsageError("--refresh-seconds and --flush-seconds must be positive")
        if max_body < 1024:
            raise UsageError("--max-body-bytes must be at least 1024")
        if policy is not None and not policy.exists():
            raise UsageError(f"{policy}: no such file")
        if redis is not None:
            try:
                import redis as _r

                _r.Redis.from_url(redis).ping()
            except Exception as exc:
                raise UsageError(f"cannot reach redis at {redis}: {str(exc).splitlines()[0]}") from None
        from distillguard.intel.keys import resolve_key
        from distillguard.score.policy import store_privacy

        security = _security(host, insecure_no_auth, proxy_header, proxies)
        if not insecure_no_auth:
            _say_how_to_get_in(db)
        engine = Engine(EngineConfig(db=str(db), policy=policy, model=model, redis=redis, refresh_seconds=refresh_seconds,
                                     flush_seconds=flush_seconds, journal=str(journal) if journal else None,
                                     fsync=not no_fsync, warm_max_events=warm_max_events,
                                     privacy=store_privacy(policy, prompts, identifier_key), intel_key=resolve_key(intel_key)))
        run_server(create_app(engine, max_body_bytes=max_body, **security), host=host, port=port, log_level=log_level)


def _security(host: str, insecure: bool, proxy_header: str | None, proxies: list[str]) -> dict:
    """The app's security settings from the flags; refuses unsafe combinations."""
    import ipaddress
    import sys

    from distillguard.errors import UsageError

    if insecure:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise UsageError(f"--insecure-no-auth serves without credentials: only on a loopback --host, not {host}")
        print("distillguard: WARNING: --insecure-no-auth: every endpoint is open to anyone who can reach "
              f"{host}; for a local demo only", file=sys.stderr)
    if bool(proxy_header) != bool(proxies):
        raise UsageError("--trusted-proxy-header and --trusted-proxy go together")
    for cidr in proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise UsageError(f"--trusted-proxy {cidr!r} is not an address or CIDR") from None
    return {"insecure_no_auth": insecure, "trusted_proxy_header": proxy_header, "trusted_proxies": tuple(proxies)}


def _say_how_to_get_in(db) -> None:
    """A store without live tokens refuses every caller: say how to make one instead of leaving 401s to puzzle over."""
    import sys

    from distillguard.auth import list_tokens

    if db.is_file() and not any(t["revoked_at"] is None for t in list_tokens(db)):
        print(f"distillguard: no live tokens in {db}: every endpoint but /healthz answers 401 until you make one, e.g.\n"
              f"  distillguard auth create-token --db {db} --role analyst --name YOUR-NAME", file=sys.stderr)
