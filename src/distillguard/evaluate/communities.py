"""Benign accounts flagged through a predicted campaign, and what linked them.

A benign community that reaches ``challenge`` is the costliest false positive
(a whole enterprise org or classroom at once); the analyst needs to see which
shared kinds (cloud range, card, template...) formed it. Read from the scan's
``campaigns.json`` (``link_coverage`` and ``shared``).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from distillguard.errors import UsageError
from distillguard.evaluate.metrics import FLAG_ACTIONS

__all__ = ["benign_communities", "describe"]


def benign_communities(labels, action_of: dict[str, str], scan_dir: str | Path) -> list[dict[str, Any]]:
    """Every predicted campaign with at least one flagged benign member, largest first.

    Each entry: ``campaign_id``, ``risk``, ``accounts``, ``benign``,
    ``flagged_benign``, ``archetypes`` (benign members per archetype),
    ``formed_by`` (link kinds with their coverage of the members) and
    ``shared`` (the most shared values' kinds and account counts). Without a
    ``campaigns.json`` in ``scan_dir`` the list is empty.
    """
    path = Path(scan_dir) / "campaigns.json"
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    benign = {str(a): str(k) for a, k, y in zip(labels.account_id, labels.archetype, labels.is_attack) if not y}
    out = []
    for c in doc.get("campaigns", []):
        members = [str(a) for a in c.get("accounts", [])]
        ben = [a for a in members if a in benign]
        flagged = [a for a in ben if action_of.get(a) in FLAG_ACTIONS]
        if not flagged:
            continue
        shared = Counter()
        for h in c.get("shared", []):
            shared[h["kind"]] = max(shared[h["kind"]], int(h.get("accounts", 0)))
        out.append({
            "campaign_id": c.get("campaign_id"),
            "risk": c.get("risk"),
            "accounts": len(members),
            "benign": len(ben),
            "flagged_benign": len(flagged),
            "archetypes": dict(Counter(benign[a] for a in ben).most_common()),
            "formed_by": {k: v for k, v in sorted((c.get("link_coverage") or {}).items(), key=lambda kv: -kv[1]) if v},
            "shared": dict(shared.most_common()),
        })
    out.sort(key=lambda e: (-e["flagged_benign"], str(e["campaign_id"])))
    return out


def describe(entry: dict[str, Any]) -> str:
    """One line per community for the terminal."""
    arch = ", ".join(f"{n} {a}" for a, n in entry["archetypes"].items())
    formed = ", ".join(f"{k} {v:.0%}" for k, v in entry["formed_by"].items()) or "—"
    return (f"{entry['campaign_id']}: {entry['flagged_benign']}/{entry['benign']} benign flagged of {entry['accounts']} "
            f"(risk {entry['risk']}; {arch}); formed by {formed}")

