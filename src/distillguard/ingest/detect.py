"""Input format auto-detection (overridden by ``--format``).

Detection looks at the extension first, then at the content: the header of a
CSV file and the keys of the first JSON record tell canonical events from
LiteLLM spend logs, OpenAI request/response logs and OTLP/JSON trace exports.
A file that is unreadable as a whole raises :class:`~distillguard.errors.UsageError`.
"""
from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import orjson

from distillguard.errors import UsageError

__all__ = ["FORMATS", "detect_format", "sniff_text", "expand_paths"]

FORMATS = ("jsonl", "csv", "parquet", "otlp", "litellm", "openai")
JSON_EXT = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
CSV_EXT = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
PARQUET_EXT = (".parquet", ".pq", ".parq")
SNIFF_BYTES = 1 << 16

LITELLM_KEYS = {"request_id", "starttime", "spend", "api_key", "call_type", "model_group", "end_user",
                "requester_ip_address", "custom_llm_provider", "completionstarttime", "endtime", "api_base"}


def sniff_text(path: Path, nbytes: int = SNIFF_BYTES) -> str:
    """The first bytes of a (possibly gzipped) file as text; UsageError when unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(nbytes)
            if path.name.lower().endswith(".gz"):
                if not head:
                    raise UsageError(f"{path}: empty gzip file")
                if head[:2] != b"\x1f\x8b":
                    raise UsageError(f"{path}: not a gzip file")
                fh.seek(0)
                try:
                    with gzip.open(fh) as gz:
                        head = gz.read(nbytes)
                except (OSError, EOFError, zlib.error) as exc:
                    if not head:
                        raise
                    raise UsageError(f"{path}: corrupt gzip file ({exc})") from None
    except UsageError:
        raise
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in head:
        raise UsageError(f"{path}: binary data, not a text file")
    return head.decode("utf-8", errors="replace")


def _first_array_element(path: Path, limit: int = 1 << 28):
    """The first element of a JSON-array file (``json_agg`` exports), however large; None if not one."""
    import json

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    dec = json.JSONDecoder()
    size = SNIFF_BYTES
    with opener(path, "rb") as fh:
        data = b""
        while True:
            chunk = fh.read(size - len(data))
            data += chunk
            text = data.decode("utf-8", errors="ignore").lstrip()
            if not text.startswith("["):
                return None
            body = text[1:].lstrip()
            try:
                return dec.raw_decode(body)[0]
            except json.JSONDecodeError:
                if not chunk or len(data) >= limit:
                    return None
                size *= 4


def _first_json(text: str):
    """The first JSON value in text (one line, or the whole sample for pretty-printed JSON)."""
    for line in text.splitlines():
        if line.strip():
            try:
                return orjson.loads(line)
            except orjson.JSONDecodeError:
                break
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _json_kind(obj) -> str | None:
    if isinstance(obj, list):
        obj = next((o for o in obj if isinstance(o, dict)), None)
    if not isinstance(obj, dict):
        return None
    keys = {str(k).lower() for k in obj}
    if "resourcespans" in keys or "resourcelogs" in keys:
        return "otlp"
    if isinstance(obj.get("request"), dict) and ("response" in obj or "body" in obj["request"] or "messages" in obj["request"]):
        return "openai"
    if len(keys & LITELLM_KEYS) >= 3 and "request_id" in keys:
        return "litellm"
    return "jsonl"


def detect_format(path: Path) -> str:
    """The format name of one input path (a file or a folder)."""
    if path.is_dir():
        return "parquet"
    name = path.name.lower()
    if name.endswith(PARQUET_EXT):
        return "parquet"
    if name.endswith(CSV_EXT):
        text = sniff_text(path)
        try:
            header = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
        except csv.Error:
            header = []
        keys = {h.strip().lower() for h in header}
        if len(keys & LITELLM_KEYS) >= 3 and "request_id" in keys:
            return "litellm"
        return "csv"
    if name.endswith(JSON_EXT):
        text = sniff_text(path)
        if not text.strip():
            return "jsonl"
        obj = _first_json(text)
        if obj is None and text.lstrip()[:1] == "[":
            obj = _first_array_element(path)
        kind = _json_kind(obj)
        if kind is None:
            # the first record may be broken: look for any parseable object in the sample
            for line in text.splitlines()[1:200]:
                try:
                    kind = _json_kind(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
                if kind:
                    break
        if kind is None:
            stripped = text.lstrip()
            if stripped[:1] in ("{", "["):
                return "jsonl"  # broken records are quarantined one by one
            raise UsageError(f"{path}: not JSON lines (no JSON object in the first {SNIFF_BYTES // 1024} KiB)")
        return kind
    from distillguard.ingest.otlp import is_protobuf_file

    if is_protobuf_file(name):
        return "otlp"
    with open(path, "rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    raise UsageError(f"{path}: unsupported file type (expected .jsonl, .json, .csv, .parquet, OTLP .pb, optionally .gz; "
                     "or pass --format)")


def expand_paths(paths) -> list[Path]:
    out = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        out.append(p)
    return out


def check_forced(path: Path, fmt: str) -> None:
    """With ``--format``: still refuse input that is unreadable as a whole."""
    if fmt == "parquet":
        if path.is_dir():
            return
        with open(path, "rb") as fh:
            if fh.read(4) != b"PAR1":
                raise UsageError(f"{path}: not a Parquet file")
        return
    if path.is_dir():
        raise UsageError(f"{path}: is a folder (only Parquet folders are supported)")
    from distillguard.ingest.otlp import is_protobuf_file

    if fmt == "otlp" and is_protobuf_file(path.name):
        return  # binary: the reader says whether it parses
    text = sniff_text(path)
    json_like = fmt in ("jsonl", "otlp", "openai") or (fmt == "litellm" and not path.name.lower().endswith(CSV_EXT))
    if json_like:
        stripped = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if stripped and not any(ln[:1] in ("{", "[") for ln in stripped[:200]):
            raise UsageError(f"{path}: not JSON (no line starts with '{{' or '[')")
