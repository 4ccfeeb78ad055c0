"""``case export`` / ``case verify``: a campaign's case file and its tamper-evident manifest.

A case folder holds ``case.html`` (read by a person; no script, strict CSP),
``case.pdf`` (the same page printed by headless Chromium), ``case.json`` (the
same facts for machines), ``accounts.csv`` and ``manifest.json``.

The manifest lists every file with its SHA-256 and size, and a chain::

    h_0 = audit log head hash at export time
    h_i = sha256(h_{i-1} + "\\n" + path_i + "\\n" + sha256_i)   (files in path order)
    chain = h_n

so editing, removing or adding a file, or editing the manifest's hashes
without recomputing the chain, is detected; anchoring the chain on the audit
log head ties the file to the analyst decisions it shows (``verify --db``
checks that head is still in the store's audit log).

Anyone can recompute hashes by the published rule, so the manifest is also
signed (Ed25519, :mod:`distillguard.signing`) over its canonical JSON
without the ``signature`` field; ``verify`` checks it against a trusted
public key and reports an unsigned or foreign-signed manifest.
"""
from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from distillguard.errors import UsageError
from distillguard.store import EventStore, table_exists

__all__ = ["export_case", "verify_case", "MANIFEST", "chain_hash", "file_sha256"]

MANIFEST = "manifest.json"
_env = Environment(loader=PackageLoader("distillguard.case", "templates"), autoescape=select_autoescape(default=True, default_for_string=True))
_env.filters["fmt_ts"] = lambda v: "" if v is None else str(v)[:16].replace("T", " ")
_env.filters["thousands"] = lambda v: "" if v is None else f"{int(v):,}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chain_hash(anchor: str, files: list[dict]) -> str:
    h = anchor
    for f in sorted(files, key=lambda f: f["path"]):
        h = hashlib.sha256(f"{h}\n{f['path']}\n{f['sha256']}".encode("utf-8")).hexdigest()
    return h


def _bars(points: list, width: int = 680, height: int = 90) -> dict:
    from distillguard.report.html import sparkline

    return sparkline([(str(t), int(c)) for t, c in points], width, height)


