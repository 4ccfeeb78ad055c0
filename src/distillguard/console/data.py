"""Read models for the console, case files and the transparency report.

Every page query is bounded (LIMIT/OFFSET over the store, members capped), so
the queue stays fast at 10,000 campaigns and a campaign page at 24,000 members.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from distillguard.audit import first, latest_campaign_status
from distillguard.store import table_exists

__all__ = ["PAGE_SIZE", "queue", "campaign_detail", "account_detail", "load_prices", "graph_data"]

PAGE_SIZE = 50
STATUSES = ("open", "confirmed", "dismissed", "escalated")
HUB_KINDS = ("payment_fingerprint", "email_domain", "client_ip", "subnet", "user_agent", "client_fingerprint",
             "signup_burst")


def load_prices(path: str | Path | None = None) -> dict:
    """Price per million tokens by model, from a YAML file (default: the packaged ``prices.yaml``)."""
    text = Path(path).read_text() if path else resources.files("distillguard.console").joinpath("prices.yaml").read_text()
    data = yaml.safe_load(text) or {}
    return {"currency": data.get("currency", "USD"), "default": data.get("default") or {}, "models": data.get("models") or {}}


def _status_sql() -> str:
    return ("(SELECT target_id, CASE action WHEN 'confirm' THEN 'confirmed' WHEN 'escalate' THEN 'escalated' ELSE 'dismissed' END AS status "
            "FROM analyst_decisions WHERE target_kind = 'campaign' "
            "QUALIFY row_number() OVER (PARTITION BY target_id ORDER BY seq DESC) = 1)")


OPERATOR_SQL = "json_extract_string(c.evidence_json, '$.operator_id')"
"""A campaign's operator (campaigns of one operator share its id; null in stores scanned before operators)."""


