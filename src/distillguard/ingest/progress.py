"""A Rich progress bar on stderr for long files; silent when not a terminal or disabled."""
from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["Progress"]

MIN_BYTES = 32 << 20
"""Files smaller than this get no bar."""


class _Task:
    def __init__(self, bar, task_id):
        self.bar, self.task_id = bar, task_id

    def __call__(self, position: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task_id, completed=position)


class Progress:
    """Context manager: ``start(path)`` returns a callable taking the byte position."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def start(self, path: Path):
        if not self.enabled:
            return _Task(None, None)
        try:
            size = path.stat().st_size if path.is_file() else sum(
                f.stat().st_size for f in path.rglob("*") if f.is_file())
        except OSError:
            return _Task(None, None)
        if size < MIN_BYTES:
            return _Task(None, None)
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress as RichProgress, TextColumn, \
                TimeRemainingColumn, TransferSpeedColumn

            self._bar = RichProgress(
                TextColumn("ingest {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            self._bar.start()
        return _Task(self._bar, self._bar.add_task(path.name, total=size))

    def finish(self, task) -> None:
        if task.bar is not None:
            task.bar.remove_task(task.task_id)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