def export_case(campaign_id: str, db: Path, out: Path, *, pdf: bool = True, prices: Path | None = None,
                db_key_file: Path | None = None) -> dict:
    """Write the case folder for ``campaign_id``; returns the manifest.

    The store is opened as it is kept (``db_key_file`` for an encrypted one) and
    for writing: the export is recorded in it (``case_exports``, which erasure
    lists) before any file is written, so a store that cannot take the record
    (encrypted, DuckDB without OpenSSL) refuses before a copy exists.
    """
    from distillguard import audit
    from distillguard.console.data import account_volume, campaign_detail, load_prices
    from distillguard.erasure import record_case_export

    if not Path(db).is_file():
        raise UsageError(f"no store at {db}")
    out = Path(out)
    con = EventStore(db, db_key_file=db_key_file).con  # UTC session; unreadable file, missing key -> UsageError
    try:
        c = campaign_detail(con, campaign_id, load_prices(prices), member_limit=100_000)
        if c is None:
            raise UsageError(f"no campaign {campaign_id!r} in {db} (run scan --db first)")
        ev = c["ev"]
        decisions = list(reversed(audit.audit_rows(con, "campaign", campaign_id)))
        member_ids = [m["account_id"] for m in c["members"]]
        if table_exists(con, "audit_log") and member_ids:
            extra = con.execute(
                "SELECT seq, ts, analyst, action, target_kind, target_id, reason, details_json, prev_hash, row_hash FROM audit_log "
                "WHERE target_kind = 'account' AND list_contains(?, target_id) ORDER BY seq", [member_ids]).fetchall()
            cols = ("seq", "ts", "analyst", "action", "target_kind", "target_id", "reason", "details_json", "prev_hash", "row_hash")
            decisions += [dict(zip(cols, r)) for r in extra]
            decisions.sort(key=lambda d: d["seq"])
        head = audit.audit_head(con)
        chain_ok, chain_bad = audit.verify_audit_chain(con)
        infra = {}
        if table_exists(con, "campaign_indicators"):
            for kind, value, weight in con.execute(
                    "SELECT kind, value, weight FROM campaign_indicators WHERE campaign_id = ? ORDER BY kind, weight DESC, value",
                    [campaign_id]).fetchall():
                infra.setdefault(kind, []).append({"value": value, "weight": weight})
        volume = account_volume(con, ev.get("accounts") or [], top=8)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record_case_export(con, campaign_id, out, created, member_ids)  # erasure lists the exports naming an account
    finally:
        con.close()

    facts = {
        "campaign_id": campaign_id, "exported_at": created, "status": c["status"],
        "summary": {k: c[k] for k in ("risk", "action", "n_accounts", "n_events")} | {
            "first_seen": str(c["first_seen"]), "last_seen": str(c["last_seen"]),
            "input_tokens": ev.get("input_tokens"), "output_tokens": ev.get("output_tokens"),
            "reasons": ev.get("reasons"), "link_coverage": ev.get("link_coverage")},
        "timeline": ev.get("timeline") or [],
        "accounts": c["members"],
        "infrastructure": {"shared": ev.get("shared") or [], "indicators": infra},
        "harvested": c["value"], "capabilities": c["capabilities"],
        "evidence": {"signals": c["signals"], "example_prompts": ev.get("example_prompts") or []},
        "analyst_decisions": decisions,
        "audit_log": {"head": head, "chain_intact": chain_ok, "first_bad_seq": chain_bad},
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None
    stale = out / MANIFEST
    if stale.exists():
        stale.unlink()
    written = ["case.html", "case.json", "accounts.csv"]
    (out / "case.json").write_text(json.dumps(facts, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    with open(out / "accounts.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["account_id", "risk", "action", "n_events", "org_id", "reasons"])
        for m in c["members"]:
            w.writerow([m["account_id"], m["risk"], m["action"], m["n_events"], m["org_id"] or "", " ".join(m["reasons"] or [])])
    html = _env.get_template("case.html.j2").render(
        f=facts, c=c, ev=ev, chart=_bars(ev.get("timeline") or []), volume=volume, head=head, created=created)
    (out / "case.html").write_text(html, encoding="utf-8")
    if pdf:
        from distillguard.case.pdf import html_to_pdf

        html_to_pdf(out / "case.html", out / "case.pdf")
        written.append("case.pdf")
    files = [{"path": p, "sha256": file_sha256(out / p), "bytes": (out / p).stat().st_size} for p in sorted(written)]
    manifest = {
        "format": "distillguard-case/1", "campaign_id": campaign_id, "exported_at": created,
        "audit_head": head, "files": files, "chain": chain_hash(head["hash"], files),
        "chain_rule": "h0 = audit_head.hash; h_i = sha256(h_{i-1} + '\\n' + path + '\\n' + sha256), files in path order",
    }
    from distillguard import signing

    signer = signing.signer()
    if signer is not None:
        manifest["signature"] = signer.sign(_signed_bytes(manifest))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def _signed_bytes(manifest: dict) -> bytes:
    from distillguard.audit import canonical

    return canonical({k: v for k, v in manifest.items() if k != "signature"}).encode("utf-8")


def verify_case(folder: Path, db: Path | None = None, public_key: Path | None = None,
                db_key_file: Path | None = None) -> dict:
    """Check a case folder against its manifest, the manifest's signature and (with ``db``) the audit log.

    The signature is checked against ``public_key`` (a PEM file), else the
    keys folder's ``signing.pub``, else the key registered in ``db``.

    Returns ``{"ok": bool, "changed": [...], "missing": [...], "added": [...], "problems": [...]}``.
    Raises :class:`UsageError` when the folder or manifest is unusable.
    """
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    if not mpath.is_file():
        raise UsageError(f"{folder} has no {MANIFEST}: not a case folder")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = manifest["files"]
        anchor = manifest["audit_head"]["hash"]
        listed = {f["path"]: f for f in files}
        if not all(isinstance(f["sha256"], str) for f in files):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UsageError(f"{mpath} is not a readable case manifest") from None
    changed, missing, problems = [], [], []
    for path, f in sorted(listed.items()):
        p = folder / path
        if "/" in path or "\\" in path or path.startswith("."):
            problems.append(f"manifest names an unexpected path {path!r}")
            continue
        if not p.is_file():
            missing.append(path)
        elif file_sha256(p) != f["sha256"]:
            changed.append(path)
    added = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST and p.name not in listed)
    if chain_hash(anchor, files) != manifest.get("chain"):
        problems.append("manifest.json was edited: its hash chain does not match the listed hashes")
        changed.append(MANIFEST)
    from distillguard import audit

    con = None
    if db is not None:
        from distillguard.privacy.encryption import connect

        con = connect(str(db), read_only=True, key_file=db_key_file)
    try:
        from distillguard import signing

        trusted = audit.trusted_public_key(public_key)
        if trusted is None:
            problems.append("no trusted public key to check the signature (distillguard keys init; --public-key)")
        else:
            why = signing.verify(trusted, _signed_bytes(manifest), manifest.get("signature"))
            if why:
                problems.append(f"manifest signature: {why}")
        if con is not None:
            seq = manifest["audit_head"].get("seq", 0)
            if seq:
                r = audit.first(con.execute("SELECT row_hash FROM audit_log WHERE seq = ?", [seq])) if table_exists(con, "audit_log") else None
                if r is None or r[0] != anchor:
                    problems.append(f"audit log entry #{seq} in the store does not match the manifest's audit head")
            ok, bad = audit.verify_audit_chain(con)
            if not ok:
                problems.append(f"the store's audit log chain is broken at entry #{bad}")
            why = audit.verify_audit_signature(con, trusted)
            if why:
                problems.append(why)
    finally:
        if con is not None:
            con.close()
    return {"ok": not (changed or missing or added or problems), "changed": changed, "missing": missing,
            "added": added, "problems": problems, "campaign_id": manifest.get("campaign_id"), "audit_head": manifest.get("audit_head")}
