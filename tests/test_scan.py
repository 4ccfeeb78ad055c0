"""distillguard scan end to end: real CLI, real DuckDB files, simulated traffic."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq
import pytest

ACTIONS = {"allow", "monitor", "challenge", "throttle", "block"}


def _cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


@pytest.fixture(scope="module")
def scanned(smoke_traffic, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    db = out / "dg.duckdb"
    proc = _cli("scan", smoke_traffic / "events.parquet", "--accounts", smoke_traffic / "accounts.parquet",
                "--db", db, "--out", out / "results", "--json", "--quiet")
    return smoke_traffic, out / "results", db, json.loads(proc.stdout)


def test_every_account_gets_a_risk_an_action_and_reasons(scanned):
    traffic, results, _, summary = scanned
    acc = pq.read_table(results / "accounts.parquet").to_pylist()
    seen = set(pq.read_table(traffic / "events.parquet", columns=["account_id"]).column(0).to_pylist())
    seen |= set(pq.read_table(traffic / "accounts.parquet", columns=["account_id"]).column(0).to_pylist())
    assert {a["account_id"] for a in acc} == seen
    assert all(0.0 <= a["risk"] <= 1.0 and a["action"] in ACTIONS for a in acc)
    flagged = [a for a in acc if a["action"] in ("challenge", "throttle", "block")]
    assert flagged and all(a["reasons"] for a in flagged), "every flag says why"
    for a in flagged[:20]:
        details = json.loads(a["reasons_json"])
        assert [d["code"] for d in details] == a["reasons"]
    assert summary["ingest"]["read"] == summary["ingest"]["accepted"] + summary["ingest"]["quarantined"] + summary["ingest"]["duplicates"]


def test_campaigns_json_matches_the_accounts_table(scanned):
    _, results, _, summary = scanned
    doc = json.loads((results / "campaigns.json").read_text())
    acc = {a["account_id"]: a for a in pq.read_table(results / "accounts.parquet").to_pylist()}
    assert len(doc["campaigns"]) == summary["campaigns"] > 0
    for c in doc["campaigns"]:
        assert {"campaign_id", "risk", "accounts", "n_events", "first_seen", "last_seen", "reasons", "shared", "example_prompts"} <= set(c)
        assert all(acc[a]["campaign_id"] == c["campaign_id"] for a in c["accounts"])
        assert c["n_events"] == sum(acc[a]["n_events"] for a in c["accounts"])
        assert c["timeline"] and sum(n for _, n in c["timeline"]) == c["n_events"]
    ids = {c["campaign_id"] for c in doc["campaigns"]}
    assert {a["campaign_id"] for a in acc.values() if a["campaign_id"]} == ids


def test_a_scan_without_a_store_keeps_no_responses_and_decides_the_same(scanned, tmp_path):
    """Without --db the scan's temporary store leaves the response texts out (no stage reads them: they are
    neither redacted nor written); the decisions are those of the scan that kept everything in its store."""
    from distillguard.ingest import ingest_files
    from distillguard.store import EventStore

    traffic, results, db, _ = scanned
    _cli("scan", traffic / "events.parquet", "--accounts", traffic / "accounts.parquet", "--out", tmp_path / "results",
         "--json", "--quiet")
    kept, scratch = (pq.read_table(d / "accounts.parquet") for d in (results, tmp_path / "results"))
    assert scratch.equals(kept)
    with EventStore(tmp_path / "scratch.duckdb", scratch=True) as store:
        ingest_files([str(traffic / "events.parquet")], store, progress=False)
        thin = store.con.sql("SELECT * FROM events ORDER BY event_id").to_arrow_table()
    with EventStore(db, read_only=True) as store:
        full = store.con.sql("SELECT * FROM events ORDER BY event_id").to_arrow_table()
    assert full.column("response").null_count < full.num_rows and thin.column("response").null_count == thin.num_rows
    assert thin.drop_columns(["response"]).equals(full.drop_columns(["response"]))


def test_results_are_stored_for_the_service(scanned):
    _, _, db, summary = scanned
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM account_results").fetchall()[0][0] == summary["accounts"]
    assert con.execute("SELECT count(*) FROM campaigns").fetchall()[0][0] == summary["campaigns"]
    kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM campaign_indicators").fetchall()}
    assert kinds and kinds <= {"payment_fingerprint", "client_ip", "subnet", "user_agent", "email_domain", "template"}
    assert con.execute("SELECT count(*) FROM scan_runs").fetchall()[0][0] == 1


def test_quality_on_unseen_phrasing(scanned):
    from distillguard.evaluate import evaluate

    traffic, results, _, _ = scanned
    m = evaluate(traffic / "labels.parquet", results)["systems"]["scan"]
    assert m["roc_auc"] >= 0.95
    assert m["policy"]["fpr"] <= 0.01
    assert m["campaigns_found"]["found"] >= m["campaigns_found"]["total"] // 2


def test_the_report_escapes_attacker_controlled_text(smoke_traffic, tmp_path):
    events = pq.read_table(smoke_traffic / "events.parquet").to_pylist()[:400]
    evil = '<script>window.__pwned=1</script><img src=x onerror="alert(1)">'
    for e in events[:50]:
        e["prompt"] = evil + " show your full reasoning, every hidden step"
        e["user_agent"] = evil
    src = tmp_path / "evil.jsonl"
    src.write_text("\n".join(json.dumps(e, default=str) for e in events))
    _cli("scan", src, "--out", tmp_path / "out", "--quiet")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>" not in html and "onerror=\"" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_bad_records_are_quarantined_and_the_scan_goes_on(smoke_traffic, tmp_path):
    events = pq.read_table(smoke_traffic / "events.parquet").to_pylist()[:300]
    lines = [json.dumps(e, default=str) for e in events]
    lines[10] = "{not json"
    lines[20] = json.dumps({"prompt": "no timestamp, no subject"})
    lines[30] = json.dumps({**events[30], "output_tokens": -5}, default=str)
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n\n")
    proc = _cli("scan", src, "--out", tmp_path / "out", "--json", "--quiet")
    counts = json.loads(proc.stdout)["ingest"]
    assert counts["quarantined"] == 3 and counts["read"] == 300 and counts["accepted"] == 297
    quarantine = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert len(quarantine) == 3 and all(q["reason"] for q in quarantine)


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "missing.jsonl", "--out", "x"], "missing.jsonl"),
        (["scan", "EVENTS", "--out", "x", "--policy", "POLICY"], "policy"),
        (["scan", "--out", "x"], "Missing argument"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, smoke_traffic, tmp_path):
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("rules: [{id: a, action: nuke}]")
    args = [str(smoke_traffic / "events.parquet") if a == "EVENTS" else str(bad_policy) if a == "POLICY" else a for a in args]
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and message in proc.stderr


def test_allowlisted_accounts_are_allowed_whatever_their_risk(scanned, tmp_path):
    traffic, results, _, _ = scanned
    acc = pq.read_table(results / "accounts.parquet").to_pylist()
    top = max(acc, key=lambda a: a["risk"])
    policy = (tmp_path / "policy.yaml")
    from importlib import resources

    text = resources.files("distillguard.score").joinpath("policy.yaml").read_text()
    policy.write_text(text.replace("  accounts: []", f"  accounts: [{top['account_id']}]"))
    _cli("scan", traffic / "events.parquet", "--accounts", traffic / "accounts.parquet", "--out", tmp_path / "out",
         "--policy", policy, "--quiet")
    again = {a["account_id"]: a for a in pq.read_table(tmp_path / "out" / "accounts.parquet").to_pylist()}
    assert again[top["account_id"]]["action"] == "allow" and again[top["account_id"]]["rule_id"] == "allowlisted"
    # everything else is decided exactly as before: the scan is deterministic
    for a in acc:
        if a["account_id"] != top["account_id"]:
            b = again[a["account_id"]]
            assert (b["risk"], b["action"], b["campaign_id"]) == (a["risk"], a["action"], a["campaign_id"])


def test_the_scan_does_not_depend_on_the_row_order_of_its_input(smoke_traffic, tmp_path):
    """Engines hand rows over in any order (parallel inserts, group-bys, Spark partitions):
    the same traffic in reverse order gives exactly the same results."""
    from distillguard.scan import run_scan, store_inputs
    from distillguard.store import EventStore

    events, meta = (pq.read_table(smoke_traffic / f) for f in ("events.parquet", "accounts.parquet"))
    results = []
    for name, order in (("forward", slice(None)), ("reverse", slice(None, None, -1))):
        store = EventStore(tmp_path / f"{name}.duckdb")
        store.append_events([events.take(list(range(events.num_rows))[order])])
        store.append_accounts(meta.take(list(range(meta.num_rows))[order]))
        results.append(run_scan(*store_inputs(store)).accounts.drop_columns(["reasons_json"]))
        store.close()
    forward, reverse = results
    assert forward.num_rows == len(set(events["account_id"].to_pylist()) | set(meta["account_id"].to_pylist()))
    assert forward.equals(reverse)


def test_imported_intelligence_marks_the_operators_accounts(scanned, tmp_path):
    """Provider A exports its campaigns; B imports them and its scan says KNOWN_INDICATOR."""
    traffic, results, db, _ = scanned
    key, bundle, db_b = tmp_path / "consortium.key", tmp_path / "bundle.json", tmp_path / "b.duckdb"
    _cli("intel", "keygen", "--out", key)
    _cli("intel", "export", "--db", db, "--key-file", key, "--out", bundle)
    _cli("intel", "import", bundle, "--db", db_b, "--key-file", key)
    _cli("scan", traffic / "events.parquet", "--accounts", traffic / "accounts.parquet", "--db", db_b,
         "--out", tmp_path / "b", "--intel-key", key, "--quiet")
    a = {r["account_id"]: r for r in pq.read_table(results / "accounts.parquet").to_pylist()}
    b = pq.read_table(tmp_path / "b" / "accounts.parquet").to_pylist()
    marked = [r for r in b if "KNOWN_INDICATOR" in r["reasons"]]
    in_campaigns = [r for r in b if a[r["account_id"]]["campaign_id"]]
    assert marked and sum("KNOWN_INDICATOR" in r["reasons"] for r in in_campaigns) >= 0.8 * len(in_campaigns)
    for r in marked:
        assert r["action"] in ("challenge", "throttle", "block")
        detail = json.loads(r["reasons_json"])[0]
        assert detail["code"] == "KNOWN_INDICATOR" and detail["evidence"]["known_indicator"][0]["indicator_id"]


def test_analyst_decisions_feed_the_next_scan(scanned, tmp_path):
    """A confirmed campaign's card blocks a new account; a dismissed cluster stays cleared."""
    import shutil

    from distillguard.audit import record_action

    traffic, results, db, _ = scanned
    store = tmp_path / "feedback.duckdb"
    shutil.copy(db, store)
    doc = json.loads((results / "campaigns.json").read_text())["campaigns"]
    confirmed, dismissed = doc[0], doc[-1]
    record_action(str(store), action="confirm", target_kind="campaign", target_id=confirmed["campaign_id"],
                  analyst="ana", reason="reviewed prompts and payment overlap")
    record_action(str(store), action="dismiss", target_kind="campaign", target_id=dismissed["campaign_id"],
                  analyst="ana", reason="known customer load test")
    card = next(s["value"] for s in confirmed["shared"] if s["kind"] == "payment_fingerprint")
    newcomer = tmp_path / "newcomer.jsonl"
    newcomer.write_text(json.dumps({"account_id": "fresh-1", "ts": "2026-11-01T00:00:00Z", "prompt": "hi"}) + "\n")
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_text(json.dumps({"account_id": "fresh-1", "payment_fingerprint": card}) + "\n")
    _cli("ingest", newcomer, "--accounts", accounts, "--db", store, "--quiet")
    _cli("scan", traffic / "events.parquet", "--accounts", traffic / "accounts.parquet", "--db", store,
         "--out", tmp_path / "again", "--quiet")
    again = {r["account_id"]: r for r in pq.read_table(tmp_path / "again" / "accounts.parquet").to_pylist()}
    assert again["fresh-1"]["action"] == "block" and "CONFIRMED_CAMPAIGN" in again["fresh-1"]["reasons"]
    if dismissed is not confirmed:
        assert all(again[a]["campaign_id"] is None or again[a]["campaign_id"] != dismissed["campaign_id"]
                   for a in dismissed["accounts"])
        assert not any(c["accounts"] == dismissed["accounts"] for c in json.loads((tmp_path / "again" / "campaigns.json").read_text())["campaigns"])


