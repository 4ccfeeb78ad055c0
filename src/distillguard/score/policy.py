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

__all__ = ["ACTIONS", "Corroboration", "Policy", "PolicyRule", "Decision", "store_privacy"]

ACTIONS = ("allow", "monitor", "challenge", "throttle", "block")
_CONDITIONS = {"risk_at_least", "risk_below", "any_reason", "in_campaign", "strong_signal", "elevated_signal", "allowlisted"}
_FAMILY_CONDITIONS = ("strong_signal", "elevated_signal")
"""Conditions on the corroboration families of an account's signals: true (any), false, or a list of families."""
CAMPAIGN_SETTINGS = {"min_flagged_share", "min_attachment", "min_strong_share", "min_strong_members", "max_p_value", "core_kinds",
                     "grow_kinds", "hub_join_min_hubs", "hub_join_min_share", "ring_link_min_hubs", "ring_link_min_share", "ring_families", "operator_min_corr", "operator_min_z",
                     "footprint_min_corr", "footprint_min_z", "split_kinds", "split_min_cell", "split_min_z",
                     "split_follow_z",
                     "shared_strong_share", "elevation_quantile", "shared_elevation_quantile", "shared_elevation_share",
                     "shared_elevation_families"}
_LIST_SETTINGS = ("core_kinds", "shared_elevation_families", "ring_families", "split_kinds")
POPULATION_SETTINGS = {"min_accounts", "min_events", "k_mad", "max_baseline", "max_contamination", "strong",
                       "baseline_passes"}


@dataclass(frozen=True)
class PolicyRule:
    id: str
    action: str
    priority: int = 50
    when: dict = field(default_factory=dict)

    def matches(self, risk: float, reasons: set[str], in_campaign: bool, allowlisted: bool, strong: set[str] = frozenset(),
                elevated: set[str] = frozenset()) -> bool:
        """``strong``, ``elevated``: the corroboration families of the account's strong own signals its campaign
        shares, and of its campaign's signals it is elevated on (``"any"`` added when there is one)."""
        w = self.when
        if "allowlisted" in w and bool(w["allowlisted"]) != allowlisted:
            return False
        if "in_campaign" in w and bool(w["in_campaign"]) != in_campaign:
            return False
        for cond, have in (("strong_signal", strong), ("elevated_signal", elevated)):
            if cond in w:
                want = w[cond]  # true (any such signal), false, or a list of families
                if isinstance(want, bool) and want != ("any" in have):
                    return False
                if not isinstance(want, bool) and not have.intersection(want):
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
    capped_from: str | None = None
    """The action the risk rules chose when corroboration or the alert budget held it down."""


