import pytest

from distillguard.errors import UsageError
from distillguard.score.policy import Policy

POLICY = """
mode: enforce
ttl_seconds: {challenge: 60, allow: 5}
allowlist: {accounts: [partner-1], orgs: [licensed-org]}
rules:
  - {id: allow-listed, priority: 0, when: {allowlisted: true}, action: allow}
  - {id: indicator, priority: 5, when: {any_reason: [KNOWN_INDICATOR]}, action: block}
  - {id: campaign, priority: 10, when: {risk_at_least: 0.8, in_campaign: true}, action: throttle}
  - {id: elevated, priority: 20, when: {risk_at_least: 0.5}, action: challenge}
  - {id: default, priority: 99, when: {}, action: allow}
"""


def test_rules_fire_by_priority_and_record_their_id():
    p = Policy.from_yaml(POLICY)
    assert p.decide(0.9, in_campaign=True).rule_id == "campaign"
    assert p.decide(0.9, in_campaign=True).action == "throttle"
    assert p.decide(0.9, in_campaign=False).action == "challenge"
    assert p.decide(0.1, ["KNOWN_INDICATOR"]).action == "block"
    d = p.decide(0.6)
    assert (d.action, d.rule_id, d.ttl_seconds) == ("challenge", "elevated", 60)
    assert p.decide(0.1).action == "allow"


def test_allowlists_win_over_risk():
    p = Policy.from_yaml(POLICY)
    assert p.decide(0.99, ["KNOWN_INDICATOR"], account_id="partner-1").action == "allow"
    assert p.decide(0.99, org_id="licensed-org").action == "allow"
    assert p.with_allowlist(accounts=["x"]).decide(0.99, account_id="x").action == "allow"
    assert p.decide(0.99, account_id="x").action == "challenge"


@pytest.mark.parametrize(
    "text, message",
    [
        ("rules: [{id: a, action: nuke}]", "unknown action"),
        ("rules: [{id: a, action: allow, when: {colour: red}}]", "unknown condition"),
        ("rules: [{action: allow}]", "needs id"),
        ("just a string", "mapping"),
        ("rules: [\n  - {id: a", "not valid YAML"),
        ("mode: loud\nrules: []", "mode"),
    ],
)
def test_bad_policies_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        Policy.from_yaml(text)


def test_packaged_default_policy_maps_the_risk_ladder():
    p = Policy.load()
    actions = [p.decide(r, ["RING_EVIDENCE"], in_campaign=True).action for r in (0.0, 0.3, 0.6, 0.95, 0.99)]
    assert actions == ["allow", "monitor", "challenge", "throttle", "block"]
    assert p.mode == "shadow" and p.fail == "open" and len(p.sha256) == 64


def test_a_campaigns_pooled_content_corroborates_only_the_members_it_corroborates():
    """An app user merged into a ring's campaign shows the campaign's COT_ELICITATION (pooled evidence) beside its
    own behaviour; that pooled reason is the campaign's, so it corroborates no more than the campaign does."""
    from distillguard.score.fusion import Reason, pooled_codes

    reasons = [Reason("COT_ELICITATION", 2.0, ("campaign_cot_elicitation",)), Reason("LOGPROBS_HARVEST", 1.5, ("logprobs_harvest",), True),
               Reason("SIGNUP_BURST", 1.0, ("link_signup_burst",))]
    pooled = pooled_codes(reasons)
    assert pooled == {"COT_ELICITATION"}
    assert pooled_codes([{"code": r.code, "terms": list(r.terms), "strong": r.strong} for r in reasons]) == pooled  # as stored
    assert pooled_codes([Reason("COT_ELICITATION", 2.0, ("campaign_cot_elicitation", "cot_elicitation"), True)]) == set()
    p = Policy.load()
    codes = [r.code for r in reasons]
    merged = p.decide(0.7, codes, in_campaign=True, pooled=pooled)
    assert (merged.action, merged.rule_id) == ("monitor", "corroboration-required")
    assert p.decide(0.7, codes, in_campaign=True).action == "challenge"  # read as its own content, it was corroborated
    assert p.decide(0.7, codes + ["RING_EVIDENCE"], in_campaign=True, pooled=pooled).action == "challenge"  # a ring member
