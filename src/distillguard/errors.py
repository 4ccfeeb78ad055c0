"""Errors a user can cause. The CLI turns them into one line on stderr, exit 2."""
from __future__ import annotations

import sys
from typing import Callable


class UsageError(Exception):
    """Bad usage or unreadable input: reported as one line, exit status 2."""


def exit_with(main: Callable[[], int], prog: str) -> None:
    """Run a script's ``main`` and exit with its status; a :class:`UsageError` is one line on stderr, exit 2."""
    try:
        sys.exit(main())
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
