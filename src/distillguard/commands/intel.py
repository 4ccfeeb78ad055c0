"""``distillguard intel``: privacy-preserving threat-intel exchange (STIX 2.1 / TAXII 2.1, docs/intel.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

intel_app = typer.Typer(
    name="intel",
    help="Share campaign indicators as keyed hashes (STIX 2.1 over TAXII 2.1) and match peers' indicators.",
    no_args_is_help=True,
)


def _key(key_file: Optional[Path]) -> bytes:
    from distillguard.errors import UsageError
    from distillguard.intel.keys import KEY_ENV, resolve_key

    key = resolve_key(key_file)
    if key is None:
        raise UsageError(f"no intel key: give --key-file KEY or set {KEY_ENV} (make one with `distillguard intel keygen`)")
    return key


@intel_app.command("keygen")
def keygen(
    out: Path = typer.Option(..., "--out", help="Key file to create (refuses to overwrite)."),
) -> None:
    """Make a new consortium key (32 random bytes, hex) readable only by its owner."""
    import os

    from distillguard.errors import UsageError
    from distillguard.intel.keys import generate_key, key_id

    if out.exists():
        raise UsageError(f"{out} exists: refusing to overwrite a key")
    k = generate_key()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(k + "\n")
    print(f"wrote {out} (key id {key_id(bytes.fromhex(k))}); share it with consortium members only, over a secure channel")


@intel_app.command("export")
def export(
    db: Path = typer.Option(..., "--db", help="Store a `scan --db` wrote."),
    out: Path = typer.Option(..., "--out", help="STIX 2.1 bundle (JSON) to write."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Consortium key (default: $DISTILLGUARD_INTEL_KEY)."),
    campaign: Optional[List[str]] = typer.Option(None, "--campaign", help="Campaign id to export (repeatable; default: all)."),
    tlp: str = typer.Option("amber", "--tlp", help="TLP marking: white|clear, green, amber, red."),
    recipient: Optional[str] = typer.Option(None, "--recipient", help="Who receives it (recorded in the disclosure log)."),
    producer: str = typer.Option("distillguard", "--producer", help="Producer identity name in the bundle."),
    valid_days: int = typer.Option(90, "--valid-days", help="Indicators valid this many days from now."),
    min_support: int = typer.Option(2, "--min-support", help="Campaign accounts that must share an identifier."),
    min_support_exact: int = typer.Option(1, "--min-support-exact", help="The same for exact identifiers (client IP, payment fingerprint)."),
    min_precision: float = typer.Option(0.9, "--min-precision", help="Share of an identifier's holders that must be in campaigns."),
    taxii: Optional[str] = typer.Option(None, "--taxii", help="Also push to this TAXII 2.1 collection URL."),
    taxii_user: Optional[str] = typer.Option(None, "--taxii-user", help="TAXII user (default: $DISTILLGUARD_TAXII_USER)."),
    taxii_password: Optional[str] = typer.Option(None, "--taxii-password", help="TAXII password (default: $DISTILLGUARD_TAXII_PASSWORD)."),
    include_unconfirmed: bool = typer.Option(False, "--include-unconfirmed", help="Also share campaigns no analyst confirmed and the policy does not block."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Export analyst-confirmed and blocked campaigns as keyed-hash indicators; every export is logged in intel_disclosures."""
    from distillguard.errors import UsageError
    from distillguard.intel.export import ExportOptions, export_bundle
    from distillguard.intel.taxii import push
    from distillguard.store import EventStore

    if not db.exists():
        raise UsageError(f"no such store: {db}")
    if valid_days < 1 or min_support < 1 or min_support_exact < 1 or not 0 <= min_precision <= 1:
        raise UsageError("--valid-days and --min-support(-exact) must be >= 1, --min-precision in 0..1")
    key = _key(key_file)
    opts = ExportOptions(
        campaigns=tuple(campaign or ()), tlp=tlp, recipient=recipient, producer=producer, valid_days=valid_days,
        min_support=min_support, min_support_exact=min_support_exact, min_precision=min_precision,
        include_unconfirmed=include_unconfirmed,
    )
    with EventStore(db) as store:
        summary = export_bundle(store, key, out, opts)
        if taxii:
            from distillguard.intel.export import log_disclosure

            summary["taxii"] = push(out.read_bytes(), taxii, taxii_user, taxii_password)
            log_disclosure(store, summary, summary["bundle_sha256"], recipient, taxii)
    if as_json:
        print(json.dumps(summary))
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary["kinds"].items())) or "none"
        print(f"{summary['campaigns']} campaigns, {summary['indicators']} indicators ({kinds}) -> {out} "
              f"[TLP:{summary['tlp'].upper()}, key id {summary['key_id']}, sha256 {summary['bundle_sha256'][:16]}…]")


