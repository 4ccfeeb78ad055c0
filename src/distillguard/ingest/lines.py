"""Fast line splitting for line-oriented files (plain or gzip), with exact line numbers.

Lines are read by Arrow's C++ CSV reader configured to see one binary column
per line (no quoting, a control-character delimiter), so no Python code runs
per line. A line that contains the delimiter byte is caught by the invalid-row
handler with its line number and reported back for quarantine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["LineChunk", "iter_lines", "open_input", "prefetch"]

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

    reader = pacsv.open_csv(
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
