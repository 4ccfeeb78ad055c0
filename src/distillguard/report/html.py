"""report.html: a self-contained page a person reads.

Every logged field is attacker-controlled text, so the template autoescapes
everything and the page carries a Content-Security-Policy that allows no
script at all. Charts are inline SVG built here, so the page works offline.
"""
from __future__ import annotations

import json
from collections import Counter

from jinja2 import Environment, PackageLoader, select_autoescape

__all__ = ["render_report", "sparkline"]

_env = Environment(loader=PackageLoader("distillguard.report", "templates"), autoescape=select_autoescape(default=True))


def sparkline(points: list[tuple[str, int]], width: int = 360, height: int = 60) -> dict:
    """Bar-chart geometry for a time series (drawn by the template as SVG rects)."""
    if not points:
        return {"bars": [], "width": width, "height": height, "max": 0, "first": "", "last": ""}
    peak = max(c for _, c in points) or 1
    bw = width / len(points)
    bars = [
        {"x": round(i * bw, 2), "w": round(max(bw - 0.5, 0.5), 2), "h": round(height * c / peak, 2), "y": round(height - height * c / peak, 2), "label": f"{t}: {c}"}
        for i, (t, c) in enumerate(points)
    ]
    return {"bars": bars, "width": width, "height": height, "max": peak, "first": points[0][0], "last": points[-1][0]}


def render_report(result, ingest: dict) -> str:
    acc = result.accounts
    actions = Counter(acc.column("action").to_pylist())
    reasons = Counter(code for codes in acc.column("reasons").to_pylist() for code in (codes or []))
    flagged = [
        r for r in acc.select(["account_id", "risk", "action", "campaign_id", "reasons", "n_events"]).to_pylist()
        if r["action"] in ("challenge", "throttle", "block") and not r["campaign_id"]
    ][:50]
    campaigns = []
    for c in result.campaigns[:100]:
        c = dict(c)
        c["chart"] = sparkline(c.get("timeline", []))
        c["signals_json"] = {k: json.dumps(v, ensure_ascii=False, default=str)[:1500] for k, v in c.get("signals", {}).items()}
        campaigns.append(c)
    return _env.get_template("report.html.j2").render(
        run_id=result.run_id,
        n_events=result.n_events,
        n_accounts=acc.num_rows,
        actions=[(a, actions.get(a, 0)) for a in ("allow", "monitor", "challenge", "throttle", "block")],
        reasons=reasons.most_common(),
        campaigns=campaigns,
        n_campaigns=len(result.campaigns),
        flagged=flagged,
        ingest=ingest,
        timings=result.timings,
        calibration=result.calibration,
        operators=result.operators[:100],
    )
