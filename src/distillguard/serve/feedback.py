"""Feedback on decisions: analyst labels and challenge results, durable (journalled into ``decision_labels``
and the audit log) and read back from the store at start, in the order they were given."""
from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["Feedback"]


class Feedback:
    """Labels and challenge outcomes of ``state``'s accounts; ``online`` forgets a labelled account's cached score."""

    def __init__(self, state, journal, online, immunity_seconds: int):
        self.state, self.journal, self.online, self.immunity_seconds = state, journal, online, immunity_seconds

    def load(self, con) -> None:
        """Labels, challenge outcomes and immunities from the store ``con`` (None: no store yet)."""
        if con is None or not con.execute("SELECT count(*) FROM information_schema.tables "
                                          "WHERE table_name = 'decision_labels'").fetchall()[0][0]:
            return
        cols = {r[0] for r in con.execute("DESCRIBE decision_labels").fetchall()}
        until = "epoch(immune_until)" if "immune_until" in cols else "NULL"
        rows = con.execute(f"SELECT account_id, label, {until} FROM decision_labels ORDER BY labelled_at").fetchall()
        now = time.time()
        for acc, label, immune in rows:
            if label in ("legitimate", "fraudulent"):
                self.state.set_flag(acc, label)
            elif label == "challenge_failed":
                self.state.set_flag(acc, "fraudulent")
            elif label == "challenge_passed" and immune and immune > now:
                self.state.grant_immunity(acc, int(immune - now) + 1)

    def label(self, decision_id: str, label: str, note: str | None = None, by: str = "unknown") -> dict | None:
        """Analyst feedback on a decision (durable: journalled into ``decision_labels`` and the audit log)."""
        acc = self.state.get_decision(decision_id)
        if acc is None:
            return None
        self.state.set_flag(acc, label)
        rec = {"decision_id": decision_id, "account_id": acc, "label": label, "note": note, "at": time.time(), "by": by}
        self.journal.append([], [], [rec], audits=[{
            "analyst": by, "action": "label", "target_kind": "account", "target_id": acc, "reason": note or "",
            "details": {"decision_id": decision_id, "label": label}, "at": rec["at"]}])
        self.online.forget(acc)
        return rec

    def challenge_result(self, challenge_id: str, passed: bool, by: str = "unknown") -> dict | None:
        """A live challenge's result, once: None for an unknown or expired id; ``{"used": True}`` for a repeat."""
        acc, used = self.state.take_challenge(challenge_id)
        if acc is None:
            return None
        if used:
            return {"used": True, "account_id": acc}
        until = None
        if passed:
            until = self.state.grant_immunity(acc, self.immunity_seconds)
        else:
            self.state.set_flag(acc, "fraudulent")
        label = "challenge_passed" if passed else "challenge_failed"
        now = time.time()
        rec = {"decision_id": challenge_id, "account_id": acc, "label": label, "note": None, "at": now, "by": by,
               "immune_until": until}
        self.journal.append([], [], [rec], audits=[{
            "analyst": by, "action": label, "target_kind": "account", "target_id": acc, "reason": "",
            "details": {"challenge_id": challenge_id, "immune_until": until}, "at": now}])
        self.online.forget(acc)
        return {"account_id": acc, "passed": passed,
                "immune_until": datetime.fromtimestamp(until, tz=timezone.utc).isoformat() if until else None}
