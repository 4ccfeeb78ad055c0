"""The decision service judges accounts relative to the population the last scan calibrated on.

A real DuckDB store, the real ``distillguard ingest`` and ``scan`` commands, the real service on loopback
with tokens. The provider's ordinary users ask short questions and get long answers, so the raw
``output_harvest`` score is high everywhere (docs/scoring.md section 4).
"""
from __future__ import annotations

import json
import random
import subprocess
import sys

import httpx
import pyarrow.parquet as pq
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import RoleAuth, serving

TOPICS = ("gardening", "tax forms", "a birthday party", "python loops", "the french revolution", "sourdough",
          "running shoes", "a cover letter", "photosynthesis", "budget travel", "chess openings", "a wedding toast")


def calls(rng, acc, n, inp, out, day0=1, **params):
    hour, minute = rng.randrange(13), rng.randrange(60)  # each account its own times of day
    return [{"event_id": f"{acc}-{i}", "account_id": acc, "model": "m",
             "ts": f"2026-03-{day0 + i % 5:02d}T{8 + (i * 7 + hour) % 13:02d}:{(i * 13 + minute) % 60:02d}:00Z",
             "prompt": f"Can you help me with {rng.choice(TOPICS)}? question {i} from {acc}",
             "input_tokens": inp(), "output_tokens": out(), **params} for i in range(n)]


def chat(rng, acc, n=14, day0=1):
    """An ordinary user of this provider: short questions, answers of 400-1,500 tokens (ratios of 10-100)."""
    lo = rng.randint(400, 900)
    return calls(rng, acc, n, lambda: rng.randint(15, 60), lambda: rng.randint(lo, lo + 600), day0)


def harvest(rng, acc, n=40, day0=1):
    """Tiny inputs, maximal outputs and token log-probabilities on every call."""
    return calls(rng, acc, n, lambda: 8, lambda: rng.randint(3000, 4000), day0, logprobs=True, top_logprobs=5,
                 max_tokens=4096)


def cli(*args):
    p = subprocess.run([sys.executable, "-m", "distillguard.cli", *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibration")
    rng = random.Random(7)
    rows = [r for u in range(210) for r in chat(rng, f"user-{u}")]
    rows += [r for h in range(5) for r in harvest(rng, f"harv-{h}")]
    events = tmp / "events.jsonl"
    events.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp, events


def agree(client, scan: dict) -> None:
    """The service gives every scanned account the scan's risk, reasons and action."""
    for acc, row in scan.items():
        d = decide(client, acc)
        assert d["risk"] == pytest.approx(row["risk"], abs=1e-4), acc
        assert sorted(r["code"] for r in d["reasons"]) == sorted(row["reasons"]), acc
        assert d["action"] == row["action"], acc


def decide(client, acc) -> dict:
    d = client.post("/v1/decide", json={"account_id": acc}).json()
    assert "decision_id" in d, d
    return d


def test_before_any_scan_the_service_says_it_uses_the_packaged_reference(world):
    tmp, events = world
    db = tmp / "unscanned.duckdb"
    cli("ingest", events, "--db", db, "--quiet")
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        assert c.get("/healthz").json()["calibration"] == "reference"
        assert engine.online.baselines.details["note"].startswith("no scan in the store yet")
        d = decide(c, "user-3")
        # with nothing to be relative to, raw scores: this provider's ordinary user shows HIGH_OUTPUT_RATIO,
        # which the corroboration rule keeps at monitor (one behaviour family alone)
        hor = next(r for r in d["reasons"] if r["code"] == "HIGH_OUTPUT_RATIO")
        assert hor["details"]["baselines"] == "reference"
        assert d["action"] in ("allow", "monitor")


def test_after_a_scan_the_service_agrees_with_it_and_judges_new_accounts_against_its_population(world):
    tmp, events = world
    db = tmp / "scanned.duckdb"
    cli("scan", events, "--db", db, "--out", tmp / "scan", "--quiet")
    calibration = json.loads((tmp / "scan" / "campaigns.json").read_text())["calibration"]["population"]
    assert calibration["source"] == "population" and calibration["baselines"]["output_harvest"] >= 0.8
    scan = {r["account_id"]: r for r in pq.read_table(tmp / "scan" / "accounts.parquet").to_pylist()}
    assert set(scan["harv-0"]["reasons"]) >= {"HIGH_OUTPUT_RATIO", "LOGPROBS_HARVEST"}

    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        assert c.get("/healthz").json()["calibration"] == "population"
        agree(c, scan)
        scan_weights = {r["code"]: r["weight"] for r in json.loads(scan["harv-0"]["reasons_json"])}
        assert {r["code"]: r["weight"] for r in decide(c, "harv-0")["reasons"]} == pytest.approx(scan_weights, abs=1e-3)

        # accounts that arrive between scans are judged against the scanned population too
        rng = random.Random(11)
        late = chat(rng, "late-chat", n=30, day0=6) + harvest(rng, "late-harvest", day0=6)
        assert c.post("/v1/events", json={"events": late}).json()["accepted"] == len(late)
        ordinary, harvester = decide(c, "late-chat"), decide(c, "late-harvest")
        assert "HIGH_OUTPUT_RATIO" not in {r["code"] for r in ordinary["reasons"]}
        assert ordinary["risk"] < 0.2 and ordinary["action"] == "allow", ordinary
        codes = {r["code"]: r for r in harvester["reasons"]}
        assert {"HIGH_OUTPUT_RATIO", "LOGPROBS_HARVEST"} <= set(codes), harvester
        assert codes["HIGH_OUTPUT_RATIO"]["details"]["baselines"] == "population"
        assert harvester["risk"] >= 0.5

        # the same running features at the raw (reference) level: what the service decided before it had baselines
        from distillguard.score.relative import reference_baselines

        engine.online.baselines = reference_baselines({}, [s.name for s in engine.online.signals], note="raw")
        for acc in ("late-chat", "user-3"):
            engine.online.forget(acc)
            assert "HIGH_OUTPUT_RATIO" in {r["code"] for r in engine.online.score(acc)[1]}, acc


def test_look_alikes_of_an_account_analysts_cleared_carry_no_strong_signal_in_the_service_either(world):
    """After an analyst allowlists one harvester, the rescan clears its look-alikes' strong signals; so does the service."""
    from distillguard.audit import record_action

    tmp, events = world
    db = tmp / "cleared.duckdb"
    cli("ingest", events, "--db", db, "--quiet")
    record_action(str(db), action="allowlist", target_kind="account", target_id="harv-0", analyst="ana",
                  reason="licensed distillation partner")
    cli("scan", events, "--db", db, "--out", tmp / "cleared", "--quiet")
    doc = json.loads((tmp / "cleared" / "campaigns.json").read_text())["calibration"]["analyst_cleared"]
    assert doc["lookalikes_without_strong_signals"] >= 4  # the other harvesters look like harv-0
    scan = {r["account_id"]: r for r in pq.read_table(tmp / "cleared" / "accounts.parquet").to_pylist()}
    assert scan["harv-1"]["reasons"] == [] and scan["harv-1"]["risk"] >= 0.5
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600))
    with serving(engine) as url, httpx.Client(base_url=url, timeout=10, auth=RoleAuth(db)) as c:
        agree(c, scan)
        assert decide(c, "harv-0")["rule_id"] == "allowlisted"
