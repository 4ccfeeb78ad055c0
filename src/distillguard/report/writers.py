"""Write a :class:`~distillguard.scan.ScanResult` as files (DESIGN.md) and into the store."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.report.html import render_report

__all__ = ["write_outputs", "store_results", "ACCOUNT_COLUMNS"]

ACCOUNT_COLUMNS = ("account_id", "risk", "action", "campaign_id", "operator_id", "reasons", "rule_id", "n_events", "org_id", "reasons_json")


def write_outputs(result, out_dir: Path, ingest_summary: dict | None = None) -> dict[str, Path]:
    """accounts.parquet, campaigns.json, report.html (quarantine.jsonl is written by ingest)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "accounts": out_dir / "accounts.parquet",
        "campaigns": out_dir / "campaigns.json",
        "report": out_dir / "report.html",
    }
    pq.write_table(result.accounts, paths["accounts"])
    doc = {
        "run_id": result.run_id,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "n_events": result.n_events,
        "n_accounts": result.accounts.num_rows,
        "policy_sha256": result.policy_sha256,
        "ingest": ingest_summary or {},
        "calibration": result.calibration,
        "operators": result.operators,
        "campaigns": result.campaigns,
    }
    paths["campaigns"].write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=str))
    paths["report"].write_text(render_report(result, ingest_summary or {}), encoding="utf-8")
    return paths


def _evidence_json(accounts: pa.Table) -> pa.Array:
    """Each account's non-zero evidence terms as a JSON object: what the decision service
    starts an account's online evidence from before it updates the behaviour terms."""
    names = [n for n in accounts.column_names if n not in ACCOUNT_COLUMNS]
    values = np.column_stack([accounts.column(n).to_numpy(zero_copy_only=False) for n in names]) if names else np.zeros((accounts.num_rows, 0))
    rows = []
    for row in np.round(values, 6):
        nz = np.flatnonzero(row)
        rows.append(json.dumps({names[j]: float(row[j]) for j in nz}))
    return pa.array(rows, pa.string())


BASELINE_SCHEMA = pa.schema([("run_id", pa.string()), ("signal", pa.string()), ("baseline", pa.float64()),
                             ("source", pa.string()), ("n_active", pa.int64()), ("min_accounts", pa.int64()),
                             ("note", pa.string())])


def _store_baselines(con, run_id: str, baselines) -> None:
    """``signal_baselines``: the scan's per-signal baselines, unrounded, and whether they are the population's or
    the packaged reference; the decision service makes its scores relative to them (score/relative.py)."""
    rows = [] if baselines is None else [
        {"run_id": run_id, "signal": name, "baseline": float(value), "source": baselines.source,
         "n_active": baselines.n_active, "min_accounts": baselines.min_accounts, "note": baselines.details.get("note")}
        for name, value in baselines.values.items()]
    con.register("_base", pa.Table.from_pylist(rows, schema=BASELINE_SCHEMA))
    con.execute("CREATE OR REPLACE TABLE signal_baselines AS SELECT * FROM _base")
    con.unregister("_base")


def store_results(result, store) -> None:
    """Replace the latest-scan tables in the store; append to ``scan_runs``."""
    con = store.con
    accounts = result.accounts.select(list(ACCOUNT_COLUMNS)).append_column("evidence_json", _evidence_json(result.accounts))
    con.register("_acc", accounts)
    con.execute("CREATE OR REPLACE TABLE account_results AS SELECT ? AS run_id, * FROM _acc", [result.run_id])
    con.unregister("_acc")
    camps = [
        {
            "run_id": result.run_id,
            "campaign_id": c["campaign_id"],
            "risk": c["risk"],
            "action": c.get("action"),
            "n_accounts": c["n_accounts"],
            "n_events": c["n_events"],
            "first_seen": c["first_seen"],
            "last_seen": c["last_seen"],
            "reasons": [r["code"] for r in c["reasons"]],
            "evidence_json": json.dumps(c, ensure_ascii=False, default=str),
        }
        for c in result.campaigns
    ]
    schema = pa.schema(
        [("run_id", pa.string()), ("campaign_id", pa.string()), ("risk", pa.float64()), ("action", pa.string()),
         ("n_accounts", pa.int64()), ("n_events", pa.int64()), ("first_seen", pa.string()), ("last_seen", pa.string()),
         ("reasons", pa.list_(pa.string())), ("evidence_json", pa.string())]
    )
    con.register("_camp", pa.Table.from_pylist(camps, schema=schema))
    con.execute(
        "CREATE OR REPLACE TABLE campaigns AS SELECT run_id, campaign_id, risk, action, n_accounts, n_events, "
        "CAST(first_seen AS TIMESTAMPTZ) AS first_seen, CAST(last_seen AS TIMESTAMPTZ) AS last_seen, reasons, evidence_json FROM _camp"
    )
    con.unregister("_camp")
    fit = [{"run_id": result.run_id, "signal": name, "learned_json": json.dumps(learned)}
           for name, learned in result.calibration.get("behaviour_fit", {}).items()]
    con.register("_fit", pa.Table.from_pylist(fit, schema=pa.schema([("run_id", pa.string()), ("signal", pa.string()),
                                                                     ("learned_json", pa.string())])))
    con.execute("CREATE OR REPLACE TABLE signal_fit AS SELECT * FROM _fit")  # what the service's signals load
    con.unregister("_fit")
    _store_baselines(con, result.run_id, result.baselines)
    looks = pa.table({"run_id": pa.array([result.run_id] * len(result.lookalikes), pa.string()),
                      "account_id": pa.array(result.lookalikes, pa.string())})
    con.register("_look", looks)
    con.execute("CREATE OR REPLACE TABLE cleared_lookalikes AS SELECT * FROM _look")  # no strong signal in the service either
    con.unregister("_look")
    con.register("_ind", result.indicators)
    con.execute("CREATE OR REPLACE TABLE campaign_indicators AS SELECT * FROM _ind")
    con.unregister("_ind")
    con.execute(
        "CREATE TABLE IF NOT EXISTS scan_runs (run_id VARCHAR, finished_at TIMESTAMPTZ, n_events BIGINT, "
        "n_accounts BIGINT, n_campaigns BIGINT, policy_sha256 VARCHAR, timings_json VARCHAR)"
    )
    con.execute(
        "INSERT INTO scan_runs VALUES (?, now(), ?, ?, ?, ?, ?)",
        [result.run_id, result.n_events, result.accounts.num_rows, len(result.campaigns), result.policy_sha256, json.dumps(result.timings)],
    )
