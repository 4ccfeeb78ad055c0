"""Someone else's labelled request log, split into what the scan sees and what evaluation scores.

A public labelled set (Glasswally's ``datasets/labeled_5k.jsonl``) carries its
ground truth in each record (``campaign_label``). The scan must never see it:
:func:`split_labelled_jsonl` writes the records without the label field (they
then go through the normal ingest path, aliases and all) and a
``labels.parquet`` that :func:`distillguard.evaluate.evaluate` reads.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.errors import UsageError

__all__ = ["split_labelled_jsonl"]


def split_labelled_jsonl(path: str | Path, out: str | Path, label_field: str = "campaign_label",
                         account_field: str = "account_id") -> tuple[Path, Path]:
    """Write ``out/events.jsonl`` (records without ``label_field``) and ``out/labels.parquet``.

    An account is an attack account when any of its records has a non-empty
    label; its campaign (and operator) is its most frequent label. Archetype is
    ``labelled_campaign`` or ``labelled_benign``. Returns the two paths.
    """
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise UsageError(f"labelled file not found: {path}")
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    events = out / "events.jsonl"
    with path.open(encoding="utf-8") as src, events.open("w", encoding="utf-8") as dst:
        for n, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise UsageError(f"{path}:{n}: not a JSON object") from None
            if not isinstance(rec, dict) or not rec.get(account_field):
                raise UsageError(f"{path}:{n}: a record needs {account_field!r}")
            label = rec.pop(label_field, None)
            per = counts.setdefault(str(rec[account_field]), {})
            if label:
                per[str(label)] = per.get(str(label), 0) + 1
            dst.write(json.dumps(rec, ensure_ascii=False) + "\n")
    accounts = sorted(counts)
    campaign = [max(counts[a], key=lambda k: (counts[a][k], k)) if counts[a] else None for a in accounts]
    table = pa.table({
        "account_id": pa.array(accounts, pa.string()),
        "campaign_id": pa.array(campaign, pa.string()),
        "operator_id": pa.array(campaign, pa.string()),
        "archetype": pa.array(["labelled_campaign" if c else "labelled_benign" for c in campaign], pa.string()),
        "is_attack": pa.array([c is not None for c in campaign], pa.bool_()),
    })
    labels = out / "labels.parquet"
    pq.write_table(table, labels)
    return events, labels
