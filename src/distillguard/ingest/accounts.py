"""Account metadata files (``--accounts``): CSV, JSON/JSONL or Parquet into :data:`ACCOUNT_SCHEMA`.

Bad rows are quarantined like events (missing ``account_id``, unparseable
``created_at``, a non-boolean ``verified``...). An ``email`` column is reduced
to its domain: the address itself is never stored.
"""
from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.ingest.base import Quarantined, truncate_raw
from distillguard.ingest.detect import sniff_text
from distillguard.ingest.normalize import Reject, _as_bool, _as_string, parse_ts
from distillguard.schema import ACCOUNT_ALIASES, ACCOUNT_SCHEMA

__all__ = ["read_accounts", "normalize_account", "iter_rows"]

_FIELDS = [f.name for f in ACCOUNT_SCHEMA if f.name != "extra"]
_KEY = {**{f: f for f in _FIELDS}, **ACCOUNT_ALIASES, "email": "email_domain", "team": "org_id",
        "payment_method_fingerprint": "payment_fingerprint", "signup_source": "signup_path", "is_verified": "verified"}


def normalize_account(rec) -> dict:
    """One account record -> an ACCOUNT_SCHEMA dict, or :class:`Reject`."""
    if not isinstance(rec, dict):
        raise Reject("not_an_object", f"record is a JSON {type(rec).__name__}, not an object")
    raw: dict = {}
    extra: dict = {}
    for k, v in rec.items():
        field = _KEY.get(str(k).strip().lower())
        if field is None:
            if v not in (None, ""):
                extra[k] = v
            continue
        if v in (None, "") or field in raw:
            continue
        raw[field] = v
    out = {"account_id": _as_string("account_id", raw.get("account_id"))}
    if not out["account_id"]:
        raise Reject("missing_subject", "no account_id")
    out["created_at"] = parse_ts(raw["created_at"]) if raw.get("created_at") not in (None, "") else None
    for f in ("email_domain", "payment_fingerprint", "country", "org_id", "signup_path"):
        out[f] = _as_string(f, raw.get(f))
    if out["email_domain"] and "@" in out["email_domain"]:
        out["email_domain"] = out["email_domain"].rsplit("@", 1)[1]
    if out["email_domain"]:
        out["email_domain"] = out["email_domain"].strip().lower()
    out["verified"] = _as_bool("verified", raw.get("verified"))
    out["extra"] = orjson.dumps(extra, default=str).decode() if extra else None
    return out


def iter_rows(path: Path):
    """``(line, record dict, raw text)`` of a CSV, JSON(L) or Parquet file of rows (account metadata, labels)."""
    name = path.name.lower()
    if path.is_dir() or name.endswith((".parquet", ".pq", ".parq")):
        import pyarrow.parquet as pq

        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        row = 0
        for f in files:
            try:
                pf = pq.ParquetFile(f)
            except Exception as exc:
                raise UsageError(f"{f}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
            for batch in pf.iter_batches(batch_size=65536):
                for r in batch.to_pylist():
                    row += 1
                    yield row, r, ""
        return
    from distillguard.ingest.records import _csv_records, iter_json_records

    sniff_text(path)
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        yield from _csv_records(str(path))
    elif name.endswith((".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz")):
        yield from iter_json_records(str(path))
    else:
        raise UsageError(f"{path}: unsupported account file type (expected .csv, .jsonl, .json or .parquet)")


def read_accounts(path) -> tuple[pa.Table, list[Quarantined]]:
    """(ACCOUNT_SCHEMA table, quarantined rows) of an account-metadata file."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    rows, bad = [], []
    for line, rec, raw in iter_rows(path):
        try:
            if isinstance(rec, Reject):
                raise rec
            rows.append(normalize_account(rec))
        except Reject as rej:
            bad.append(Quarantined(str(path), line, rej.reason, truncate_raw(raw or rec), rej.detail))
    table = pa.Table.from_pylist(rows, schema=ACCOUNT_SCHEMA) if rows else ACCOUNT_SCHEMA.empty_table()
    return table, bad
