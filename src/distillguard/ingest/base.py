"""Reader protocol, batches and quarantine records shared by every source.

A source turns one input (file or folder) into :class:`ReadBatch` objects:
canonical events as an Arrow ``RecordBatch`` in :data:`EVENT_SCHEMA` exactly,
plus the records that failed validation. A bad record is never raised and never
silently dropped (pySigma's ``collect_errors``): it becomes a
:class:`Quarantined` row that says where it came from and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterator, Protocol, runtime_checkable

import pyarrow as pa

from distillguard.schema import EVENT_SCHEMA

__all__ = ["Quarantined", "ReadBatch", "Source", "RAW_LIMIT", "empty_events", "truncate_raw"]

RAW_LIMIT = 2000
"""Raw text kept in a quarantine record, in characters."""


def truncate_raw(raw) -> str:
    """Raw input as text for a quarantine record, at most :data:`RAW_LIMIT` characters."""
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw).decode("utf-8", errors="backslashreplace")
    elif not isinstance(raw, str):
        try:
            import orjson

            raw = orjson.dumps(raw, default=str).decode()
        except Exception:  # pragma: no cover - anything printable will do
            raw = repr(raw)
    return raw if len(raw) <= RAW_LIMIT else raw[:RAW_LIMIT] + "…"


@dataclass(frozen=True)
class Quarantined:
    """One input record that failed validation.

    ``line`` is the 1-based line of a line-oriented file (JSONL, CSV counting
    the header as line 1), or the 1-based row of a Parquet file.
    ``reason`` is a short code (see ``docs/ingest.md``); ``detail`` says more.
    """

    source: str
    line: int
    reason: str
    raw: str = ""
    detail: str = ""

    def to_dict(self) -> dict:
        """The quarantine line; personal and secret data in ``raw`` and ``detail`` redacted, whatever
        ``store.prompts`` says (a format problem never needs them: docs/privacy.md)."""
        from distillguard.privacy.redact import redact

        d = {"source": self.source, "line": self.line, "reason": self.reason, "raw": redact(self.raw)}
        if self.detail:
            d["detail"] = redact(self.detail)
        return d


def empty_events() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=EVENT_SCHEMA)


@dataclass
class ReadBatch:
    """Canonical events of one chunk of input and the records quarantined from it."""

    events: pa.RecordBatch = field(default_factory=empty_events)
    quarantined: list[Quarantined] = field(default_factory=list)

    @property
    def read(self) -> int:
        return self.events.num_rows + len(self.quarantined)


@runtime_checkable
class Source(Protocol):
    """One reader per input format (MSTICPy style)."""

    name: ClassVar[str]

    def read(self, path: str) -> Iterator[ReadBatch]:  # pragma: no cover - protocol
        ...
