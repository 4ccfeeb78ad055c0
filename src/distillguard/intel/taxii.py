"""TAXII 2.1 push and pull with ``taxii2-client``.

``url`` is a collection URL: ``https://host/api-root/collections/<id>/``.
Credentials come from arguments or ``DISTILLGUARD_TAXII_USER`` /
``DISTILLGUARD_TAXII_PASSWORD``.
"""
from __future__ import annotations

import json
import os

from distillguard.errors import UsageError

__all__ = ["push", "pull"]


def _collection(url: str, user: str | None, password: str | None):
    from taxii2client.v21 import Collection

    user = user or os.environ.get("DISTILLGUARD_TAXII_USER")
    password = password or os.environ.get("DISTILLGUARD_TAXII_PASSWORD")
    if not url.endswith("/"):
        url += "/"
    return Collection(url, user=user, password=password)


def _wrap(fn, url):
    import requests
    from taxii2client.exceptions import TAXIIServiceException

    try:
        return fn()
    except (requests.RequestException, TAXIIServiceException) as exc:
        raise UsageError(f"TAXII {url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def push(bundle: bytes | str | dict, url: str, user: str | None = None, password: str | None = None) -> dict:
    """Add a bundle's objects to a collection; returns the TAXII status counts."""
    body = bundle if isinstance(bundle, dict) else json.loads(bundle)
    col = _collection(url, user, password)
    status = _wrap(lambda: col.add_objects(json.dumps(body), wait_for_completion=True, poll_interval=0.2, timeout=30), url)
    return {"status": status.status, "success": status.success_count, "failure": status.failure_count, "pending": status.pending_count}


def pull(url: str, user: str | None = None, password: str | None = None, added_after: str | None = None, per_request: int = 100) -> list[dict]:
    """Every object of a collection (paged), optionally only those added after a time."""
    from taxii2client.v21 import as_pages

    col = _collection(url, user, password)
    kw = {"added_after": added_after} if added_after else {}

    def fetch():
        objs = []
        for page in as_pages(col.get_objects, per_request=per_request, **kw):
            objs.extend(page.get("objects", []))
        return objs

    return _wrap(fetch, url)
