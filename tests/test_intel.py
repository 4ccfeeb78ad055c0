"""Intel exchange units: keys, keyed hashes, CSV lists, CIDR containment, validity, one-account matching, CLI errors."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.errors import UsageError
from distillguard.intel import (
    IntelIndex, generate_key, known_indicator_evidence, import_asn_map, import_bundle, import_csv, key_id, keyed_hash, known_indicator_scores,
    load_key, match_known_indicators, resolve_key,
)
from distillguard.intel.keys import canonical
from distillguard.intel.techniques import attack_pattern_id, techniques_for
from distillguard.store import EventStore

KEY = bytes.fromhex("11" * 32)
MEM = pa.schema([("account_id", pa.string()), ("kind", pa.string()), ("value", pa.string())])


def _mem(rows):
    return pa.Table.from_pylist([dict(zip(("account_id", "kind", "value"), r)) for r in rows], schema=MEM)


@pytest.fixture()
def store():
    with EventStore(":memory:") as s:
        yield s


def test_keyed_hash_canonical_and_namespaced():
    assert keyed_hash(KEY, "client_ip", " 10.0.0.1 ") == keyed_hash(KEY, "client_ip", "10.0.0.1/32")
    assert keyed_hash(KEY, "subnet", "10.0.0.7/24") == keyed_hash(KEY, "cidr", "10.0.0.0/24")
    assert keyed_hash(KEY, "payment_fingerprint", "PM_AB") == keyed_hash(KEY, "payment_fingerprint", "pm_ab")
    assert keyed_hash(KEY, "user_agent", "x") != keyed_hash(KEY, "email_domain", "x")  # namespaces differ
    assert keyed_hash(KEY, "user_agent", "x") != keyed_hash(bytes.fromhex("22" * 32), "user_agent", "x")
    assert len(keyed_hash(KEY, "asn", "AS64500")) == 64
    assert canonical("asn", "as 64500") == "AS64500"
    assert canonical("entity", "  ACME-AI, Ltd. ") == "acme ai ltd"
    with pytest.raises(ValueError):
        canonical("client_ip", "not-an-ip")
    with pytest.raises(UsageError):
        canonical("account_id", "a")  # account ids are never an indicator kind


def test_key_files(tmp_path, monkeypatch):
    k = generate_key()
    assert len(k) == 64 and k != generate_key()
    (tmp_path / "k").write_text(k + "\n")
    assert load_key(tmp_path / "k") == bytes.fromhex(k)
    (tmp_path / "bad").write_text("short")
    with pytest.raises(UsageError):
        load_key(tmp_path / "bad")
    with pytest.raises(UsageError):
        load_key(tmp_path / "missing")
    monkeypatch.delenv("DISTILLGUARD_INTEL_KEY", raising=False)
    assert resolve_key(None) is None
    monkeypatch.setenv("DISTILLGUARD_INTEL_KEY", k)
    assert resolve_key(None) == bytes.fromhex(k)
    monkeypatch.setenv("DISTILLGUARD_INTEL_KEY", str(tmp_path / "k"))
    assert resolve_key(None) == bytes.fromhex(k)
    assert key_id(bytes.fromhex(k)) != k[:16]


def test_government_csv_list_cidr_containment_and_kinds(store, tmp_path):
    lst = tmp_path / "gov.csv"
    lst.write_text(
        "type,value,confidence\n"
        "cidr,203.0.113.0/22,90\n"
        "ip,198.51.100.9,\n"
        "ip,2001:db8::1,\n"
        "cidr,2001:db8:1::/48,\n"
        "payment_hash,PM_DEADBEEF,\n"
        "entity,Acme AI Labs,70\n"
        "email_domain,harvest.example,\n"
        "user_agent,harvester/1.0,\n"
        "ja4,t13d1516h2_8daaf6152771_02713d6af862,\n"
        "client_fingerprint,h2:1:65536;2:0;4:6291456;6:262144|15663105|0|m;a;s;p,\n"
        "asn,AS64500,60\n"
        "bogus,x,\n"
        "ip,999.1.1.1,\n"
    )
    got = import_csv(store, KEY, lst, source="gov-list")
    assert got["imported"] == 11 and got["rejected"] == 2
    raw = store.con.execute("SELECT * FROM intel_indicators").fetchall()
    assert "203.0.113" not in json.dumps(raw, default=str)  # stored keyed, never raw
    (tmp_path / "asn.csv").write_text("cidr,asn\n192.0.2.0/24,AS64500\n")
    assert import_asn_map(store, tmp_path / "asn.csv") == 1
    mem = _mem([
        ("a1", "client_ip", "203.0.114.77"),      # inside the /22
        ("a2", "client_ip", "203.0.116.1"),       # outside
        ("a3", "client_ip", "198.51.100.9"),
        ("a4", "client_ip", "2001:db8:1:5::9"),   # inside the /48
        ("a5", "payment_fingerprint", "pm_deadbeef"),
        ("a6", "email_domain", "acme-ai-labs.com"),  # entity name via the domain's stem
        ("a7", "email_domain", "harvest.example"),
        ("a8", "user_agent", "harvester/1.0"),   # a user agent alone is too weak
        ("a12", "user_agent", "harvester/1.0"),  # ... but counts next to another match
        ("a12", "payment_fingerprint", "PM_DEADBEEF"),
        ("a9", "client_ip", "192.0.2.44"),        # ASN via the local map
        ("a10", "user_agent", "Mozilla/5.0"),
        ("a11", "client_ip", "2001:db8::1"),
        ("a13", "client_fingerprint", "t13d1516h2_8daaf6152771_02713d6af862"),  # a fingerprint alone is weak too
        ("a14", "client_fingerprint", "h2:1:65536;2:0;4:6291456;6:262144|15663105|0|m;a;s;p"),  # ... next to a card
        ("a14", "payment_fingerprint", "pm_deadbeef"),
    ])
    m = match_known_indicators(store, mem, KEY)
    hit = {r["account_id"]: r for r in m.to_pylist()}
    assert set(hit) == {"a1", "a3", "a4", "a5", "a6", "a7", "a9", "a11", "a12", "a14"}
    assert sorted(r["kind"] for r in m.to_pylist() if r["account_id"] == "a14") == ["client_fingerprint", "payment_fingerprint"]
    assert sorted(r["kind"] for r in m.to_pylist() if r["account_id"] == "a12") == ["payment_fingerprint", "user_agent"]
    assert hit["a1"]["kind"] == "cidr" and hit["a1"]["confidence"] == 90 and hit["a1"]["source"] == "gov-list"
    assert hit["a9"]["kind"] == "asn" and hit["a6"]["kind"] == "entity"
    ev = known_indicator_evidence(m)
    assert ev["a12"][0]["kind"] == "payment_fingerprint" and "account_id" not in ev["a12"][0]
    scores = known_indicator_scores(m, ["a1", "a2", "a6"])
    assert scores.tolist() == [0.9, 0.0, 0.7]
    # a wrong key matches nothing
    assert match_known_indicators(store, mem, bytes.fromhex("22" * 32)).num_rows == 0


def test_csv_needs_header(store, tmp_path):
    (tmp_path / "x.csv").write_text("1.2.3.4\n")
    with pytest.raises(UsageError):
        import_csv(store, KEY, tmp_path / "x.csv", source="s")


def test_validity_window(store, tmp_path):
    (tmp_path / "l.csv").write_text("type,value,valid_until\nip,10.1.1.1,2020-01-01T00:00:00Z\nip,10.1.1.2,\n")
    import_csv(store, KEY, tmp_path / "l.csv", source="s")
    mem = _mem([("old", "client_ip", "10.1.1.1"), ("new", "client_ip", "10.1.1.2")])
    assert match_known_indicators(store, mem, KEY).column("account_id").to_pylist() == ["new"]
    past = datetime(2019, 6, 1, tzinfo=timezone.utc)
    assert match_known_indicators(store, mem, KEY, at=past).num_rows == 0  # not yet valid then


def test_template_matches_need_several_bands(store):
    from distillguard.link import memberships as mb

    prompts = [f"You are a grader. Score the following answer from 1 to 10 against the rubric and explain: answer number {i} about topic {i}" for i in range(6)]
    t = mb.templates(pa.table({"account_id": ["op"] * 6, "prompt": prompts}))
    idx = IntelIndex(KEY)
    for i, v in enumerate(sorted(set(t.column("value").to_pylist()))):
        idx.add("peer", f"indicator--{i}", "template", keyed_hash(KEY, "template", v), confidence=80)
    same = idx.match_account("b1", prompts=["You are a grader. Score the following answer from 1 to 10 against the rubric and explain: answer number 99 about topic 7"])
    assert same and {m["kind"] for m in same} == {"template"}
    other = idx.match_account("b2", prompts=["What is a good recipe for a vegetarian lasagna with spinach and ricotta for six people?"])
    assert other == []
    one = IntelIndex(KEY)  # a single shared band is not enough
    v = t.column("value").to_pylist()[0]
    one.add("peer", "indicator--x", "template", keyed_hash(KEY, "template", v), confidence=80)
    assert one.match(_mem([("c", "template", v)])).num_rows == 0


def test_match_account_for_the_decision_service(store, tmp_path):
    (tmp_path / "l.csv").write_text("type,value\ncidr,100.64.0.0/16\npayment_hash,pm_x\nja3,e7d705a3286e19ea42f587b344ee6865\n")
    import_csv(store, KEY, tmp_path / "l.csv", source="gov")
    idx = IntelIndex.from_store(store, KEY)
    assert len(idx) == 3
    hits = idx.match_account("acct", client_ips=["100.64.3.3", "8.8.8.8"], payment_fingerprint="PM_X", user_agents=["curl/8"],
                             client_fingerprints=["e7d705a3286e19ea42f587b344ee6865"])
    assert sorted(h["kind"] for h in hits) == ["cidr", "client_fingerprint", "payment_fingerprint"]
    assert idx.match_account("acct", client_fingerprints=["e7d705a3286e19ea42f587b344ee6865"]) == []  # weak alone
    assert idx.match_account("acct", client_ips=["garbage"]) == []


def test_bundle_under_another_key_is_refused(store, tmp_path):
    from distillguard.intel.export import indicator_pattern

    import stix2

    other = bytes.fromhex("33" * 32)
    ind = stix2.Indicator(pattern=indicator_pattern("client_ip", keyed_hash(other, "client_ip", "1.2.3.4")), pattern_type="stix",
                          valid_from="2026-01-01T00:00:00Z", x_distillguard_key_id=key_id(other), allow_custom=True)
    b = tmp_path / "b.json"
    b.write_text(stix2.Bundle(ind, allow_custom=True).serialize())
    with pytest.raises(UsageError, match="key id"):
        import_bundle(store, KEY, b)
    (tmp_path / "nb.json").write_text('{"type": "report"}')
    with pytest.raises(UsageError):
        import_bundle(store, KEY, tmp_path / "nb.json")


def test_plain_stix_indicators_are_keyed_on_import(store):
    import stix2

    ind = stix2.Indicator(pattern="[ipv4-addr:value = '192.0.2.0/24'] OR [autonomous-system:number = 64501]", pattern_type="stix",
                          valid_from="2026-01-01T00:00:00Z", confidence=75)
    got = import_bundle(store, KEY, json.loads(stix2.Bundle(ind).serialize()), source="cert")
    assert got["imported"] == 2
    m = match_known_indicators(store, _mem([("a", "client_ip", "192.0.2.200")]), KEY)
    assert m.to_pylist() == [{"account_id": "a", "source": "cert", "indicator_id": ind.id, "kind": "cidr", "confidence": 75}]


def test_techniques_map_reason_codes():
    assert techniques_for(["COT_ELICITATION", "RUBRIC_GRADING", "JAILBREAK", "SHARED_INFRA", "UNKNOWN"]) == [
        "jailbreak-wrapping", "proxy-rotation", "reasoning-trace-coercion", "rubric-harvesting"]
    assert attack_pattern_id("proxy-rotation") == attack_pattern_id("proxy-rotation")


def test_cli_errors_exit_2(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.delenv("DISTILLGUARD_INTEL_KEY", raising=False)
    run = lambda *a: subprocess.run([sys.executable, "-m", "distillguard.cli", "intel", *a], capture_output=True, text=True)  # noqa: E731
    r = run("import", str(tmp_path / "x.json"), "--db", str(tmp_path / "db.duckdb"))
    assert r.returncode == 2 and "no intel key" in r.stderr and "Traceback" not in r.stderr
    r = run("export", "--db", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "o.json"))
    assert r.returncode == 2 and "no such store" in r.stderr
    (tmp_path / "k").write_text(generate_key())
    with EventStore(tmp_path / "empty.duckdb"):
        pass
    r = run("export", "--db", str(tmp_path / "empty.duckdb"), "--key-file", str(tmp_path / "k"), "--out", str(tmp_path / "o.json"))
    assert r.returncode == 2 and "scan" in r.stderr
    r = run("keygen", "--out", str(tmp_path / "k"))
    assert r.returncode == 2 and "overwrite" in r.stderr


def test_cli_csv_import(tmp_path):
    (tmp_path / "k").write_text(generate_key())
    (tmp_path / "l.csv").write_text("type,value\nip,10.0.0.1\nnope,1\n")
    r = CliRunner().invoke(app, ["intel", "import", str(tmp_path / "l.csv"), "--source", "gov", "--db", str(tmp_path / "d.duckdb"),
                                 "--key-file", str(tmp_path / "k"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["imported"] == 1 and out["rejected"] == 1 and out["stored"] == 1


def test_read_only_store_without_intel_matches_nothing(tmp_path):
    with EventStore(tmp_path / "s.duckdb"):
        pass
    with EventStore(tmp_path / "s.duckdb", read_only=True) as ro:
        assert match_known_indicators(ro, _mem([("a", "client_ip", "10.0.0.1")]), KEY).num_rows == 0
        assert len(IntelIndex.from_store(ro, KEY)) == 0


def test_template_indicators_of_another_scheme_are_skipped():
    from distillguard.intel.match import template_scheme

    assert template_scheme() == template_scheme() and template_scheme().startswith("minhash")
    idx = IntelIndex(KEY)
    idx.add("peer", "indicator--old", "template", keyed_hash(KEY, "template", "b0:00"), scheme="minhash48-bands12-000000000000")
    idx.add("peer", "indicator--new", "template", keyed_hash(KEY, "template", "b0:00"), scheme=template_scheme())
    assert [h.indicator_id for hs in idx.by_hash.values() for h in hs] == ["indicator--new"]