def queue(con, *, status: str = "", reason: str = "", min_size: int | None = None, max_size: int | None = None,
          date_from: str = "", date_to: str = "", operator: str = "", page: int = 1, page_size: int = PAGE_SIZE) -> dict:
    """One page of campaigns, highest risk first, with the filters applied in SQL."""
    if not table_exists(con, "campaigns"):
        return {"rows": [], "total": 0, "page": 1, "pages": 1, "reasons": []}
    where, args = [], []
    joined = table_exists(con, "analyst_decisions")
    status_expr = "coalesce(d.status, 'open')" if joined else "'open'"
    if status in STATUSES:
        where.append(f"{status_expr} = ?")
        args.append(status)
    if reason:
        where.append("list_contains(c.reasons, ?)")
        args.append(reason)
    if min_size is not None:
        where.append("c.n_accounts >= ?")
        args.append(int(min_size))
    if max_size is not None:
        where.append("c.n_accounts <= ?")
        args.append(int(max_size))
    if date_from:
        where.append("c.last_seen >= CAST(? AS DATE)")
        args.append(date_from)
    if date_to:
        where.append("c.first_seen < CAST(? AS DATE) + INTERVAL 1 DAY")
        args.append(date_to)
    if operator:
        where.append(f"{OPERATOR_SQL} = ?")
        args.append(operator)
    src = "campaigns c" + (f" LEFT JOIN {_status_sql()} d ON d.target_id = c.campaign_id" if joined else "")
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    total = first(con.execute(f"SELECT count(*) FROM {src}{cond}", args))[0]
    pages = max(1, -(-total // page_size))
    page = min(max(1, int(page)), pages)
    rows = con.execute(
        f"SELECT c.campaign_id, c.risk, c.action, c.n_accounts, c.n_events, c.first_seen, c.last_seen, c.reasons, {status_expr}, "
        f"{OPERATOR_SQL}, (SELECT count(*) FROM campaigns c2 WHERE json_extract_string(c2.evidence_json, '$.operator_id') = {OPERATOR_SQL}) "
        f"FROM {src}{cond} ORDER BY c.risk DESC, c.n_events DESC, c.campaign_id LIMIT {int(page_size)} OFFSET {(page - 1) * page_size}",
        args).fetchall()
    cols = ("campaign_id", "risk", "action", "n_accounts", "n_events", "first_seen", "last_seen", "reasons", "status",
            "operator_id", "operator_campaigns")
    reasons = [r[0] for r in con.execute(
        "SELECT DISTINCT unnest(reasons) AS r FROM campaigns ORDER BY r").fetchall()]
    return {"rows": [dict(zip(cols, r)) for r in rows], "total": total, "page": page, "pages": pages, "reasons": reasons}


def _members(con, ev: dict) -> list[str]:
    return list(ev.get("accounts") or [])


def _register_members(con, members: list[str]):
    import pyarrow as pa

    con.register("_members", pa.table({"account_id": pa.array(members, pa.string())}))


def harvest_value(con, members: list[str], prices: dict) -> dict:
    """Tokens harvested by the members, by model, priced per million tokens."""
    if not table_exists(con, "events"):
        return {"by_model": [], "total": 0.0, "currency": prices["currency"]}
    _register_members(con, members)
    try:
        rows = con.execute(
            "SELECT coalesce(e.model, '(unknown)'), count(*), sum(coalesce(input_tokens, 0)), sum(coalesce(output_tokens, 0)), "
            "sum(coalesce(reasoning_tokens, 0)) FROM events e JOIN _members m USING (account_id) GROUP BY 1 ORDER BY 4 DESC").fetchall()
    finally:
        con.unregister("_members")
    out, total = [], 0.0
    for model, n, tin, tout, treason in rows:
        p = prices["models"].get(model) or prices["default"]
        value = (tin * float(p.get("input", 0)) + (tout + treason) * float(p.get("output", 0))) / 1e6
        total += value
        out.append({"model": model, "exchanges": n, "input_tokens": int(tin), "output_tokens": int(tout),
                    "reasoning_tokens": int(treason), "price_in": p.get("input", 0), "price_out": p.get("output", 0), "value": round(value, 2)})
    return {"by_model": out, "total": round(total, 2), "currency": prices["currency"]}


@lru_cache(maxsize=1)
def _cap_scorer():
    from distillguard.signals.content.model import capability_scorer

    return capability_scorer()


def capability_breakdown(con, members: list[str], sample: int = 300) -> list[dict]:
    """Share of the members' exchanges (and output tokens) by capability, on a deterministic sample of prompts."""
    try:
        from distillguard.signals.content.bank import CAPABILITIES
    except Exception:  # pragma: no cover - content signals unavailable
        return []
    if not table_exists(con, "events") or not members:
        return []
    _register_members(con, members)
    try:
        rows = con.execute(
            f"SELECT prompt, coalesce(output_tokens, 0) FROM events e JOIN _members m USING (account_id) "
            f"WHERE prompt IS NOT NULL ORDER BY hash(e.event_id) LIMIT {int(sample)}").fetchall()
    finally:
        con.unregister("_members")
    if not rows:
        return []
    try:
        P = _cap_scorer().predict([r[0] for r in rows])
    except Exception:  # pragma: no cover
        return []
    counts = {c: [0, 0] for c in CAPABILITIES}
    for i, (_, tok) in enumerate(rows):
        c = CAPABILITIES[int(P[i].argmax())]
        counts[c][0] += 1
        counts[c][1] += int(tok)
    n = len(rows)
    tok_total = sum(v[1] for v in counts.values()) or 1
    return [{"capability": c, "share": round(v[0] / n, 3), "token_share": round(v[1] / tok_total, 3), "sampled": v[0]}
            for c, v in sorted(counts.items(), key=lambda kv: -kv[1][0]) if v[0]]


def _axis(hours: list[int]) -> list[int]:
    """Every hour (or day, past 60 days) from the first to the last, so quiet hours show as zero; one point gets neighbours."""
    if not hours:
        return []
    lo, hi = min(hours), max(hours)
    step = 3600 if hi - lo <= 60 * 86400 else 86400
    lo -= lo % step
    if hi - lo < step:
        lo, hi = lo - step, hi + step
    return list(range(lo, hi + 1, step))


def _bucket(h: int, axis: list[int]) -> int:
    step = axis[1] - axis[0] if len(axis) > 1 else 3600
    return (h - axis[0]) // step


def account_volume(con, members: list[str], top: int = 12) -> dict:
    """Hourly exchanges for the ``top`` busiest members (uPlot's columnar shape: xs in epoch seconds)."""
    if not table_exists(con, "events") or not members:
        return {"x": [], "total": [], "series": []}
    _register_members(con, members)
    try:
        busiest = [r[0] for r in con.execute(
            f"SELECT account_id FROM events JOIN _members USING (account_id) GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {int(top)}").fetchall()]
        rows = con.execute(
            "SELECT epoch(date_trunc('hour', ts))::BIGINT AS h, account_id, count(*) FROM events JOIN _members USING (account_id) "
            "GROUP BY 1, 2 ORDER BY 1").fetchall()
    finally:
        con.unregister("_members")
    hours = _axis([r[0] for r in rows])
    series = {a: [0] * len(hours) for a in busiest}
    total = [0] * len(hours)
    for h, a, n in rows:
        i = _bucket(h, hours)
        total[i] += n
        if a in series:
            series[a][i] += n
    return {"x": hours, "total": total, "series": [{"label": a, "values": series[a]} for a in busiest]}


def graph_data(con, ev: dict, max_accounts: int = 150, max_hubs: int = 40) -> dict:
    """Accounts and the shared hubs (cards, IPs, subnets, user agents, client fingerprints, domains, signup bursts)
    that link them."""
    members = _members(con, ev)
    risk = {}
    if table_exists(con, "account_results") and members:
        _register_members(con, members)
        try:
            risk = dict(con.execute(
                "SELECT account_id, risk FROM account_results JOIN _members USING (account_id)").fetchall())
        finally:
            con.unregister("_members")
    shown = sorted(members, key=lambda a: (-(risk.get(a) or 0), a))[:max_accounts]
    hubs = [s for s in (ev.get("shared") or []) if s.get("kind") in HUB_KINDS][:max_hubs]
    wanted = {(s["kind"], str(s["value"])) for s in hubs}
    pairs: set[tuple[str, str, str]] = set()
    if shown and wanted:
        _register_members(con, shown)
        try:
            q = []
            if table_exists(con, "accounts"):
                q.append("SELECT 'payment_fingerprint', payment_fingerprint, account_id FROM accounts JOIN _members USING (account_id)")
                q.append("SELECT 'email_domain', email_domain, account_id FROM accounts JOIN _members USING (account_id)")
                q.append("SELECT 'signup_burst', CAST(floor(epoch(created_at) / 600) AS BIGINT)::VARCHAR, account_id FROM accounts JOIN _members USING (account_id)")
            if table_exists(con, "events"):
                q.append("SELECT DISTINCT 'client_ip', client_ip, account_id FROM events JOIN _members USING (account_id)")
                q.append("SELECT DISTINCT 'user_agent', user_agent, account_id FROM events JOIN _members USING (account_id)")
                if any(k == "client_fingerprint" for k, _ in wanted):  # a store no scan since wrote lacks the column
                    q.append("SELECT DISTINCT 'client_fingerprint', client_fingerprint, account_id FROM events "
                             "JOIN _members USING (account_id)")
                q.append("SELECT DISTINCT 'subnet', regexp_extract(client_ip, '^(\\d+\\.\\d+\\.\\d+)\\.', 1) || '.0/24', account_id "
                         "FROM events JOIN _members USING (account_id) WHERE regexp_matches(client_ip, '^\\d+\\.\\d+\\.\\d+\\.\\d+$')")
            if not q:
                q.append("SELECT NULL, NULL, NULL WHERE false")
            for kind, value, acc in con.execute(" UNION ".join(q)).fetchall():
                if value is not None and (kind, str(value)) in wanted:
                    pairs.add((kind, str(value), acc))
        finally:
            con.unregister("_members")
    nodes = [{"data": {"id": "a:" + a, "label": a, "type": "account", "risk": round(float(risk.get(a) or 0), 3),
                       "href": "accounts/" + a}} for a in shown]
    used = {(k, v) for k, v, _ in pairs}
    for s in hubs:
        key = (s["kind"], str(s["value"]))
        if key in used:
            nodes.append({"data": {"id": f"h:{s['kind']}:{s['value']}", "label": f"{s['kind']}: {s['value']}"[:60],
                                   "type": "hub", "kind": s["kind"]}})
    edges = [{"data": {"id": f"e{i}", "source": "a:" + acc, "target": f"h:{k}:{v}", "kind": k}}
             for i, (k, v, acc) in enumerate(sorted(pairs))]
    return {"nodes": nodes, "edges": edges, "n_members": len(members), "n_shown": len(shown)}


def campaign_detail(con, campaign_id: str, prices: dict, member_limit: int = 200) -> dict | None:
    if not table_exists(con, "campaigns"):
        return None
    row = first(con.execute("SELECT evidence_json, risk, action, n_accounts, n_events, first_seen, last_seen FROM campaigns "
                      "WHERE campaign_id = ?", [campaign_id]))
    if row is None:
        return None
    ev = json.loads(row[0])
    members = _members(con, ev)
    member_rows = []
    if table_exists(con, "account_results") and members:
        _register_members(con, members)
        try:
            member_rows = [dict(zip(("account_id", "risk", "action", "n_events", "org_id", "reasons"), r)) for r in con.execute(
                "SELECT account_id, risk, action, n_events, org_id, reasons FROM account_results JOIN _members USING (account_id) "
                f"ORDER BY risk DESC, n_events DESC, account_id LIMIT {int(member_limit)}").fetchall()]
        finally:
            con.unregister("_members")
    status = latest_campaign_status(con).get(campaign_id, "open")
    return {
        "ev": ev, "campaign_id": campaign_id, "risk": row[1], "action": row[2], "n_accounts": row[3], "n_events": row[4],
        "first_seen": row[5], "last_seen": row[6], "members": member_rows, "status": status,
        "value": harvest_value(con, members, prices), "capabilities": capability_breakdown(con, members),
        "signals": [{"name": k, "accounts": v.get("accounts"), "examples": (v.get("examples") or [])[:5]}
                    for k, v in (ev.get("signals") or {}).items()],
    }


def account_detail(con, account_id: str, event_limit: int = 50) -> dict | None:
    res = None
    if table_exists(con, "account_results"):
        r = first(con.execute("SELECT account_id, risk, action, campaign_id, reasons, rule_id, n_events, org_id, reasons_json "
                        "FROM account_results WHERE account_id = ?", [account_id]))
        if r:
            res = dict(zip(("account_id", "risk", "action", "campaign_id", "reasons", "rule_id", "n_events", "org_id", "reasons_json"), r))
            res["reasons_detail"] = json.loads(res.pop("reasons_json") or "[]")
    n = first(con.execute("SELECT count(*) FROM events WHERE account_id = ?", [account_id]))[0] if table_exists(con, "events") else 0
    if res is None and n == 0:
        return None
    meta = None
    if table_exists(con, "accounts"):
        m = first(con.execute("SELECT account_id, created_at, email_domain, payment_fingerprint, country, org_id, verified, signup_path "
                        "FROM accounts WHERE account_id = ?", [account_id]))
        if m:
            meta = dict(zip(("account_id", "created_at", "email_domain", "payment_fingerprint", "country", "org_id", "verified", "signup_path"), m))
    hourly = con.execute("SELECT epoch(date_trunc('hour', ts))::BIGINT, count(*), sum(coalesce(output_tokens, 0)) FROM events "
                         "WHERE account_id = ? GROUP BY 1 ORDER BY 1", [account_id]).fetchall()
    events = [dict(zip(("ts", "model", "client_ip", "user_agent", "prompt", "input_tokens", "output_tokens", "temperature", "n", "logprobs", "max_output_tokens", "status"), r))
              for r in con.execute(
                  "SELECT ts, model, client_ip, user_agent, prompt, input_tokens, output_tokens, temperature, n, logprobs, max_output_tokens, status "
                  f"FROM events WHERE account_id = ? ORDER BY ts DESC LIMIT {int(event_limit)}", [account_id]).fetchall()]
    linked = []
    if meta and table_exists(con, "accounts"):
        linked = [dict(zip(("account_id", "via"), r)) for r in con.execute(
            "SELECT a.account_id, string_agg(DISTINCT v.kind, ', ') FROM accounts a JOIN ("
            "SELECT 'payment_fingerprint' AS kind, ? AS val UNION ALL SELECT 'email_domain', ?) v "
            "ON (v.kind = 'payment_fingerprint' AND a.payment_fingerprint = v.val) "
            "WHERE a.account_id <> ? AND v.val IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 50",
            [meta["payment_fingerprint"], meta["email_domain"], account_id]).fetchall()]
    ips = [r[0] for r in con.execute("SELECT DISTINCT client_ip FROM events WHERE account_id = ? AND client_ip IS NOT NULL LIMIT 20",
                                     [account_id]).fetchall()]
    if ips:
        linked_ip = con.execute(
            "SELECT account_id, 'client_ip' FROM events WHERE client_ip IN (SELECT unnest(?)) AND account_id <> ? "
            "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 50", [ips, account_id]).fetchall()
        seen = {l["account_id"]: l for l in linked}
        for a, v in linked_ip:
            if a in seen:
                seen[a]["via"] += ", " + v
            else:
                linked.append({"account_id": a, "via": v})
    axis = _axis([h for h, _, _ in hourly])
    count, tokens = [0] * len(axis), [0] * len(axis)
    for h, c, t in hourly:
        count[_bucket(h, axis)] += c
        tokens[_bucket(h, axis)] += int(t)
    if res and res.get("campaign_id") and table_exists(con, "account_results"):
        seen = {l["account_id"]: l for l in linked}
        for (a,) in con.execute("SELECT account_id FROM account_results WHERE campaign_id = ? AND account_id <> ? "
                                "ORDER BY risk DESC, account_id LIMIT 50", [res["campaign_id"], account_id]).fetchall():
            if a in seen:
                seen[a]["via"] += ", same campaign"
            else:
                linked.append({"account_id": a, "via": "same campaign"})
    return {"result": res, "meta": meta, "n_events": n, "events": events,
            "hourly": {"x": axis, "count": count, "tokens": tokens},
            "linked": linked[:80], "ips": ips}
