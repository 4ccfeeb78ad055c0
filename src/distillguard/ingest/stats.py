"""A summary of the event store (``distillguard stats``)."""
from __future__ import annotations

__all__ = ["store_stats"]


def store_stats(store, top: int = 10) -> dict:
    """Counts, time range, accounts, models and top organisations of a store."""
    con = store.con
    if not store.has_table("events"):
        return {"events": 0, "accounts_seen": 0, "accounts_metadata": 0, "first_ts": None, "last_ts": None,
                "input_tokens": 0, "output_tokens": 0, "models": [], "top_orgs": []}
    n, acc, first, last, itok, otok = con.execute(
        "SELECT count(*), count(DISTINCT account_id), min(ts), max(ts), "
        "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) FROM events").fetchone()
    meta = con.execute("SELECT count(*) FROM accounts").fetchone()[0] if store.has_table("accounts") else 0
    models = con.execute(
        "SELECT coalesce(model, '(none)'), count(*) AS c FROM events GROUP BY 1 ORDER BY c DESC, 1 LIMIT ?",
        [top]).fetchall()
    orgs = con.execute(
        "SELECT org_id, count(*) AS c, count(DISTINCT account_id) FROM events WHERE org_id IS NOT NULL "
        "GROUP BY 1 ORDER BY c DESC, 1 LIMIT ?", [top]).fetchall()
    iso = (lambda t: t.isoformat() if t is not None else None)
    return {
        "events": n, "accounts_seen": acc, "accounts_metadata": meta,
        "first_ts": iso(first), "last_ts": iso(last),
        "input_tokens": int(itok), "output_tokens": int(otok),
        "models": [{"model": m, "events": c} for m, c in models],
        "top_orgs": [{"org_id": o, "events": c, "accounts": a} for o, c, a in orgs],
    }
