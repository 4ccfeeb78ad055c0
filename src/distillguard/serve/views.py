"""Read-only views of the service: an account (its current decision, scan verdict, live features, links,
label) and campaigns of the loaded map. A view never makes a decision (no id, no challenge, nothing counted)."""
from __future__ import annotations

__all__ = ["account_view", "campaign_summary", "campaign_view"]


def account_view(engine, account_id: str) -> dict | None:
    """The account as ``engine`` (a :class:`~distillguard.serve.engine.Engine`) sees it; None if unheard of."""
    known = engine.map.accounts.get(account_id)
    st = engine.state.account(account_id)
    if known is None and st is None and not engine.state.get_meta(account_id) and not engine.state.get_links(account_id):
        return None
    d = engine.decide({"account_id": account_id}, record=False)
    _, _, feats = engine.online.score(account_id)
    return {
        "account_id": account_id,
        "decision": d,
        "scan": None if known is None else {"run_id": engine.map.run_id, "risk": known.risk, "action": known.action,
                                             "campaign_id": known.campaign_id, "rule_id": known.rule_id,
                                             "n_events": known.n_events},
        "n_events_live": st.n if st else 0,
        "features": feats,
        "links": engine.state.get_links(account_id),
        "label": engine.state.get_flag(account_id),
    }


def campaign_summary(campaign_map, cid: str) -> dict:
    c = campaign_map.campaigns.get(cid, {"campaign_id": cid})
    return {k: c.get(k) for k in ("campaign_id", "risk", "action", "n_accounts", "n_events", "first_seen", "last_seen",
                                  "reasons")} | {"n_indicators": len(campaign_map.indicators.get(cid, []))}


def campaign_view(campaign_map, cid: str) -> dict | None:
    if cid not in campaign_map.campaigns and cid not in campaign_map.indicators:
        return None
    c = campaign_map.campaigns.get(cid, {})
    return campaign_summary(campaign_map, cid) | {
        "accounts": sorted(a for a, k in campaign_map.accounts.items() if k.campaign_id == cid),
        "indicators": campaign_map.indicators.get(cid, []),
        "evidence": c.get("evidence") or {},
    }
