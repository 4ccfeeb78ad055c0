"""Analyst console (server-rendered pages) over the store's scan results and the analyst audit chain
(:mod:`distillguard.audit`).

- :func:`console_router`: the FastAPI router ``distillguard serve`` mounts at ``/``.

FastAPI is imported only when the router is built.
"""

__all__ = ["console_router"]


def console_router(store_path, prices_path=None, title: str = "distillguard console", lock=None, auth=None):
    """The console's FastAPI router, to mount at ``/``; see :func:`distillguard.console.app.console_router`."""
    from distillguard.console.app import console_router as _router

    return _router(store_path, prices_path, title, lock=lock, auth=auth)