@intel_app.command("import")
def import_(
    source_path: Optional[Path] = typer.Argument(None, help="STIX bundle (.json) or government list (.csv)."),
    db: Path = typer.Option(..., "--db", help="Store to keep indicators in."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Consortium key (default: $DISTILLGUARD_INTEL_KEY)."),
    taxii: Optional[str] = typer.Option(None, "--taxii", help="Pull from this TAXII 2.1 collection URL instead of a file."),
    taxii_user: Optional[str] = typer.Option(None, "--taxii-user", help="TAXII user (default: $DISTILLGUARD_TAXII_USER)."),
    taxii_password: Optional[str] = typer.Option(None, "--taxii-password", help="TAXII password (default: $DISTILLGUARD_TAXII_PASSWORD)."),
    added_after: Optional[str] = typer.Option(None, "--added-after", help="With --taxii: only objects added after this time."),
    source: Optional[str] = typer.Option(None, "--source", help="Source name (default: the bundle's producer; required for CSV)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="stix or csv (default: from the file name)."),
    confidence: int = typer.Option(80, "--confidence", help="CSV: confidence of rows without one."),
    valid_days: Optional[int] = typer.Option(None, "--valid-days", help="CSV: rows without valid_until expire after this many days."),
    asn_map: Optional[Path] = typer.Option(None, "--asn-map", help="Also load a cidr,asn CSV so ASN indicators match IPs."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Import indicators (STIX bundle, TAXII collection or CSV list) into intel_indicators."""
    from distillguard.errors import UsageError
    from distillguard.intel.importer import import_asn_map, import_bundle, import_csv, import_objects
    from distillguard.intel.taxii import pull
    from distillguard.store import EventStore

    if (source_path is None) == (taxii is None) and asn_map is None:
        raise UsageError("give exactly one of BUNDLE.json|LIST.csv or --taxii URL")
    key = _key(key_file)
    summary: dict = {}
    with EventStore(db) as store:
        if asn_map:
            summary["asn_prefixes"] = import_asn_map(store, asn_map)
        if taxii:
            summary |= import_objects(store, key, pull(taxii, taxii_user, taxii_password, added_after), source or taxii)
        elif source_path is not None:
            kind = (fmt or ("csv" if source_path.suffix.lower() in (".csv", ".tsv") else "stix")).lower()
            if kind == "csv":
                if not source:
                    raise UsageError("a CSV list needs --source NAME")
                summary |= import_csv(store, key, source_path, source, confidence, valid_days)
            elif kind == "stix":
                summary |= import_bundle(store, key, source_path, source)
            else:
                raise UsageError(f"unknown --format {fmt!r} (stix or csv)")
        summary["stored"] = store.con.execute("SELECT count(*) FROM intel_indicators").fetchone()[0]
    if as_json:
        print(json.dumps(summary))
    else:
        print(", ".join(f"{k} {v}" for k, v in summary.items() if k != "errors"))
        for e in summary.get("errors", []):
            print(f"  rejected {e}")


@intel_app.command("log")
def log(
    db: Path = typer.Option(..., "--db", help="Store."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines."),
) -> None:
    """Show the disclosure log: every export, when, to whom, bundle sha256."""
    from distillguard.intel.tables import ensure_tables
    from distillguard.store import EventStore

    with EventStore(db) as store:
        ensure_tables(store.con)
        rows = store.con.execute(
            "SELECT export_id, exported_at, recipient, tlp, n_campaigns, n_indicators, bundle_sha256, destination "
            "FROM intel_disclosures ORDER BY exported_at"
        ).fetchall()
    for r in rows:
        d = dict(zip(("export_id", "exported_at", "recipient", "tlp", "campaigns", "indicators", "bundle_sha256", "destination"), r))
        d["exported_at"] = str(d["exported_at"])
        print(json.dumps(d) if as_json else "  ".join(str(v) for v in d.values()))


def register(app: typer.Typer) -> None:
    app.add_typer(intel_app, name="intel")
