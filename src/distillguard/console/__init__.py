"""Analyst console (server-rendered pages), analyst decisions and their audit log.

- :func:`console_router`: the FastAPI router ``distillguard serve`` mounts at ``/``;
- :func:`analyst_overrides`: analyst feedback for the scan;
- :func:`record_action`, :func:`verify_audit_chain`, :func:`audit_head`: the hash-chained audit log.

FastAPI is imported only when the router is built, so the audit functions work without it.
"""
from distillguard.console.audit import (
    ACTIONS, AnalystOverrides, analyst_overrides, audit_head, confirmed_indicators, matches_dismissed, record_action,
    verify_audit_chain,
)

__all__ = [
    "ACTIONS", "AnalystOverrides", "analyst_overrides", "audit_head", "confirmed_indicators", "console_router", "matches_dismissed",
    "record_action", "verify_audit_chain",
]


def console_router(store_path, prices_path=None, title: str = "distillguard console", lock=None, auth=None):
    """The console's FastAPI router, to mount at ``/``; see :func:`distillguard.console.app.console_router`."""
    from distillguard.console.app import console_router as _router

    return _router(store_path, prices_path, title, lock=lock, auth=auth)
