"""The cross-world protocol end to end on small worlds: real simulation, real `distillguard scan`, real scoring."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import adjusted_rand_score

from conftest import run_main
from distillguard.errors import UsageError
from distillguard.evaluate import evaluate
from distillguard.evaluate.worlds import judge, parse_worlds, report_worlds, run_world
from distillguard.sim.randomize import protocol


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("worlds")
    return run_world(("shifted", 5000, "holdout"), work, scale=0.06)


def test_a_world_is_simulated_scanned_and_scored(world):
    assert world["world"] == "shifted-5000-x0.06" and world["events"] > 1000
    assert world["attack"] > 0 and world["campaigns"] >= 3
    assert world["operators"] < world["campaigns"]  # the multi-cell operator of every shifted world
    # the figures are the scan's actions counted against the labels, recomputed here from the two files
    labels = pq.read_table(f"{world['data']}/labels.parquet").to_pylist()
    scan = pq.read_table(f"{world['data']}/scan/accounts.parquet").to_pylist()
    flagged = {r["account_id"] for r in scan if r["action"] in ("challenge", "throttle", "block")}
    attack = {r["account_id"] for r in labels if r["is_attack"]}
    benign = {r["account_id"] for r in labels} - attack
    assert world["attack"] == len(attack) and world["benign"] == len(benign)
    assert world["campaigns"] == len({r["campaign_id"] for r in labels if r["is_attack"]})
    assert world["policy_recall"] == pytest.approx(len(flagged & attack) / len(attack))
    assert world["benign_flag_rate"] == pytest.approx(len(flagged & benign) / len(benign))
    # operator ARI over the attack accounts; an account the scan left unlinked is a group of its own
    pred = {r["account_id"]: r["operator_id"] for r in scan}
    ordered = sorted(attack)
    truth = {r["account_id"]: r["operator_id"] for r in labels}
    assert world["operator_ari"] == pytest.approx(adjusted_rand_score(
        [truth[a] for a in ordered], [pred.get(a) or f"alone:{a}" for a in ordered]))
    # and they say the scan works on a world it was never tuned on: most campaigns found, no benign account flagged
    found = sum(2 * len(flagged & members) >= len(members) for members in _members(labels).values())
    assert world["campaigns_found"] == found >= world["campaigns"] / 2
    assert world["policy_recall"] >= 0.5 and world["benign_flag_rate"] <= 0.02


def _members(labels) -> dict[str, set]:
    out: dict[str, set] = {}
    for r in labels:
        if r["is_attack"]:
            out.setdefault(r["campaign_id"], set()).add(r["account_id"])
    return out
    assert set(world["benign_archetypes"]) <= set(world["archetypes"])
    assert "chat" in world["benign_archetypes"]


def test_reason_codes_of_campaign_accounts_are_counted_from_the_scan(world):
    labels = pq.read_table(f"{world['data']}/labels.parquet").to_pylist()
    scan = pq.read_table(f"{world['data']}/scan/accounts.parquet").to_pylist()
    attack = {r["account_id"] for r in labels if r["is_attack"]}
    carrying: dict[str, int] = {}
    for r in scan:
        for code in set(r["reasons"] or []) if r["account_id"] in attack else ():
            carrying[code] = carrying.get(code, 0) + 1
    assert world["attack_reasons"] == carrying and carrying
    assert max(carrying.values()) <= world["attack"]


def test_targets_are_judged_on_the_worst_world(world):
    good = dict(world, world="good", policy_recall=1.0, benign_flag_rate=0.0, operator_ari=1.0,
                campaigns_found=world["campaigns"], archetypes={a: {"n": 100, "flagged": 0, "rate": 0.0} for a in world["archetypes"]})
    bad = dict(good, world="bad", policy_recall=0.5)
    verdicts = {v["target"]: v for v in judge([good, bad])}
    assert verdicts["policy_recall"]["world"] == "bad" and not verdicts["policy_recall"]["pass"]
    assert verdicts["benign_flag_rate"]["pass"] and verdicts["archetype_flag_rate"]["pass"]
    assert {v["target"] for v in judge([good], loco_type="jailbreak")} >= {"loco_recall"}


def test_report_worlds_never_include_a_fitting_seed():
    fit = protocol()["fit"]
    assert report_worlds() and all(not (r == fit["range"] and fit["seeds"][0] <= s <= fit["seeds"][1])
                                   for r, s, _ in report_worlds())
    with pytest.raises(UsageError):
        parse_worlds(f"{fit['range']}:{fit['seeds'][0]}")
    assert parse_worlds("shifted:7-9") == [("shifted", 7, "holdout"), ("shifted", 8, "holdout"), ("shifted", 9, "holdout")]
    with pytest.raises(UsageError):
        parse_worlds("shifted")


def test_benign_community_reported_with_what_formed_it(world, tmp_path):
    """Relabel one flagged campaign's accounts as benign: evaluate must list it with its link kinds."""
    scan = pq.read_table(f"{world['data']}/scan/accounts.parquet").to_pylist()
    camp = next(r["campaign_id"] for r in scan if r["campaign_id"] and r["action"] in ("challenge", "throttle", "block"))
    members = {r["account_id"] for r in scan if r["campaign_id"] == camp}
    lab = pq.read_table(f"{world['data']}/labels.parquet").to_pylist()
    for r in lab:
        if r["account_id"] in members:
            r.update(campaign_id=None, operator_id=None, is_attack=False, archetype="relabelled")
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pylist(lab), path)
    found = [c for c in evaluate(path, f"{world['data']}/scan")["benign_communities"] if c["campaign_id"] == camp]
    assert found and found[0]["benign"] == len(members) and found[0]["archetypes"] == {"relabelled": len(members)}
    assert found[0]["formed_by"] and all(0 < v <= 1 for v in found[0]["formed_by"].values())


def test_cli_worlds(world, tmp_path, monkeypatch, capsys):
    work = str(world["data"]).rsplit("/", 1)[0]  # reuses the simulated world and rescans it
    code, out, err = run_main(monkeypatch, capsys, "evaluate", "--worlds", "shifted:5000", "--scale", "0.06", "--work", work, "--json",
                              "--out", tmp_path / "w.json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["worlds"][0]["world"] == world["world"] and {t["target"] for t in doc["targets"]} >= {"policy_recall", "operator_ari"}
    assert json.loads((tmp_path / "w.json").read_text())["worlds"][0]["campaigns"] == world["campaigns"]
    for bad in (["--worlds", "fit:1000"], ["--worlds", "shifted:1", "--labels", "x"], []):
        code, _, err = run_main(monkeypatch, capsys, "evaluate", *bad)
        assert code == 2 and len(err.strip().splitlines()) == 1, (bad, err)
