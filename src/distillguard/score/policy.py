"""The YAML policy: risk and reasons in, action out (pySigma-style rules as data).

The batch scan and the decision service call the same :meth:`Policy.decide`.
Each decision records the id of the rule that fired.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from distillguard.errors import UsageError

__all__ = ["ACTIONS", "Policy", "PolicyRule", "Decision"]

ACTIONS = ("allow", "monitor", "challenge", "throttle", "block")
_CONDITIONS = {"risk_at_least", "risk_below", "any_reason", "in_campaign", "allowlisted"}


@dataclass(frozen=True)
class PolicyRule:
    id: str
    action: str
    priority: int = 50
    when: dict = field(default_factory=dict)

    def matches(self, risk: float, reasons: set[str], in_campaign: bool, allowlisted: bool) -> bool:
        w = self.when
        if "allowlisted" in w and bool(w["allowlisted"]) != allowlisted:
            return False
        if "in_campaign" in w and bool(w["in_campaign"]) != in_campaign:
            return False
        if "risk_at_least" in w and risk < float(w["risk_at_least"]):
            return False
        if "risk_below" in w and risk >= float(w["risk_below"]):
            return False
        if "any_reason" in w and not reasons.intersection(w["any_reason"]):
            return False
        return True


@dataclass(frozen=True)
class Decision:
    action: str
    rule_id: str
    ttl_seconds: int


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    mode: str = "shadow"
    fail: str = "open"
    ttl_seconds: dict = field(default_factory=dict)
    throttle: dict = field(default_factory=dict)
    challenge: dict = field(default_factory=dict)
    campaigns: dict = field(default_factory=dict)
    allow_accounts: frozenset = frozenset()
    allow_orgs: frozenset = frozenset()
    store: dict = field(default_factory=dict)  # what the store keeps: distillguard.privacy.StorePrivacy
    sha256: str = ""

    @classmethod
    def from_dict(cls, data: dict, sha256: str = "") -> "Policy":
        try:
            rules = tuple(
                sorted(
                    (PolicyRule(id=str(r["id"]), action=r["action"], priority=int(r.get("priority", 50)), when=dict(r.get("when") or {}))
                     for r in data["rules"]),
                    key=lambda r: r.priority,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"policy: each rule needs id, action and optional priority/when ({exc})") from exc
        for r in rules:
            if r.action not in ACTIONS:
                raise UsageError(f"policy rule {r.id}: unknown action {r.action!r} (one of {', '.join(ACTIONS)})")
            unknown = set(r.when) - _CONDITIONS
            if unknown:
                raise UsageError(f"policy rule {r.id}: unknown condition {sorted(unknown)[0]!r}")
        unknown = set(data.get("campaigns") or {}) - {"min_flagged_share", "min_attachment"}
        if unknown:
            raise UsageError(f"policy campaigns: unknown setting {sorted(unknown)[0]!r}")
        if data.get("mode", "shadow") not in ("shadow", "enforce"):
            raise UsageError("policy: mode must be shadow or enforce")
        if data.get("fail", "open") not in ("open", "closed"):
            raise UsageError("policy: fail must be open or closed")
        allow = data.get("allowlist") or {}
        return cls(
            rules=rules,
            mode=data.get("mode", "shadow"),
            fail=data.get("fail", "open"),
            ttl_seconds={a: int(v) for a, v in (data.get("ttl_seconds") or {}).items()},
            throttle=dict(data.get("throttle") or {}),
            challenge=dict(data.get("challenge") or {}),
            campaigns={k: float(v) for k, v in (data.get("campaigns") or {}).items()},
            allow_accounts=frozenset(map(str, allow.get("accounts") or [])),
            allow_orgs=frozenset(map(str, allow.get("orgs") or [])),
            store=dict(data.get("store") or {}),
            sha256=sha256,
        )

    @classmethod
    def from_yaml(cls, text: str) -> "Policy":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"policy is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(data, dict) or "rules" not in data:
            raise UsageError("policy must be a mapping with a 'rules' list")
        return cls.from_dict(data, hashlib.sha256(text.encode()).hexdigest())

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Policy":
        """A policy file, or the packaged default when ``path`` is None."""
        if path is None:
            return cls.from_yaml(resources.files("distillguard.score").joinpath("policy.yaml").read_text())
        try:
            return cls.from_yaml(Path(path).read_text())
        except OSError as exc:
            raise UsageError(f"cannot read policy {path}: {exc.strerror}") from exc

    def with_allowlist(self, accounts=(), orgs=()) -> "Policy":
        """A copy with more allowlisted accounts or orgs (analyst decisions)."""
        from dataclasses import replace

        return replace(self, allow_accounts=self.allow_accounts | set(accounts), allow_orgs=self.allow_orgs | set(orgs))

    def decide(self, risk: float, reasons=(), *, in_campaign: bool = False, account_id: str | None = None, org_id: str | None = None) -> Decision:
        allowlisted = (account_id in self.allow_accounts) or (org_id is not None and org_id in self.allow_orgs)
        codes = set(reasons)
        for rule in self.rules:
            if rule.matches(risk, codes, in_campaign, allowlisted):
                return Decision(rule.action, rule.id, int(self.ttl_seconds.get(rule.action, 300)))
        return Decision("allow", "implicit-default", int(self.ttl_seconds.get("allow", 300)))
