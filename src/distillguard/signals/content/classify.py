"""Per-prompt intent probabilities for a file of prompts (``distillguard classify``).

Input: JSONL with a ``prompt`` string per line, or plain text with one prompt
per line. Output: one JSON object per input line, in input order:
``{"intents": {intent: p}, "matched": [intents with p >= the scan's per-prompt
threshold (:data:`.intents.PROMPT_THRESHOLDS`)]}``, or ``{"error": ..., "line": n}`` for a line that cannot be read
(not UTF-8, not JSON, no ``prompt`` string, empty). Lines are scored in
batches, so memory stays bounded on large files.
"""
from __future__ import annotations

import json
from typing import IO, Iterable, Iterator

from .bank import INTENTS
from .intents import PROMPT_THRESHOLDS
from .model import intent_scorer

__all__ = ["FORMATS", "parse_line", "classify_lines", "classify_stream"]

FORMATS = ("jsonl", "text")
BATCH = 4096


def parse_line(raw: bytes, fmt: str) -> str:
    """The prompt of one input line; raises ``ValueError`` with a readable reason."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    if line.endswith("\r"):
        line = line[:-1]
    if not line.strip():
        raise ValueError("empty line")
    if fmt == "text":
        return line
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError("no 'prompt' string field")
    return prompt


def _result(probs: dict[str, float]) -> dict:
    return {
        "intents": {k: round(float(probs[k]), 4) for k in INTENTS},
        "matched": [k for k in INTENTS if probs[k] >= PROMPT_THRESHOLDS[k]],
    }


def classify_lines(lines: Iterable[bytes], fmt: str = "jsonl") -> Iterator[dict]:
    """One result object per input line (bytes, without the newline), in order."""
    scorer = intent_scorer()
    batch: list[tuple[int, str | None, str | None]] = []  # (line number, prompt, error)

    def flush():
        texts = [p for _, p, e in batch if e is None]
        probs = scorer.predict(texts) if texts else {}
        i = 0
        for n, _, err in batch:
            if err is not None:
                yield {"error": err, "line": n}
            else:
                yield _result({k: probs[k][i] for k in INTENTS})
                i += 1
        batch.clear()

    for n, raw in enumerate(lines, start=1):
        try:
            batch.append((n, parse_line(raw, fmt), None))
        except ValueError as exc:
            batch.append((n, None, str(exc)))
        if len(batch) >= BATCH:
            yield from flush()
    yield from flush()


def _split_lines(stream: IO[bytes]) -> Iterator[bytes]:
    for raw in stream:
        yield raw[:-1] if raw.endswith(b"\n") else raw


def classify_stream(stream: IO[bytes], out: IO[str], fmt: str = "jsonl") -> tuple[int, int]:
    """Classify every line of ``stream`` into ``out``; returns ``(lines, bad lines)``."""
    n = bad = 0
    for obj in classify_lines(_split_lines(stream), fmt):
        n += 1
        bad += "error" in obj
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return n, bad
