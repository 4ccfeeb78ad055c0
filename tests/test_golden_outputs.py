"""Identical outputs on the demo world: the simulated traffic, every account's decision, the campaigns and
operators, and the evaluation figures match a reviewed snapshot. A refactor that should change nothing must
pass this unchanged; a change that is meant to alter results shows here as a reviewed diff (regenerate with
DISTILLGUARD_UPDATE_SNAPSHOTS=1, then read the diff of tests/snapshots/golden/demo.json)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import snapshot

from distillguard.schema import EVENT_SCHEMA

SNAPSHOT = Path(__file__).parent / "snapshots" / "golden" / "demo.json"
WORLD = {"scenario": "default", "scale": 0.1, "seed": 2026, "family": "holdout"}
"""The demo's world (``distillguard demo``: default scenario, seed 2026, holdout phrasing) at a tenth of its
size, so the whole pipeline runs in seconds."""


def _rounded(value):
    """Floats to 1e-9 so the snapshot is stable text; everything else as JSON has it."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _table_sha256(path: Path, columns) -> str:
    """SHA-256 of a Parquet file's rows in file order over ``columns`` (canonical JSON per row), independent
    of Parquet encoding and writer version."""
    table = pq.read_table(path, columns=list(columns))
    digest = hashlib.sha256()
    for batch in table.to_batches(max_chunksize=8192):
        for row in batch.to_pylist():
            digest.update(json.dumps([row[c] for c in columns], default=str, ensure_ascii=False).encode())
            digest.update(b"\n")
    return digest.hexdigest()


def _partition(accounts: list[dict], key: str) -> list[list[str]]:
    """Accounts grouped by ``key`` (campaign or operator), ids left out: membership is what must not move."""
    groups: dict[str, list[str]] = {}
    for a in accounts:
        if a[key] is not None:
            groups.setdefault(a[key], []).append(a["account_id"])
    return sorted(sorted(g) for g in groups.values())


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> dict:
    from distillguard.evaluate import evaluate
    from distillguard.ingest import ingest_files
    from distillguard.report import write_outputs
    from distillguard.scan import run_scan, store_inputs
    from distillguard.sim import simulate
    from distillguard.store import EventStore

    where = tmp_path_factory.mktemp("golden")
    traffic, results = where / "traffic", where / "scan"
    simulate(WORLD["scenario"], scale=WORLD["scale"], seed=WORLD["seed"], out=traffic, fmt="parquet", family=WORLD["family"])
    with EventStore(where / "s.duckdb") as store:
        counts = ingest_files([str(traffic / "events.parquet")], store, accounts=str(traffic / "accounts.parquet"),
                              progress=False)
        result = run_scan(*store_inputs(store))
    write_outputs(result, results, counts.as_dict())
    accounts = pq.read_table(results / "accounts.parquet",
                             columns=["account_id", "risk", "action", "reasons", "campaign_id", "operator_id"]).to_pylist()
    campaigns = json.loads((results / "campaigns.json").read_text())
    labels = pq.read_table(traffic / "labels.parquet")
    return _rounded({
        "world": WORLD,
        "events_sha256": _table_sha256(traffic / "events.parquet", EVENT_SCHEMA.names),
        "labels_sha256": _table_sha256(traffic / "labels.parquet", labels.column_names),
        "ingest": counts.as_dict(),
        "accounts": {a["account_id"]: {"action": a["action"], "risk": a["risk"], "reasons": a["reasons"]}
                     for a in sorted(accounts, key=lambda a: a["account_id"])},
        "campaign_partition": _partition(accounts, "campaign_id"),
        "operator_partition": _partition(accounts, "operator_id"),
        "campaigns": campaigns["campaigns"],
        "figures": {k: v for k, v in evaluate(traffic / "labels.parquet", results).items() if k not in ("labels", "scan")},
    })


def _changed_accounts(got: dict, want: dict, show: int = 20) -> str:
    lines = [f"{acc}: {want.get(acc)} -> {got.get(acc)}" for acc in sorted(set(got) | set(want)) if got.get(acc) != want.get(acc)]
    more = f"\n... and {len(lines) - show} more" if len(lines) > show else ""
    return f"{len(lines)} accounts changed:\n" + "\n".join(lines[:show]) + more


def _changed_campaigns(got: list[dict], want: list[dict]) -> str:
    g, w = ({c["campaign_id"]: c for c in cs} for cs in (got, want))
    lines = [f"{cid}: " + ("new" if cid not in w else "gone" if cid not in g else
                           "fields " + ", ".join(k for k in sorted(set(g[cid]) | set(w[cid])) if g[cid].get(k) != w[cid].get(k)))
             for cid in sorted(set(g) | set(w)) if g.get(cid) != w.get(cid)]
    return "campaigns changed:\n" + "\n".join(lines or ["same campaigns, other order"])


def test_demo_world_outputs_are_identical_to_the_snapshot(golden):
    text = json.dumps(golden, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    want = json.loads(snapshot(SNAPSHOT, text))
    got = json.loads(text)
    assert got["world"] == want["world"], "the test's world changed: regenerate the snapshot"
    assert got["events_sha256"] == want["events_sha256"], "the simulator made different events for the same seed"
    assert got["labels_sha256"] == want["labels_sha256"], "the simulator made different labels for the same seed"
    assert got["ingest"] == want["ingest"], f"ingest counts changed: {want['ingest']} -> {got['ingest']}"
    assert got["accounts"] == want["accounts"], _changed_accounts(got["accounts"], want["accounts"])
    assert got["campaigns"] == want["campaigns"], _changed_campaigns(got["campaigns"], want["campaigns"])
    for key in ("campaign_partition", "operator_partition", "figures"):
        assert got[key] == want[key], f"{key} changed: review, then regenerate with DISTILLGUARD_UPDATE_SNAPSHOTS=1"