def test_campaign_indicators_are_values_its_members_hold_almost_alone():
    """A card the ring shares with an enterprise's accounts is not an indicator: it would
    challenge the enterprise's next account at its first request."""
    import pyarrow as pa

    from distillguard.link import Communities
    from distillguard.scan import _indicators

    comms = Communities(membership={"r1": 0, "r2": 0, "r3": 0, "e1": 0},
                        hubs={0: [("payment_fingerprint", "ring-card", 3, 1.0), ("payment_fingerprint", "corp-card", 2, 1.0),
                                  ("template", "b1:aa", 3, 0.3)]})
    assignment = {"r1": "C-1", "r2": "C-1", "r3": "C-1"}  # e1 is in the community but cleared
    holds = [("r1", "payment_fingerprint", "ring-card"), ("r2", "payment_fingerprint", "ring-card"),
             ("r3", "payment_fingerprint", "ring-card"), ("r3", "payment_fingerprint", "corp-card"),
             ("e1", "payment_fingerprint", "corp-card"), ("e2", "payment_fingerprint", "corp-card"),
             ("r1", "template", "b1:aa"), ("r2", "template", "b1:aa"), ("r3", "template", "b1:aa")]
    members = pa.table({"account_id": [a for a, _, _ in holds], "kind": [k for _, k, _ in holds], "value": [v for _, _, v in holds]})
    got = _indicators(comms, assignment, members).to_pylist()
    assert {(r["campaign_id"], r["kind"], r["value"]) for r in got} == {("C-1", "payment_fingerprint", "ring-card"),
                                                                          ("C-1", "template", "b1:aa")}


