"""Case files: export from a real scan, verify, tamper, and the planted script never runs in the case page."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

CHROMIUM = Path("/usr/bin/chromium")
PAYLOAD = "<script>window.__pwned=1;document.title='PWNED'</script><img src=x onerror=\"window.__pwned=1;document.title='PWNED'\">"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module", autouse=True)
def signing_keys(tmp_path_factory):
    """A key pair for this module's evidence (the CLI subprocesses find it through $DISTILLGUARD_KEYS)."""
    folder = tmp_path_factory.mktemp("keys")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILLGUARD_KEYS", str(folder))
        proc = _cli("keys", "init")
        assert proc.returncode == 0, proc.stderr
        yield folder


@pytest.fixture(scope="module")
def scanned(smoke_traffic, tmp_path_factory):
    work = tmp_path_factory.mktemp("case")
    ev = pq.read_table(smoke_traffic / "events.parquet")
    labels = pq.read_table(smoke_traffic / "labels.parquet").to_pylist()
    attackers = {r["account_id"] for r in labels if r["campaign_id"]}
    rows = ev.to_pylist()
    for r in rows:
        if r["account_id"] in attackers:
            r["prompt"] = (r["prompt"] or "") + "\n" + PAYLOAD
    pq.write_table(pa.Table.from_pylist(rows, schema=ev.schema), work / "events.parquet")
    db = work / "dg.duckdb"
    proc = _cli("scan", work / "events.parquet", "--accounts", smoke_traffic / "accounts.parquet", "--db", db,
                "--out", work / "scan", "--quiet")
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(db))
    cid = con.execute("SELECT campaign_id FROM campaigns ORDER BY risk DESC, n_accounts DESC LIMIT 1").fetchall()[0][0]
    from distillguard.audit import record_action

    record_action(con, action="confirm", target_kind="campaign", target_id=cid, analyst="alice <b>", reason="shared cards " + PAYLOAD)
    con.close()
    return db, cid, work


@pytest.fixture(scope="module")
def exported(scanned):
    db, cid, work = scanned
    out = work / "case-full"
    pdf = CHROMIUM.exists()
    proc = _cli("case", "export", cid, "--db", db, "--out", out, *([] if pdf else ["--no-pdf"]))
    assert proc.returncode == 0, proc.stderr
    return out, pdf


def _copy(exported, tmp_path):
    dst = tmp_path / "case"
    shutil.copytree(exported[0], dst)
    return dst


