"""Fast line splitting for line-oriented files (plain or gzip), with exact line numbers.

:func:`iter_lines` reads lines with Arrow's C++ CSV reader configured to see
one binary column per line (no quoting, a control-character delimiter), so no
Python code runs per line. A line that contains the delimiter byte is caught
by the invalid-row handler with its line number and reported back for
quarantine.

:class:`RecordLines` finds given records of a newline-delimited file the way
DuckDB's JSON reader counts them (one record per non-blank ``\\n`` line), for
the few records the SQL path hands back to Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["LineChunk", "RecordLines", "iter_lines", "open_input", "prefetch"]

_DELIM = "\x01"


@dataclass
class LineChunk:
    lines: pa.Array  # binary, blank lines removed
    numbers: np.ndarray  # int64 1-based line numbers of ``lines``
    odd: list[tuple[int, str]]  # (line number, text) of lines the splitter could not take
    position: int  # bytes of the (compressed) file consumed so far


def open_input(path: str):
    """(stream, raw file) for a path; ``.gz`` is decompressed on the fly."""
    raw = pa.OSFile(str(path), "rb")
    if str(path).lower().endswith(".gz"):
        return pa.CompressedInputStream(raw, "gzip"), raw
    return raw, raw


def iter_lines(path: str, block_size: int = 16 << 20) -> Iterator[LineChunk]:
    """Chunks of non-blank lines with their 1-based line numbers."""
    stream, raw = open_input(path)
    odd: list[tuple[int, str]] = []

    def handler(row) -> str:
        odd.append((row.number if row.number is not None else -1, row.text))
        return "skip"

    try:
        reader = _open_lines(stream, block_size, handler)
    except pa.ArrowInvalid as exc:
        stream.close()
        if "Empty CSV file" in str(exc):  # an empty file has no lines
            return
        raise
    next_no = 1
    try:
        for batch in reader:
            col = batch.column(0)
            n = len(col)
            taken = [o for o in odd if o[0] >= 0]
            span = n + len(taken)
            if taken:
                skip = np.array([o[0] for o in taken], dtype=np.int64)
                allno = np.arange(next_no, next_no + span, dtype=np.int64)
                numbers = allno[~np.isin(allno, skip)]
            else:
                numbers = np.arange(next_no, next_no + n, dtype=np.int64)
            next_no += span
            chunk_odd = list(odd)
            odd.clear()
            # drop blank lines (empty or whitespace only): cheap check on lengths first
            offsets = np.frombuffer(col.buffers()[1], dtype=np.int32, count=n + 1, offset=col.offset * 4)
            lengths = np.diff(offsets)
            short = np.flatnonzero(lengths <= 8)
            if len(short):
                blank = [i for i in short.tolist() if not col[i].as_py().strip()]
                if blank:
                    keep = np.ones(n, dtype=bool)
                    keep[blank] = False
                    col = col.filter(pa.array(keep))
                    numbers = numbers[keep]
            yield LineChunk(col, numbers, [o for o in chunk_odd if o[1].strip()], raw.tell())
        if odd:
            yield LineChunk(pa.array([], pa.binary()), np.array([], dtype=np.int64), list(odd), raw.tell())
    finally:
        stream.close()


def _open_lines(stream, block_size: int, handler):
    """Arrow's CSV reader set to one binary column per line."""
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=["line"], block_size=block_size, use_threads=False),
        parse_options=pacsv.ParseOptions(
            delimiter=_DELIM, quote_char=False, escape_char=False, newlines_in_values=False,
            ignore_empty_lines=False, invalid_row_handler=handler,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={"line": pa.binary()}, strings_can_be_null=False, quoted_strings_can_be_null=False,
        ),
    )


BLANK_BYTES = b" \t\r\x0b\x0c"
"""What a blank line may hold: DuckDB's newline-delimited JSON reader skips such lines, and so do we."""
_BLANK = np.zeros(256, dtype=bool)
_BLANK[list(BLANK_BYTES)] = True


class RecordLines:
    """Records of a newline-delimited file: record ``k`` is its ``k``-th non-blank line (0-based).

    Lines end at ``\\n`` only (a ``\\r`` before it is dropped from the text);
    blank lines hold only :data:`BLANK_BYTES`. After a full :meth:`select`,
    ``total`` is the number of records in the file.
    """

    def __init__(self, path: str, block_size: int = 16 << 20):
        self.path = str(path)
        self.block_size = block_size
        self.total: int | None = None

    def count(self) -> int:
        """The number of records (non-blank lines)."""
        for _ in self.select([]):
            pass
        return self.total

    def select(self, wanted) -> Iterator[tuple[int, int, bytes]]:
        """``(record, 1-based line number, raw bytes)`` for the wanted records (sorted ascending)."""
        wanted = np.asarray(wanted, dtype=np.int64)
        stream, _ = open_input(self.path)
        records = lines = 0
        carry = b""
        try:
            while True:
                block = stream.read(self.block_size)
                buf = carry + block if carry else block
                if not block:
                    if not buf:
                        break
                    buf += b"\n"  # a last line without a newline
                arr = np.frombuffer(buf, dtype=np.uint8)
                ends = np.flatnonzero(arr == 10)
                if len(ends) == 0:
                    carry = buf
                    continue
                starts = np.empty_like(ends)
                starts[0] = 0
                starts[1:] = ends[:-1] + 1
                filled = ends > starts
                first = arr[np.minimum(starts, len(arr) - 1)]
                nonblank = filled & ~_BLANK[first]
                for j in np.flatnonzero(filled & _BLANK[first]).tolist():  # rare: lines that start blank
                    nonblank[j] = bool(buf[starts[j]:ends[j]].strip(BLANK_BYTES))
                kept = np.flatnonzero(nonblank)
                lo, hi = np.searchsorted(wanted, [records, records + len(kept)])
                for k in wanted[lo:hi].tolist():
                    j = kept[k - records]
                    raw = buf[starts[j]:ends[j]]
                    yield k, lines + int(j) + 1, raw[:-1] if raw.endswith(b"\r") else raw
                records += len(kept)
                lines += len(ends)
                carry = buf[ends[-1] + 1:]
                if not block:
                    break
        finally:
            stream.close()
        self.total = records


def prefetch(it, depth: int = 1):
    """Run an iterator one step ahead in a background thread (Arrow and DuckDB release the GIL,
    so splitting the next chunk overlaps with normalising this one). Exceptions are re-raised here."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put((False, exc))

    t = threading.Thread(target=work, daemon=True, name="distillguard-lines")
    t.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        t.join(timeout=5)