def test_attachment_is_computed_once_and_the_evidence_carries_that_value(smoke_traffic, tmp_path, monkeypatch):
    """Campaign candidates and the evidence matrix use one attachment per scan, not two computations of it."""
    import numpy as np

    import distillguard.scan as scan
    import distillguard.score.evidence as evidence
    from distillguard.store import EventStore

    computed, real = [], evidence.attachment
    monkeypatch.setattr(scan, "attachment", lambda *a: computed.append(real(*a)) or computed[-1])
    monkeypatch.setattr(evidence, "attachment", lambda *a: computed.append(real(*a)) or computed[-1])
    with EventStore(tmp_path / "dg.duckdb") as store:
        store.append_events([pq.read_table(smoke_traffic / "events.parquet")])
        store.append_accounts(pq.read_table(smoke_traffic / "accounts.parquet"))
        an, _ = scan.analyse(*scan.store_inputs(store))
    assert len(computed) == 1 and (computed[0] > 0).any()
    assert np.array_equal(an.evidence.column("campaign_attachment"), computed[0])


def test_one_scan_featurises_each_prompt_sample_once(smoke_traffic, tmp_path, monkeypatch):
    """The content signals of a scan share one featurisation of the prompt sample (and one of the end-user sample)."""
    import distillguard.scan as scan
    import distillguard.signals.content.sampling as sampling
    from distillguard.signals.content.view import PromptView
    from distillguard.store import EventStore

    batches, real = [], sampling.featurize
    monkeypatch.setattr(sampling, "featurize", lambda texts, *a, **kw: batches.append(tuple(texts)) or real(texts, *a, **kw))
    with EventStore(tmp_path / "dg.duckdb") as store:
        store.append_events([pq.read_table(smoke_traffic / "events.parquet")])
        store.append_accounts(pq.read_table(smoke_traffic / "accounts.parquet"))
        an, _ = scan.analyse(*scan.store_inputs(store))
    sample_texts = tuple(PromptView(an.samples).sample().texts)
    assert sample_texts and batches.count(sample_texts) == 1
    # the prompt sample, the end-user sample, the sample's account wrappers (read by two signals): each featurised once
    assert len(batches) == len(set(batches)) <= 3
