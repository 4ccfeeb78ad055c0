"""TAXII 2.1 push and pull against a real medallion server (memory backend) on loopback."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid

import pytest

pytest.importorskip("medallion")
pytest.importorskip("taxii2client")

from distillguard.intel import generate_key, import_objects  # noqa: E402
from distillguard.intel.export import indicator_pattern  # noqa: E402
from distillguard.intel.keys import key_id, keyed_hash  # noqa: E402
from distillguard.intel.match import IntelIndex  # noqa: E402
from distillguard.intel.taxii import pull, push  # noqa: E402
from distillguard.store import EventStore  # noqa: E402

COLLECTION = "472c94ae-3113-4e3e-a4dd-a9f4ac7471d4"
USER, PASSWORD = "dg", "dg-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def taxii_url(tmp_path_factory):
    port = _free_port()
    d = tmp_path_factory.mktemp("medallion")
    base = f"http://127.0.0.1:{port}"
    data = {
        "/discovery": {"title": "test", "description": "distillguard test server", "default": f"{base}/api1/",
                       "api_roots": [f"{base}/api1/"]},
        "api1": {
            "information": {"title": "api1", "description": "test root", "versions": ["application/taxii+json;version=2.1"],
                            "max_content_length": 50_000_000},
            "status": [],
            "collections": [{
                "id": COLLECTION, "title": "distillation intel", "description": "", "can_read": True, "can_write": True,
                "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": [],
            }],
        },
    }
    (d / "data.json").write_text(json.dumps(data))
    cfg = {"backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                       "filename": str(d / "data.json")},
           "users": {USER: PASSWORD}, "taxii": {"max_page_size": 100}}
    (d / "config.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from medallion.scripts.run import main; main()", "--host", "127.0.0.1", "--port", str(port),
         str(d / "config.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("medallion exited: " + proc.stderr.read().decode()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("medallion did not start")
    yield f"{base}/api1/collections/{COLLECTION}/"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _bundle(key: bytes, n: int) -> dict:
    import stix2

    objs = []
    for i in range(n):
        ip = f"198.51.100.{i}"
        objs.append(json.loads(stix2.Indicator(
            pattern=indicator_pattern("client_ip", keyed_hash(key, "client_ip", ip)), pattern_type="stix",
            valid_from="2026-01-01T00:00:00Z", confidence=90, object_marking_refs=[stix2.TLP_AMBER],
            x_distillguard_kind="client_ip", x_distillguard_key_id=key_id(key), x_distillguard_prefix_len=32,
            allow_custom=True,
        ).serialize()))
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objs}


def test_push_pull_import_match(taxii_url):
    key = bytes.fromhex(generate_key())
    status = push(_bundle(key, 150), taxii_url, USER, PASSWORD)
    assert status["success"] == 150 and status["failure"] == 0
    objs = pull(taxii_url, USER, PASSWORD, per_request=40)  # paged
    assert len(objs) == 150
    with EventStore(":memory:") as store:
        got = import_objects(store, key, objs, source="peer")
        assert got["imported"] == 150
        idx = IntelIndex.from_store(store, key)
        assert idx.match_account("x", client_ips=["198.51.100.7"])
        assert not idx.match_account("x", client_ips=["198.51.101.7"])


def test_bad_credentials_are_a_usage_error(taxii_url):
    from distillguard.errors import UsageError

    with pytest.raises(UsageError):
        pull(taxii_url, USER, "wrong")


def test_cli_export_push_and_import_pull(taxii_url, tmp_path):
    """The CLI pulls from a collection (here filled by push) into a store."""
    from typer.testing import CliRunner

    from distillguard.cli import app

    key = generate_key()
    kf = tmp_path / "k.key"
    kf.write_text(key)
    push(_bundle(bytes.fromhex(key), 3), taxii_url, USER, PASSWORD)
    r = CliRunner().invoke(app, ["intel", "import", "--taxii", taxii_url, "--taxii-user", USER, "--taxii-password", PASSWORD,
                                 "--db", str(tmp_path / "b.duckdb"), "--key-file", str(kf), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["imported"] >= 3


def _results_only_store(path):
    """A store with scan results but no events (as the Spark engine leaves it)."""
    s = EventStore(path)
    s.con.execute(
        "CREATE TABLE campaigns AS SELECT 'r1' AS run_id, 'C-0001' AS campaign_id, 0.97 AS risk, 'block' AS action, "
        "40::BIGINT AS n_accounts, 900::BIGINT AS n_events, TIMESTAMPTZ '2026-03-02 01:00:00+00' AS first_seen, "
        "TIMESTAMPTZ '2026-03-04 01:00:00+00' AS last_seen, ['COT_ELICITATION', 'SHARED_INFRA', 'RUBRIC_GRADING'] AS reasons, "
        "'{}' AS evidence_json")
    s.con.execute(
        "CREATE TABLE campaign_indicators AS SELECT * FROM (VALUES "
        "('C-0001', 'client_ip', '203.0.113.50', 3.5), ('C-0001', 'payment_fingerprint', 'pm_feedface', 9.0), "
        "('C-0001', 'subnet', '203.0.113.0/24', 1.0)) t(campaign_id, kind, value, weight)")
    return s


def test_cli_export_pushes_and_logs_both_disclosures(taxii_url, tmp_path):
    from typer.testing import CliRunner

    from distillguard.cli import app

    key = generate_key()
    (tmp_path / "k").write_text(key)
    _results_only_store(tmp_path / "a.duckdb").close()
    r = CliRunner().invoke(app, [
        "intel", "export", "--db", str(tmp_path / "a.duckdb"), "--key-file", str(tmp_path / "k"), "--out", str(tmp_path / "b.json"),
        "--recipient", "consortium", "--taxii", taxii_url, "--taxii-user", USER, "--taxii-password", PASSWORD, "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["indicators"] == 3 and s["taxii"]["failure"] == 0 and s["taxii"]["success"] == s["objects"]
    text = (tmp_path / "b.json").read_text()
    assert "203.0.113" not in text and "pm_feedface" not in text and "C-0001" not in text
    with EventStore(tmp_path / "a.duckdb") as st:
        dest = sorted(d for (d,) in st.con.execute("SELECT destination FROM intel_disclosures").fetchall())
    assert dest == sorted([str(tmp_path / "b.json"), taxii_url])
    # a peer pulls it and matches the operator's proxy /24 and card
    with EventStore(":memory:") as peer:
        import_objects(peer, bytes.fromhex(key), pull(taxii_url, USER, PASSWORD), source="consortium")
        idx = IntelIndex.from_store(peer, bytes.fromhex(key))
        kinds = sorted(h["kind"] for h in idx.match_account("p", client_ips=["203.0.113.9"], payment_fingerprint="PM_FEEDFACE"))
    assert kinds == ["payment_fingerprint", "subnet"]
