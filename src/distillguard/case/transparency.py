"""``report transparency``: the aggregate figures a provider publishes about attacks on its models.

Only counts, shares, reason codes and capability names leave the store: no
account, organisation, key, IP, e-mail domain, payment fingerprint, user agent,
campaign id or prompt text. Figures cover the campaigns active in the period
(first request before its end, last request after its start).
"""
from __future__ import annotations

import json
import re
import statistics
from datetime import date, datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from distillguard.errors import UsageError
from distillguard.store import EventStore

__all__ = ["parse_period", "transparency_report", "transparency_figures"]

_env = Environment(loader=PackageLoader("distillguard.case", "templates"), autoescape=select_autoescape(default=True, default_for_string=True))
_env.filters["thousands"] = lambda v: "" if v is None else f"{int(v):,}"
SIZE_BUCKETS = ((2, 9, "2-9"), (10, 99, "10-99"), (100, 999, "100-999"), (1000, 9999, "1,000-9,999"), (10000, None, "10,000+"))


def parse_period(period: str) -> tuple[date, date]:
    """``2026-Q4``, ``2026-03`` or ``2026`` -> ``[start, end)``."""
    m = re.fullmatch(r"(\d{4})(?:-(?:Q([1-4])|(\d{2})))?", (period or "").strip(), re.I)
    if not m:
        raise UsageError(f"period {period!r}: use YYYY-Qn, YYYY-MM or YYYY")
    y = int(m.group(1))
    if m.group(2):
        q = int(m.group(2))
        start = date(y, 3 * q - 2, 1)
        end = date(y + 1, 1, 1) if q == 4 else date(y, 3 * q + 1, 1)
    elif m.group(3):
        mo = int(m.group(3))
        if not 1 <= mo <= 12:
            raise UsageError(f"period {period!r}: month must be 01-12")
        start, end = date(y, mo, 1), (date(y + 1, 1, 1) if mo == 12 else date(y, mo + 1, 1))
    else:
        start, end = date(y, 1, 1), date(y + 1, 1, 1)
    return start, end


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))], 1)


