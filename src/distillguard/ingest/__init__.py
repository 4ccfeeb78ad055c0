"""Ingest: one reader per source format, validation, quarantine, into the event store.

>>> from distillguard.ingest import ingest_files, IngestResult
>>> IngestResult(read=3, accepted=2, quarantined=1, duplicates=0).as_dict()
{'read': 3, 'accepted': 2, 'quarantined': 1, 'duplicates': 0}

See ``docs/ingest.md`` for formats, field mappings and quarantine reasons.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from distillguard.errors import UsageError
from distillguard.ingest.base import Quarantined, ReadBatch, Source

__all__ = ["ingest_files", "IngestResult", "get_source", "read_path", "Quarantined", "ReadBatch", "Source",
           "FORMATS"]

FORMATS = ("jsonl", "csv", "parquet", "otlp", "litellm", "openai")


@dataclass
class IngestResult:
    """Counts of one ingest: ``read = accepted + quarantined + duplicates``."""

    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    accounts: int = 0
    accounts_quarantined: int = 0
    files: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"read": self.read, "accepted": self.accepted, "quarantined": self.quarantined,
                "duplicates": self.duplicates}

    def to_dict(self) -> dict:
        return asdict(self)


def get_source(fmt: str, on_progress=None) -> Source:
    """The reader for a format name."""
    if fmt == "jsonl":
        from distillguard.ingest.jsonl import JsonlSource

        return JsonlSource(on_progress=on_progress)
    if fmt == "csv":
        from distillguard.ingest.tabular import CsvSource

        return CsvSource(on_progress=on_progress)
    if fmt == "parquet":
        from distillguard.ingest.tabular import ParquetSource

        return ParquetSource(on_progress=on_progress)
    if fmt == "otlp":
        from distillguard.ingest.otlp import OtlpSource

        return OtlpSource()
    if fmt == "litellm":
        from distillguard.ingest.litellm import LiteLLMSource

        return LiteLLMSource()
    if fmt == "openai":
        from distillguard.ingest.openai_log import OpenAILogSource

        return OpenAILogSource()
    raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def read_path(path, fmt: str | None = None, on_progress=None):
    """(format, iterator of ReadBatch) for one input path; UsageError when unreadable as a whole."""
    fmt, source = open_path(path, fmt, on_progress)
    return fmt, _guard(path, source.read(str(path)))


def open_path(path, fmt: str | None = None, on_progress=None):
    """(format, source) for one input path; UsageError when unreadable as a whole."""
    from distillguard.ingest.detect import check_forced, detect_format

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file or directory")
    if fmt is None:
        fmt = detect_format(p)
    else:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
        check_forced(p, fmt)
    return fmt, get_source(fmt, on_progress=on_progress)


def _reraise(path, exc: Exception) -> None:
    """Turn a read error in the middle of a file into UsageError (one line, exit 2)."""
    if isinstance(exc, UsageError) or type(exc).__name__ == "OutOfMemoryException":
        raise exc  # out of memory is not the file's fault: the command names the memory limit
    mod = type(exc).__module__.split(".")[0]
    if isinstance(exc, (OSError, EOFError, ValueError)) or mod in ("pyarrow", "duckdb", "_duckdb"):
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: unreadable ({msg})") from None


def _guard(path, it):
    try:
        yield from it
    except Exception as exc:
        _reraise(path, exc)
        raise


def _detected(paths: list[Path]) -> dict[Path, str | UsageError]:
    """Each distinct input's format, detected once (an undetectable file's error is raised when its turn comes)."""
    from distillguard.ingest.detect import detect_format

    out: dict[Path, str | UsageError] = {}
    for p in dict.fromkeys(paths):
        try:
            out[p] = detect_format(p)
        except UsageError as exc:
            out[p] = exc
    return out


def ingest_files(paths: Iterable, store, quarantine_path=None, fmt: str | None = None, accounts=None,
                 progress: bool = True) -> IngestResult:
    """Read event files (and optionally an account file) into ``store``.

    Parameters
    ----------
    paths
        Files or folders (Parquet lakes are read recursively).
    store
        An :class:`~distillguard.store.EventStore`.
    quarantine_path
        JSONL file receiving one ``{source, line, reason, raw, detail}`` object per
        bad record of this run (replaced, created even when empty); ``None`` keeps no file.
    fmt
        Force a format (``jsonl``, ``csv``, ``parquet``, ``otlp``, ``litellm``, ``openai``);
        auto-detected per file when ``None``.
    accounts
        Optional account-metadata file (CSV, JSONL or Parquet).
    progress
        Show a progress bar on stderr for long files (only on a terminal).

    Returns
    -------
    IngestResult
        with ``read == accepted + quarantined + duplicates``.
    """
    import orjson

    from distillguard.ingest.progress import Progress

    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
    if accounts is not None and not Path(accounts).exists():
        raise UsageError(f"{accounts}: no such file or directory")
    result = IngestResult()
    qfile = None
    if quarantine_path is not None:
        qp = Path(quarantine_path)
        qp.parent.mkdir(parents=True, exist_ok=True)
        qfile = open(qp, "wb")  # the quarantine of this run: its lines match result.quarantined

    def write_quarantine(records: list[Quarantined]) -> None:
        result.quarantined += len(records)
        if qfile is not None and records:
            qfile.write(b"".join(orjson.dumps(q.to_dict()) + b"\n" for q in records))

    detected = {} if fmt is not None else _detected(paths)
    # OTLP exports are read as one, at the first of them (a trace export joins its log export); a path
    # given again reads them again, so its calls count as duplicates, as a repeated file of any format does
    otlp = list(dict.fromkeys(p for p in paths if (fmt.lower() if fmt else detected[p]) == "otlp"))
    joined: set[Path] = set()
    try:
        with Progress(enabled=progress) as bar:
            for p in paths:
                if p in otlp and p != otlp[0] and p not in joined:
                    joined.add(p)
                    continue
                joined.add(p)
                task = bar.start(p)
                if fmt is None:
                    if isinstance(detected[p], UsageError):
                        raise detected[p]
                    fmt_p, source = detected[p], get_source(detected[p], on_progress=task)
                else:
                    fmt_p, source = open_path(p, fmt, on_progress=task)
                before = result.quarantined
                if hasattr(source, "ingest_into"):
                    try:
                        inserted, dups = source.ingest_into(str(p), store, write_quarantine)
                    except Exception as exc:
                        _reraise(p, exc)
                        raise
                    result.accepted += inserted
                    result.duplicates += dups
                    result.files.append({"path": str(p), "format": fmt_p, "accepted": inserted,
                                         "duplicates": dups, "quarantined": result.quarantined - before})
                    bar.finish(task)
                    continue
                batches = source.read_paths([str(x) for x in otlp]) if p in otlp else source.read(str(p))

                def events():
                    for rb in _guard(p, batches):
                        write_quarantine(rb.quarantined)
                        if rb.events.num_rows:
                            yield rb.events

                inserted, dups = store.append_events(events())
                result.accepted += inserted
                result.duplicates += dups
                result.files.append({"path": str(p), "format": fmt_p, "accepted": inserted, "duplicates": dups,
                                     "quarantined": result.quarantined - before})
                bar.finish(task)
        if accounts is not None:
            from distillguard.ingest.accounts import read_accounts

            table, bad = read_accounts(accounts)
            result.accounts = store.append_accounts(table)
            result.accounts_quarantined = len(bad)
            if qfile is not None and bad:
                qfile.write(b"".join(orjson.dumps(q.to_dict()) + b"\n" for q in bad))
    finally:
        if qfile is not None:
            qfile.close()
    result.read = result.accepted + result.quarantined + result.duplicates
    return result