def test_case_file_holds_every_section(exported, scanned):
    out, pdf = exported
    db, cid, _ = scanned
    names = {p.name for p in out.iterdir()}
    assert {"case.html", "case.json", "accounts.csv", "manifest.json"} <= names
    if pdf:
        assert (out / "case.pdf").read_bytes()[:5] == b"%PDF-"
    html = (out / "case.html").read_text()
    for section in ("Summary", "Timeline", "Accounts", "Infrastructure", "Harvested volume and capabilities",
                    "Evidence samples", "Analyst decisions", "Integrity"):
        assert section in html
    assert "<script" not in html.replace("&lt;script", "") and "onerror=\"" not in html
    facts = json.loads((out / "case.json").read_text())
    assert facts["campaign_id"] == cid and facts["status"] == "confirmed"
    assert [d["action"] for d in facts["analyst_decisions"]] == ["confirm"]
    assert facts["harvested"]["total"] > 0 and facts["capabilities"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audit_head"]["seq"] == 1
    assert {f["path"] for f in manifest["files"]} == names - {"manifest.json"}


def test_verify_intact(exported, scanned):
    proc = _cli("case", "verify", exported[0], "--db", scanned[0])
    assert proc.returncode == 0, proc.stderr
    assert "intact" in proc.stdout


@pytest.mark.parametrize("victim", ["case.html", "accounts.csv", "case.json"])
def test_verify_names_the_tampered_file(exported, tmp_path, victim):
    case = _copy(exported, tmp_path)
    p = case / victim
    p.write_bytes(p.read_bytes().replace(b"block", b"allow", 1) + b" ")
    proc = _cli("case", "verify", case)
    assert proc.returncode == 1
    assert f"changed: {victim}" in proc.stderr and victim in proc.stdout


def test_verify_removed_added_and_edited_manifest(exported, tmp_path):
    case = _copy(exported, tmp_path)
    (case / "accounts.csv").unlink()
    (case / "notes.txt").write_text("added later")
    proc = _cli("case", "verify", case)
    assert proc.returncode == 1 and "missing: accounts.csv" in proc.stderr and "added: notes.txt" in proc.stderr

    case2 = tmp_path / "case2"
    shutil.copytree(exported[0], case2)
    (case2 / "case.json").write_text("{}")
    m = json.loads((case2 / "manifest.json").read_text())
    from distillguard.case.export import file_sha256

    for f in m["files"]:
        if f["path"] == "case.json":
            f["sha256"] = file_sha256(case2 / "case.json")  # forger updates the hash but not the chain
    (case2 / "manifest.json").write_text(json.dumps(m))
    proc = _cli("case", "verify", case2)
    assert proc.returncode == 1 and "manifest.json" in proc.stderr


def test_verify_detects_an_edited_audit_log(exported, scanned, tmp_path):
    db, _, _ = scanned
    db2 = tmp_path / "copy.duckdb"
    shutil.copy(db, db2)
    con = duckdb.connect(str(db2))
    con.execute("UPDATE audit_log SET analyst = 'mallory' WHERE seq = 1")
    con.close()
    proc = _cli("case", "verify", exported[0], "--db", db2)
    assert proc.returncode == 1 and "audit log" in proc.stderr


def test_verify_unusable_input_exits_2(tmp_path):
    assert _cli("case", "verify", tmp_path / "nothing").returncode == 2
    (tmp_path / "manifest.json").write_text("not json")
    proc = _cli("case", "verify", tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = _cli("case", "export", "C-nope", "--db", tmp_path / "none.duckdb", "--out", tmp_path / "o")
    assert proc.returncode == 2


@pytest.mark.slow
def test_case_page_does_not_run_planted_script(exported):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    from distillguard.case.pdf import LAUNCH_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = b.new_page()
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto((exported[0] / "case.html").resolve().as_uri())
            assert "<script>window.__pwned" in page.locator("body").inner_text()
            assert page.evaluate("window.__pwned") is None and page.title() != "PWNED" and not dialogs
            art = Path(__file__).resolve().parents[1] / "test-artifacts" / "case"
            art.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(art / "case.png"), full_page=True)
        finally:
            b.close()


# -- an encrypted store (docs/privacy.md): the export follows its key or refuses before writing anything -------
STORE_KEY = "correct horse battery staple 42"


def _encrypted_copy(plain, enc):
    """The store, encrypted by DuckDB. Without its httpfs extension (OpenSSL) DuckDB writes one only when told its
    fallback is acceptable: a test may say so, distillguard never does."""
    con = duckdb.connect()
    con.execute("SET force_mbedtls_unsafe = 'true'")
    con.execute(f"ATTACH '{plain}' AS p (READ_ONLY)")
    con.execute(f"ATTACH '{enc}' AS e (ENCRYPTION_KEY '{STORE_KEY}')")
    con.execute("COPY FROM DATABASE p TO e")
    con.close()


def _refused(p, *words):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert all(w in p.stderr for w in words), p.stderr


def test_export_from_an_encrypted_store_needs_its_key_and_records_itself_there(scanned, tmp_path):
    db, cid, _ = scanned
    enc, key = tmp_path / "enc.duckdb", tmp_path / "db.key"
    key.write_text(STORE_KEY + "\n")
    _encrypted_copy(db, enc)
    out = tmp_path / "case"
    _refused(_cli("case", "export", cid, "--db", enc, "--out", out, "--no-pdf"), "encrypted", "--db-key-file")
    assert not out.exists()
    p = _cli("case", "export", cid, "--db", enc, "--out", out, "--no-pdf", "--db-key-file", key)
    try:
        duckdb.connect().execute("LOAD httpfs")
    except duckdb.Error:  # the export's record cannot be written securely here: refused before any copy exists
        _refused(p, "httpfs")
        assert not out.exists()
        return
    assert p.returncode == 0, p.stderr
    con = duckdb.connect()
    con.execute(f"ATTACH '{enc}' AS e (ENCRYPTION_KEY '{STORE_KEY}', READ_ONLY)")
    assert (cid, str(out.resolve())) in con.execute("SELECT campaign_id, path FROM e.case_exports").fetchall()


def test_verify_reads_an_encrypted_store_with_its_key(exported, scanned, tmp_path):
    db, _, _ = scanned
    enc, key = tmp_path / "enc.duckdb", tmp_path / "db.key"
    key.write_text(STORE_KEY + "\n")
    _encrypted_copy(db, enc)  # the same audit log, kept encrypted
    out = _copy(exported, tmp_path)
    _refused(_cli("case", "verify", out, "--db", enc), "encrypted", "--db-key-file")
    p = _cli("case", "verify", out, "--db", enc, "--db-key-file", key)
    assert p.returncode == 0 and p.stdout.startswith("intact"), (p.stdout, p.stderr)
    (out / "accounts.csv").write_text("account_id\n")
    assert _cli("case", "verify", out, "--db", enc, "--db-key-file", key).returncode == 1