def transparency_figures(con, period: str) -> dict:
    from distillguard.store import table_exists
    from distillguard.console.data import capability_breakdown

    start, end = parse_period(period)
    fig = {"period": period.upper(), "start": start.isoformat(), "end_exclusive": end.isoformat(),
           "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if not table_exists(con, "campaigns"):
        raise UsageError("the store has no scan results (run scan --db first)")
    camps = con.execute(
        "SELECT c.campaign_id, c.n_accounts, c.reasons, c.first_seen, r.finished_at, c.evidence_json FROM campaigns c "
        "LEFT JOIN scan_runs r USING (run_id) WHERE c.first_seen < CAST(? AS DATE) AND c.last_seen >= CAST(? AS DATE)",
        [end.isoformat(), start.isoformat()]).fetchall()
    members = sorted({a for c in camps for a in (json.loads(c[5]).get("accounts") or [])})
    sizes = {label: 0 for *_, label in SIZE_BUCKETS}
    for c in camps:
        for lo, hi, label in SIZE_BUCKETS:
            if c[1] >= lo and (hi is None or c[1] <= hi):
                sizes[label] += 1
    techniques: dict[str, int] = {}
    for c in camps:
        for code in c[2] or []:
            techniques[code] = techniques.get(code, 0) + 1
    import pyarrow as pa

    exchanges = {"exchanges": 0, "input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0}
    actions = {}
    if members:
        con.register("_tm", pa.table({"account_id": pa.array(members, pa.string())}))
        try:
            r = con.execute(
                "SELECT count(*), sum(coalesce(input_tokens,0)), sum(coalesce(output_tokens,0)), sum(coalesce(reasoning_tokens,0)) "
                "FROM events JOIN _tm USING (account_id) WHERE ts >= CAST(? AS DATE) AND ts < CAST(? AS DATE)",
                [start.isoformat(), end.isoformat()]).fetchall()[0]
            exchanges = {"exchanges": int(r[0] or 0), "input_tokens": int(r[1] or 0), "output_tokens": int(r[2] or 0),
                         "reasoning_tokens": int(r[3] or 0)}
            if table_exists(con, "account_results"):
                actions = dict(con.execute("SELECT action, count(*) FROM account_results JOIN _tm USING (account_id) GROUP BY 1").fetchall())
        finally:
            con.unregister("_tm")
    ttd = []
    for c in camps:
        if c[3] is not None and c[4] is not None:
            ttd.append(max(0.0, (c[4] - c[3]).total_seconds() / 3600))
    decisions, ttr = {}, []
    if table_exists(con, "analyst_decisions"):
        ids = [c[0] for c in camps]
        rows = con.execute(
            "SELECT action, count(*) FROM analyst_decisions WHERE target_kind = 'campaign' AND list_contains(?, target_id) GROUP BY 1",
            [ids]).fetchall() if ids else []
        decisions = dict(rows)
        first_seen = {c[0]: c[3] for c in camps}
        for tid, ts in (con.execute(
                "SELECT target_id, min(ts) FROM analyst_decisions WHERE target_kind = 'campaign' AND list_contains(?, target_id) GROUP BY 1",
                [ids]).fetchall() if ids else []):
            fs = first_seen.get(tid)
            if fs is not None:
                ttr.append(max(0.0, (datetime.fromisoformat(ts) - fs).total_seconds() / 3600))
    flagged_outside = 0
    if table_exists(con, "account_results"):
        flagged_outside = con.execute(
            "SELECT count(*) FROM account_results a WHERE a.campaign_id IS NULL AND a.action IN ('challenge', 'throttle', 'block') "
            "AND EXISTS (SELECT 1 FROM events e WHERE e.account_id = a.account_id AND e.ts >= CAST(? AS DATE) AND e.ts < CAST(? AS DATE))",
            [start.isoformat(), end.isoformat()]).fetchall()[0][0]
    caps = capability_breakdown(con, members, sample=600) if members else []
    fig.update({
        "campaigns": {"count": len(camps), "by_size": sizes},
        "accounts": {"in_campaigns": len(members), "flagged_outside_campaigns": int(flagged_outside)},
        "harvest": exchanges,
        "techniques": dict(sorted(techniques.items(), key=lambda kv: (-kv[1], kv[0]))),
        "capabilities_targeted": [{"capability": c["capability"], "share_of_exchanges": c["share"],
                                   "share_of_output_tokens": c["token_share"]} for c in caps],
        "actions_taken": {"policy_actions_on_campaign_accounts": {a: int(actions.get(a, 0)) for a in ("allow", "monitor", "challenge", "throttle", "block")},
                          "analyst_decisions_on_campaigns": {a: int(decisions.get(a, 0)) for a in ("confirm", "dismiss", "escalate", "allowlist")}},
        "time_to_detection_hours": {"definition": "first request of a campaign to the end of the scan that reported it",
                                    "campaigns": len(ttd), "median": round(statistics.median(ttd), 1) if ttd else None,
                                    "p90": _pct(ttd, 0.9)},
        "time_to_analyst_decision_hours": {"campaigns": len(ttr), "median": round(statistics.median(ttr), 1) if ttr else None,
                                           "p90": _pct(ttr, 0.9)},
    })
    return fig


def transparency_report(db: Path, period: str, out: Path) -> dict:
    """Write ``transparency-PERIOD.json`` and ``.html`` into ``out``; returns the figures."""
    parse_period(period)
    if not Path(db).is_file():
        raise UsageError(f"no store at {db}")
    con = EventStore(db, read_only=True).con  # UTC session; unreadable file -> UsageError
    try:
        fig = transparency_figures(con, period)
    finally:
        con.close()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None
    stem = f"transparency-{fig['period']}"
    (out / f"{stem}.json").write_text(json.dumps(fig, indent=1), encoding="utf-8")
    (out / f"{stem}.html").write_text(_env.get_template("transparency.html.j2").render(f=fig), encoding="utf-8")
    return fig
