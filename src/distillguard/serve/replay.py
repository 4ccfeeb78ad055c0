"""Replay a recorded log through the decision service, in time order, and measure time-to-detection.

Each event is first *decided* (as a gateway would before serving it), then
*logged* (as the gateway's logger would after). An exchange counts as
harvested before detection when it was served before the first throttle,
challenge or block on any account of its campaign. Decisions are treated as
enforced whatever the policy's mode (the replay asks "what if we enforced").
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["replay", "LocalTarget", "HttpTarget", "summarise"]

STOPPED = ("challenge", "throttle", "block")


class LocalTarget:
    """The engine in this process (``--db``): no HTTP, same decisions."""

    def __init__(self, engine):
        self.engine = engine

    def decide(self, ev: dict, account: dict | None) -> dict:
        return self.engine.decide(ev, account)

    def log(self, events: list[dict]) -> None:
        self.engine.accept([dict(e) for e in events], [])

    def close(self):
        self.engine.stop()


class HttpTarget:
    """A running service (``--url``), called with a ``gateway`` token (``token`` or ``$DISTILLGUARD_TOKEN``)."""

    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None):
        import os

        import httpx

        token = token or os.environ.get("DISTILLGUARD_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.c = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)

    @staticmethod
    def _json(ev: dict) -> dict:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in ev.items() if v is not None}

    def decide(self, ev: dict, account: dict | None) -> dict:
        body = self._json(ev)
        if account:
            body["account"] = self._json({k: v for k, v in account.items() if k != "extra"})
        r = self.c.post("/v1/decide", json=body)
        r.raise_for_status()
        return r.json()

    def log(self, events: list[dict]) -> None:
        r = self.c.post("/v1/events", json={"events": [self._json(e) for e in events]})
        r.raise_for_status()

    def close(self):
        self.c.close()


@dataclass
class _Camp:
    exchanges: int = 0
    accounts: set = field(default_factory=set)
    first_ts: datetime | None = None
    detected_ts: datetime | None = None
    before: int = 0
    served: int = 0
    stopped_accounts: set = field(default_factory=set)
    first_request_stopped: set = field(default_factory=set)
    linked: set = field(default_factory=set)


def replay(events: list[dict], target, speed: float = 0.0, accounts: dict | None = None,
           labels: dict | None = None, batch: int = 200, progress=None) -> dict:
    """Feed ``events`` (canonical dicts) in time order; returns the per-campaign report.

    ``labels`` maps account -> campaign id (ground truth; None for benign);
    without it, campaigns are the ones the service names in its decisions.
    ``speed`` compresses time (2 = twice as fast as recorded); 0 = as fast as possible.
    """
    events = sorted(events, key=lambda e: e["ts"])
    accounts = accounts or {}
    camps: dict[str, _Camp] = {}
    seen: set = set()
    stopped: set = set()
    benign_stopped: dict[str, dict] = {}
    benign_accounts: set = set()
    pending: list[dict] = []
    actions: dict[str, int] = {}
    t_wall0 = time.monotonic()
    t_log0 = events[0]["ts"] if events else None
    for i, ev in enumerate(events):
        if speed > 0:
            due = (ev["ts"] - t_log0).total_seconds() / speed
            lag = due - (time.monotonic() - t_wall0)
            if lag > 0:
                if pending:
                    target.log(pending)
                    pending = []
                time.sleep(lag)
        acc = ev["account_id"]
        first = acc not in seen
        seen.add(acc)
        d = target.decide({k: v for k, v in ev.items() if k not in ("response", "output_tokens", "reasoning_tokens", "status")},
                          accounts.get(acc) if first else None)
        action = d["action"]
        actions[action] = actions.get(action, 0) + 1
        cid = labels.get(acc) if labels is not None else None
        if labels is None:
            cid = d.get("campaign_id")
        if cid is None and labels is not None:
            benign_accounts.add(acc)
            if action in STOPPED and acc not in benign_stopped:  # why, for whoever reviews false positives
                benign_stopped[acc] = {"account_id": acc, "action": action, "rule_id": d.get("rule_id"),
                                       "reasons": [r.get("code") for r in d.get("reasons") or []]}
        if cid is not None:
            c = camps.setdefault(cid, _Camp())
            c.exchanges += 1
            c.accounts.add(acc)
            c.first_ts = c.first_ts or ev["ts"]
            if d.get("campaign_id"):
                c.linked.add(acc)
            if action in STOPPED:
                c.stopped_accounts.add(acc)
                if first:
                    c.first_request_stopped.add(acc)
                if c.detected_ts is None:
                    c.detected_ts = ev["ts"]
            else:
                c.served += 1
                if c.detected_ts is None:
                    c.before += 1
        if action in STOPPED:
            stopped.add(acc)
        pending.append(ev)
        if len(pending) >= batch:
            target.log(pending)
            pending = []
        if progress and i % 1000 == 0:
            progress(i, len(events))
    if pending:
        target.log(pending)
    return summarise(camps, actions, len(events), time.monotonic() - t_wall0, benign_accounts, benign_stopped)


def summarise(camps, actions, n, wall, benign_accounts, benign_stopped) -> dict:
    rows = []
    for cid, c in sorted(camps.items()):
        budget = max(0.01 * c.exchanges, 2000)
        rows.append({
            "campaign_id": cid,
            "accounts": len(c.accounts),
            "exchanges": c.exchanges,
            "harvested_before_detection": c.before,
            "harvested_share": round(c.before / c.exchanges, 4) if c.exchanges else 0.0,
            "within_target": c.detected_ts is not None and c.before <= budget,
            "time_to_detection_s": (c.detected_ts - c.first_ts).total_seconds() if c.detected_ts else None,
            "accounts_stopped": len(c.stopped_accounts),
            "accounts_stopped_at_first_request": len(c.first_request_stopped),
            "served_with_enforcement": c.served,
            "stopped_at_first_request": sorted(c.first_request_stopped)[:1000],
        })
    return {
        "events": n,
        "wall_seconds": round(wall, 3),
        "events_per_second": round(n / wall, 1) if wall > 0 else None,
        "actions": actions,
        "campaigns": rows,
        "benign_accounts": len(benign_accounts),
        "benign_accounts_stopped": len(benign_stopped),
        "benign_stopped": [benign_stopped[a] for a in sorted(benign_stopped)][:1000],
    }
