"""A public labelled set in Glasswally's record format: labels split off, records through the normal ingest.

The sample below is written here, in the format of Glasswally's
``datasets/labeled_5k.jsonl`` (its field names and types); it is not their data.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from distillguard.errors import UsageError
from distillguard.evaluate import evaluate, load_labels
from distillguard.evaluate.labelled import split_labelled_jsonl
from distillguard.ingest import ingest_files
from distillguard.store import EventStore


def _record(acc: str, t: str, prompt: str, label: str | None, **kw) -> dict:
    rec = {"account_id": acc, "timestamp": t, "model": "gpt-4o", "prompt": prompt, "system_prompt": None,
           "system_prompt_hash": None, "token_count": 40, "max_tokens": 512, "client_ip": "203.0.113.7",
           "asn_number": 7922, "asn_org": "Comcast Cable", "user_agent": "python-requests/2.31.0",
           "h2_settings_fp": None, "campaign_label": label}
    rec.update(kw)
    return rec


@pytest.fixture()
def sample(tmp_path):
    recs = [
        _record("sk-aaa", "2026-02-27T20:08:29.149978+00:00", "What foods are high in vitamin C?", None),
        _record("sk-bbb", "2026-02-27T20:09:00.000001+00:00", "Step by step reasoning: why is the sky blue?", "campaign_0001",
                system_prompt="Act as a teacher.", system_prompt_hash="fde97f3b", max_tokens=4096, client_ip="198.51.100.4",
                asn_org="Hetzner", user_agent="aiohttp/3.9.1", h2_settings_fp="2:32953:3:100"),
        _record("sk-bbb", "2026-02-27T20:10:00+00:00", "Think out loud: how does a compiler work?", "campaign_0001"),
        _record("sk-ccc", "2026-02-27T20:11:00+00:00", "Think out loud: what is entropy?", "campaign_0002"),
    ]
    p = tmp_path / "labelled.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    return p


def test_labels_are_split_off_and_never_reach_the_scan(sample, tmp_path):
    events, labels = split_labelled_jsonl(sample, tmp_path / "split")
    assert all("campaign_label" not in json.loads(line) for line in events.read_text().splitlines())
    lab = {r["account_id"]: r for r in pq.read_table(labels).to_pylist()}
    assert lab["sk-aaa"]["campaign_id"] is None and not lab["sk-aaa"]["is_attack"]
    assert lab["sk-bbb"]["campaign_id"] == lab["sk-bbb"]["operator_id"] == "campaign_0001" and lab["sk-bbb"]["is_attack"]
    assert load_labels(labels).operators.tolist() == [None, "campaign_0001", "campaign_0002"]


def test_glasswally_fields_map_through_the_normal_ingest(sample, tmp_path):
    events, _ = split_labelled_jsonl(sample, tmp_path / "split")
    with EventStore(tmp_path / "s.duckdb") as store:
        counts = ingest_files([str(events)], store, quarantine_path=tmp_path / "q.jsonl", progress=False)
        assert counts.as_dict()["accepted"] == 4 and counts.as_dict()["quarantined"] == 0
        cur = store.con.execute("SELECT * FROM events WHERE account_id = 'sk-bbb' ORDER BY ts")
        names = [d[0] for d in cur.description]
        row = dict(zip(names, cur.fetchone()))
    assert row["ts"] == datetime(2026, 2, 27, 20, 9, 0, 1, tzinfo=timezone.utc)  # timestamp -> ts
    assert row["max_output_tokens"] == 4096  # max_tokens -> max_output_tokens
    assert (row["client_ip"], row["user_agent"], row["model"]) == ("198.51.100.4", "aiohttp/3.9.1", "gpt-4o")
    assert row["system_prompt"] == "Act as a teacher."
    assert row["output_tokens"] is None  # token_count is ambiguous: kept, not guessed into a token column
    extra = json.loads(row["extra"])
    assert extra["token_count"] == 40 and extra["asn_org"] == "Hetzner" and "campaign_label" not in extra


def test_evaluate_a_scan_of_the_split_set(sample, tmp_path):
    from distillguard.scan import run_scan, store_inputs
    from distillguard.report import write_outputs

    events, labels = split_labelled_jsonl(sample, tmp_path / "split")
    with EventStore(tmp_path / "s.duckdb") as store:
        ingest_files([str(events)], store, progress=False)
        write_outputs(run_scan(*store_inputs(store)), tmp_path / "scan")
    res = evaluate(labels, tmp_path / "scan")
    assert res["counts"] == {**res["counts"], "accounts": 3, "attack": 2, "true_campaigns": 2, "missing_from_scan": 0}
    assert "operator_ari" in res["systems"]["scan"]


def test_bad_labelled_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        split_labelled_jsonl(tmp_path / "missing.jsonl", tmp_path / "o")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "no account"}\n', encoding="utf-8")
    with pytest.raises(UsageError):
        split_labelled_jsonl(bad, tmp_path / "o")