@dataclass(frozen=True)
class Corroboration:
    """What an action above ``cap`` needs (policy ``corroboration:``).

    ``families`` groups reason codes into independent kinds of evidence; an
    account's families are those of its reason codes, plus ``campaign`` when
    it belongs to a campaign (campaigns form only on strong member-level
    evidence) and, when ``member_evidence`` is set, carries evidence of that
    campaign itself (:meth:`campaign_counts`). ``any_of`` lists the accepted combinations: each is a list of
    family groups, every group needing at least one of its families. With
    the packaged policy one behaviour family alone (or content alone) stays
    at ``monitor``; content plus behaviour, a campaign, or an analyst or
    intel match may go further.
    """

    families: dict
    any_of: tuple
    cap: str = "monitor"
    own_evidence: tuple = ()
    """Combinations (indices into ``any_of``) that rest on an account's own evidence alone: the alert budget counts these."""
    max_flag_share: float = 0.005
    member_evidence: frozenset | None = None
    """Reason codes that make a member's campaign corroborate it (besides a strong or elevated campaign signal); None: any member."""

    @classmethod
    def from_dict(cls, data: dict) -> "Corroboration":
        try:
            families = {str(k): frozenset(map(str, v)) for k, v in data["families"].items()}
            any_of = tuple(tuple(frozenset([g] if isinstance(g, str) else g) for g in combo) for combo in data["any_of"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"policy corroboration: needs families and any_of ({exc})") from exc
        known = set(families) | {"campaign"}
        for combo in any_of:
            for group in combo:
                if not group <= known:
                    raise UsageError(f"policy corroboration: unknown family {sorted(group - known)[0]!r}")
        cap = data.get("cap", "monitor")
        if cap not in ACTIONS:
            raise UsageError(f"policy corroboration: unknown cap {cap!r}")
        own = tuple(int(i) for i in data.get("own_evidence", ()))
        share = float(data.get("max_flag_share", 0.005))
        if not 0 <= share <= 1:
            raise UsageError("policy corroboration: max_flag_share must be in [0, 1]")
        member = data.get("campaign_member_evidence")
        if member is not None and not (isinstance(member, list) and all(isinstance(m, str) for m in member)):
            raise UsageError("policy corroboration: campaign_member_evidence is a list of reason codes")
        return cls(families, any_of, cap, own, share, None if member is None else frozenset(member))

    def campaign_counts(self, in_campaign: bool, codes: set[str], strong=(), elevated=()) -> bool:
        """Whether the account's campaign corroborates it: it is a member and carries the campaign's evidence itself.

        Its strong own signal is the campaign's (``strong``), it is elevated on
        the campaign's signal (``elevated``), or it has a reason of
        ``member_evidence`` (linked to the ring members, tied by its hubs, a
        shared-elevation member). A member with none of these is in the
        campaign by its community's links alone (a templated app's user merged
        with a ring): the campaign's pooled evidence may raise its risk, but
        it does not corroborate its flag.
        """
        if not in_campaign:
            return False
        return self.member_evidence is None or bool(strong) or bool(elevated) or bool(codes & self.member_evidence)

    def families_of(self, codes: set[str], in_campaign: bool) -> set[str]:
        out = {f for f, members in self.families.items() if codes & members}
        return out | {"campaign"} if in_campaign else out

    def satisfied(self, codes: set[str], in_campaign: bool) -> list[int]:
        """Indices of the ``any_of`` combinations this evidence meets."""
        have = self.families_of(codes, in_campaign)
        return [i for i, combo in enumerate(self.any_of) if all(group & have for group in combo)]

    def own_evidence_only(self, codes: set[str], in_campaign: bool) -> bool:
        """Corroborated, but only by the account's own evidence (what the alert budget bounds)."""
        met = self.satisfied(codes, in_campaign)
        return bool(met) and all(i in self.own_evidence for i in met)


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    mode: str = "shadow"
    fail: str = "open"
    ttl_seconds: dict = field(default_factory=dict)
    throttle: dict = field(default_factory=dict)
    challenge: dict = field(default_factory=dict)
    campaigns: dict = field(default_factory=dict)
    corroboration: Corroboration | None = None
    population: dict = field(default_factory=dict)
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
        corroboration = Corroboration.from_dict(data["corroboration"]) if data.get("corroboration") else None
        for r in rules:
            for cond in _FAMILY_CONDITIONS:
                want = r.when.get(cond)
                if want is not None and not isinstance(want, bool):
                    families = set(corroboration.families) if corroboration else set()
                    if not isinstance(want, list) or not set(want) <= families:
                        raise UsageError(f"policy rule {r.id}: {cond} is true, false or a list of corroboration families")
        unknown = set(data.get("campaigns") or {}) - CAMPAIGN_SETTINGS
        if unknown:
            raise UsageError(f"policy campaigns: unknown setting {sorted(unknown)[0]!r}")
        for setting in ("shared_elevation_families", "ring_families"):
            tested = (data.get("campaigns") or {}).get(setting, [])
            if not isinstance(tested, list) or not set(tested) <= set(corroboration.families if corroboration else ()):
                raise UsageError(f"policy campaigns: {setting} is a list of corroboration families")
        unknown = set(data.get("population") or {}) - POPULATION_SETTINGS
        if unknown:
            raise UsageError(f"policy population: unknown setting {sorted(unknown)[0]!r}")
        if (data.get("population") or {}).get("baseline_passes", 1) not in (1, 2):
            raise UsageError("policy population: baseline_passes is 1 or 2")
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
            campaigns={k: v if k in _LIST_SETTINGS else float(v) for k, v in (data.get("campaigns") or {}).items()},
            corroboration=corroboration,
            population={k: float(v) for k, v in (data.get("population") or {}).items()},
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

    def _decision(self, action: str, rule_id: str, capped_from: str | None = None) -> Decision:
        return Decision(action, rule_id, int(self.ttl_seconds.get(action, 300)), capped_from)

    def _families(self, codes) -> set[str]:
        """The corroboration families of ``codes``, plus ``"any"`` when there is one."""
        codes = set(codes)
        return (self.corroboration.families_of(codes, False) if self.corroboration else set()) | ({"any"} if codes else set())

    def decide(self, risk: float, reasons=(), *, in_campaign: bool = False, account_id: str | None = None,
               org_id: str | None = None, held_back: bool = False, strong=(), elevated=(), pooled=()) -> Decision:
        """The first matching rule's action, held at the corroboration cap when its evidence is not corroborated.

        ``held_back``: the scan's alert budget held this account's own-evidence
        flag back (it then also stays at the cap). ``strong``: the codes of the
        account's strong own signals that its campaign's strong members share
        (:func:`distillguard.score.campaigns.shared_strong_codes`), which a
        rule's ``strong_signal`` condition reads by family. ``elevated``: the
        codes of its campaign's characteristic signals it is elevated on
        (:mod:`distillguard.score.elevation`), which ``elevated_signal`` reads by family.
        ``pooled``: the codes it carries only through its campaign's pooled
        evidence (:func:`distillguard.score.fusion.pooled_codes`): the
        campaign's, so they corroborate only as the campaign does.
        """
        allowlisted = (account_id in self.allow_accounts) or (org_id is not None and org_id in self.allow_orgs)
        codes = set(reasons)
        strong_families, elevated_families = self._families(strong), self._families(elevated)
        for rule in self.rules:
            if rule.matches(risk, codes, in_campaign, allowlisted, strong_families, elevated_families):
                break
        else:
            return self._decision("allow", "implicit-default")
        c = self.corroboration
        if c is not None and ACTIONS.index(rule.action) > ACTIONS.index(c.cap):
            campaign = c.campaign_counts(in_campaign, codes, strong, elevated)
            own = codes - set(pooled)
            if not c.satisfied(own, campaign):
                return self._decision(c.cap, "corroboration-required", rule.action)
            if held_back and c.own_evidence_only(own, campaign):
                return self._decision(c.cap, "alert-budget", rule.action)
        return self._decision(rule.action, rule.id)


def store_privacy(policy=None, prompts: str | None = None, identifier_key: Path | None = None):
    """The :class:`~distillguard.privacy.StorePrivacy` a command runs with: the policy file's ``store:`` section under its flags."""
    from distillguard.privacy.settings import StorePrivacy

    return StorePrivacy.from_policy(Policy.load(policy).store, prompts=prompts, identifier_key=identifier_key)
