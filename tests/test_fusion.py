"""Fusion: fitted weights, the non-negativity constraint, reasons, and the operating point."""
import numpy as np
import pytest

from distillguard.errors import UsageError
from distillguard.score.evidence import EvidenceMatrix
from distillguard.score.fusion import FusionModel, shift_to_operating_point, strong_codes


def _evidence(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    strong = np.where(y, rng.uniform(0.5, 1, n), rng.uniform(0, 0.4, n))
    noise = rng.random(n)
    anti = np.where(y, rng.uniform(0, 0.3, n), rng.uniform(0.2, 1, n))  # evidence that *looks* protective
    org = np.where(y, 0.0, rng.uniform(0, 1, n))
    ev = EvidenceMatrix([f"a{i}" for i in range(n)], ["cot", "noise", "anti", "campaign_declared_org"],
                        ["COT_ELICITATION", "JAILBREAK", "LOCKSTEP", None], np.column_stack([strong, noise, anti, org]))
    return ev, y


def test_fit_orders_accounts_and_never_gives_attack_evidence_a_negative_weight():
    ev, y = _evidence()
    m = FusionModel.fit(ev, y)
    assert m.coefficients["cot"] > 1
    assert m.coefficients["anti"] == 0.0  # would be negative: dropped instead
    assert m.coefficients["campaign_declared_org"] < 0  # clearing evidence may lower risk
    risk = m.risk(ev)
    assert risk[y].mean() > 0.8 and risk[~y].mean() < 0.2


def test_reasons_name_the_evidence_that_carried_the_verdict():
    ev, y = _evidence()
    m = FusionModel.fit(ev, y)
    reasons = m.reasons(ev)
    top = int(np.argmax(ev.column("cot")))
    assert reasons[top][0].code == "COT_ELICITATION" and reasons[top][0].terms == ("cot",)
    # a reason's weight is what its terms added to the risk, and only weights of 0.5 or more are listed
    terms = m.terms(ev)
    listed = [(i, r) for i, rs in enumerate(reasons) for r in rs]
    assert listed and all(r.weight >= 0.5 for _, r in listed)
    assert all(r.weight == pytest.approx(sum(terms[i][ev.names.index(t)] for t in r.terms), abs=1e-3) for i, r in listed)
    weak = int(np.argmin(ev.column("cot")))
    assert "COT_ELICITATION" not in {r.code for r in reasons[weak]}


def test_operating_point_holds_the_target_benign_fpr():
    ev, y = _evidence(n=5000, seed=1)
    m = FusionModel.fit(ev, y)
    fpr = shift_to_operating_point(m, ev, ~y, target_fpr=0.01)
    assert fpr <= 0.01
    assert np.mean(m.risk(ev)[~y] >= 0.5) == pytest.approx(fpr)


def test_yaml_round_trip_and_bad_file(tmp_path):
    ev, y = _evidence()
    m = FusionModel.fit(ev, y, provenance={"data": "synthetic"})
    again = FusionModel.from_yaml(m.to_yaml())
    assert np.allclose(again.risk(ev), m.risk(ev), atol=1e-4)
    bad = tmp_path / "m.yaml"
    bad.write_text("nope: [")
    with pytest.raises(UsageError):
        FusionModel.load(bad)


def test_packaged_model_loads():
    m = FusionModel.load()
    assert m.coefficients and all(v >= 0 for k, v in m.coefficients.items() if k != "campaign_declared_org")


def test_evasion_copies_weaken_only_each_attack_accounts_loudest_detector():
    from distillguard.score.fusion import evaded

    names = ["cot", "jailbreak", "campaign_cot", "campaign_jailbreak", "link_template", "campaign_link_x_signal"]
    values = np.array([
        [0.9, 0.2, 0.8, 0.1, 0.5, 0.4],   # attack, COT loudest
        [0.1, 0.7, 0.0, 0.6, 0.0, 0.0],   # attack, jailbreak loudest
        [0.9, 0.9, 0.9, 0.9, 0.9, 0.9],   # benign: never copied
    ])
    ev = EvidenceMatrix(["a", "b", "c"], names, ["COT_ELICITATION", "JAILBREAK"] * 2 + ["TEMPLATE_REUSE", None], values)
    out = evaded(ev, np.array([True, True, False]), np.random.default_rng(0))
    assert out.shape == (2, len(names))
    a, b = out
    assert a[0] < 0.9 and a[2] < 0.8 and np.isclose(a[0] / 0.9, a[2] / 0.8)  # one factor on own and pooled
    assert a[1] == 0.2 and a[3] == 0.1 and a[4] == 0.5  # other detectors and links untouched
    assert np.isclose(a[5], 0.4 * max(a[2], a[3]) / 0.8)  # the interaction follows the pooled maximum
    assert b[1] < 0.7 and b[0] == 0.1
    assert np.array_equal(ev.values, values)  # the input is not modified


def test_silenced_copy_zeroes_the_detector_that_separates_the_world_best_for_every_account():
    from distillguard.score.calibration import silenced

    names = ["out", "cot", "campaign_out", "campaign_cot", "link_template", "campaign_link_x_signal"]
    values = np.array([
        [0.9, 0.3, 0.8, 0.3, 0.5, 0.4],   # attack: output is what gives it away here
        [1.0, 0.0, 0.9, 0.1, 0.5, 0.45],  # attack
        [0.2, 0.2, 0.0, 0.0, 0.0, 0.0],   # benign
        [0.0, 0.4, 0.2, 0.0, 0.9, 0.0],   # benign
    ])
    ev = EvidenceMatrix(list("abcd"), names, ["HIGH_OUTPUT_RATIO", "COT_ELICITATION"] * 2 + ["TEMPLATE_REUSE", None], values)
    out, name = silenced(ev, np.array([True, True, False, False]))
    assert name == "out" and out.shape == values.shape
    assert not out[:, [0, 2]].any(), "own and pooled columns of the silenced detector, benign rows too"
    assert np.array_equal(out[:, [1, 3, 4]], values[:, [1, 3, 4]]), "other detectors and links untouched"
    assert np.isclose(out[0, 5], 0.4 * 0.3 / 0.8) and np.isclose(out[1, 5], 0.45 * 0.1 / 0.9)
    assert np.array_equal(ev.values, values)  # the input is not modified
    empty, none = silenced(ev, np.zeros(4, dtype=bool))
    assert none is None and len(empty) == 0, "a world without attack accounts has nothing to silence"


def test_campaign_strong_share_is_the_candidates_share_of_strong_firm_members_scaled_by_attachment():
    import pyarrow as pa

    from distillguard.link import Communities
    from distillguard.score.evidence import build_evidence

    ids = ["r1", "r2", "r3", "r4", "loner"]
    comms = Communities(membership={a: 7 for a in ids[:4]}, coverage={7: {"template": 1.0}},
                        strength={"r1": 2.0, "r2": 2.0, "r3": 2.0, "r4": 1.0},
                        kinds={a: {"template", "payment_fingerprint"} for a in ids[:4]})
    table = pa.table({"account_id": ids, "cot": [0.9, 0.8, 0.7, 0.1, 0.9]})
    args = (ids, [("cot", "COT_ELICITATION", table)], comms, {}, np.full(5, 50.0))
    share = build_evidence(*args, pool={7: {"firm_members": 4, "strong_members": 3}}).column("campaign_strong_share")
    assert np.allclose(share, [0.75, 0.75, 0.75, 0.375, 0.0]), "r4 is half as attached; the loner is in no candidate"
    assert not build_evidence(*args, pool=set()).column("campaign_strong_share").any(), "no candidate, no share"


def test_a_reason_is_strong_only_for_the_accounts_own_strong_signal():
    ev = EvidenceMatrix(["a", "b"], ["rubric_grading", "campaign_rubric_grading"], ["RUBRIC_GRADING", "RUBRIC_GRADING"],
                        np.array([[0.8, 0.6], [0.1, 0.6]]))
    model = FusionModel(-3.0, {"rubric_grading": 1.0, "campaign_rubric_grading": 2.0})
    a, b = model.reasons(ev, strong={"rubric_grading": np.array([True, False])})
    assert [(r.code, r.strong) for r in a] == [("RUBRIC_GRADING", True)]
    assert [(r.code, r.strong) for r in b] == [("RUBRIC_GRADING", False)]  # listed for its campaign's pooled evidence
    assert strong_codes(a) == {"RUBRIC_GRADING"} and strong_codes(b) == set()
    assert strong_codes([{"code": "X", "strong": True}, {"code": "Y"}]) == {"X"}
