"""``distillguard classify``: per-prompt intent probabilities, for analysts and for testing rules."""
from __future__ import annotations

import sys
from pathlib import Path

import typer


def classify(
    file: Path = typer.Argument(..., help="Prompts: JSONL with a 'prompt' field per line, or text (one per line); '-' for stdin."),
    fmt: str = typer.Option("jsonl", "--format", help="Input format: jsonl or text."),
) -> None:
    """Print one JSON object per input line: intent probabilities and the intents matched at the scan's threshold."""
    from distillguard.errors import UsageError
    from distillguard.signals.content.classify import FORMATS, classify_stream

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        stream = sys.stdin.buffer if str(file) == "-" else open(file, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        n, bad = classify_stream(stream, sys.stdout, fmt)
    except OSError as exc:  # e.g. a directory opens but does not read
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    print(f"classified {n} lines, {bad} bad", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
