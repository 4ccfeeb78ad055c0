"""Errors a user can cause. The CLI turns them into one line on stderr, exit 2."""


class UsageError(Exception):
    """Bad usage or unreadable input: reported as one line, exit status 2."""
