"""Adversary adaptations: the same world with only the operator's adapted knobs moved; refused where they must be."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import run_main
from distillguard.errors import UsageError
from distillguard.evaluate.worlds import adaptation_worlds, pooled_reasons
from distillguard.sim import randomize, simulate
from distillguard.sim.randomize import adaptation, adaptation_names, campaign_types, protocol, randomized_scenario
from distillguard.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SEED = 7000


def _leaves(spec, prefix: str = "") -> dict[str, object]:
    """Every leaf of a nested mapping as ``{dotted.path: value}``."""
    if not isinstance(spec, dict):
        return {prefix: spec}
    out: dict[str, object] = {}
    for k, v in spec.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else k))
    return out


def _adapted_paths(name: str) -> set[str]:
    lib = randomize._library()
    return {lib["knobs"][k]["path"] for k in adaptation(name)["knobs"]}


@pytest.mark.parametrize("name", adaptation_names())
def test_adapted_world_equals_the_unadapted_one_but_for_the_adapted_knobs(name):
    plain = randomized_scenario("fit", SEED, include=campaign_types())
    adapted = randomized_scenario("fit", SEED, include=campaign_types(), adaptation_name=name)
    load_scenario(adapted)
    assert adapted["name"] == f"fit-{SEED}-adapt-{name}"
    assert {k: v for k, v in adapted.items() if k not in ("name", "description", "populations")} == \
           {k: v for k, v in plain.items() if k not in ("name", "description", "populations")}
    assert [p["archetype"] for p in adapted["populations"]] == [p["archetype"] for p in plain["populations"]]
    attack = set(campaign_types())
    allowed = _adapted_paths(name)
    moved = set()
    for before, after in zip(plain["populations"], adapted["populations"]):
        a, b = _leaves(before), _leaves(after)
        changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        if before["archetype"] not in attack:
            assert not changed, (before["archetype"], changed)  # the benign population stays as drawn
        assert all(any(k == p or k.startswith(p + ".") for p in allowed) for k in changed), changed
        moved |= changed
    assert moved  # the adaptation changes something


def test_set_knobs_land_inside_the_adaptation_interval():
    sc = randomized_scenario("fit", SEED, include=campaign_types(), adaptation_name="clean_identifiers")
    lo, hi = adaptation("clean_identifiers")["knobs"]["card_sharing"]
    shares = [p["infra"]["payment"]["shared_frac"] for p in sc["populations"] if p["archetype"] in campaign_types()]
    assert shares and all(lo <= s <= hi for s in shares)  # the multi-cell operator's cells too
    langs = [p["languages"] for p in randomized_scenario("fit", SEED, include=campaign_types(), adaptation_name="other_languages")
             ["populations"] if p["archetype"] in campaign_types()]
    assert langs and all(lang != randomize._library()["tongues"]["zh_heavy"] for lang in langs)


def test_benign_traffic_is_identical_in_the_adapted_world(tmp_path):
    """Measured on the simulated events: benign accounts send the same requests; campaign accounts send fewer."""
    for name in (None, "low_volume"):
        simulate(randomized_scenario("fit", SEED + 1, adaptation_name=name), scale=0.04, seed=SEED + 1, out=tmp_path / str(name))
    labels = [pq.read_table(tmp_path / d / "labels.parquet").to_pylist() for d in ("None", "low_volume")]
    events = [pq.read_table(tmp_path / d / "events.parquet").to_pylist() for d in ("None", "low_volume")]
    assert labels[0] == labels[1]
    benign = {r["account_id"] for r in labels[0] if not r["is_attack"]}

    def rows(evs, keep):
        return sorted((tuple((k, str(v)) for k, v in e.items() if k != "event_id") for e in evs if keep(e["account_id"])))

    assert rows(events[0], benign.__contains__) == rows(events[1], benign.__contains__)
    n_attack = [len(rows(e, lambda a: a not in benign)) for e in events]
    assert n_attack[1] < n_attack[0] / 2


def test_unknown_adaptation_and_benign_knobs_are_refused(monkeypatch):
    with pytest.raises(UsageError, match="unknown adaptation"):
        randomized_scenario("fit", SEED, adaptation_name="nope")
    lib = dict(randomize._library(), adaptations={"louder_users": {"why": "x", "knobs": {"benign_volume_scale": [2, 3]}}})
    monkeypatch.setattr(randomize, "_library", lambda: lib)
    with pytest.raises(UsageError, match="campaign knobs only"):
        adaptation("louder_users")


def test_adaptation_seeds_are_never_fitting_seeds():
    proto = protocol()
    fit, spec = proto["fit"], proto["adaptation"]
    specs = adaptation_worlds()
    assert [s for _, s, _ in specs] == list(range(spec["seeds"][0], spec["seeds"][1] + 1))
    fitted = set(range(fit["seeds"][0], fit["seeds"][1] + 1))
    reported = {s for r in proto["report"] for s in range(r["seeds"][0], r["seeds"][1] + 1)}
    assert not {s for _, s, _ in specs} & (fitted | reported)
    with pytest.raises(UsageError, match="fitting world"):
        adaptation_worlds([fit["seeds"][0]])


@pytest.mark.parametrize("flags, says", [(["--only", "short_outputs,nope"], "unknown adaptation 'nope'"),
                                         (["--seeds", "1000-1002"], "fitting world"),
                                         (["--seeds", "x"], "--seeds"),
                                         (["--bogus"], "unrecognized arguments")])
def test_bench_refuses_bad_flags_with_one_line(flags, says, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_adaptation.py"), "--work", str(tmp_path), *flags],
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert proc.returncode == 2 and says in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_reason_shares_are_pooled_over_campaign_accounts():
    figs = [{"attack": 10, "attack_reasons": {"LOCKSTEP": 4, "SHARED_INFRA": 10}}, {"attack": 30, "attack_reasons": {"LOCKSTEP": 2}}]
    pooled = pooled_reasons(figs)
    assert pooled["LOCKSTEP"] == {"n": 40, "carrying": 6, "share": 6 / 40}
    assert pooled["SHARED_INFRA"]["share"] == 10 / 40


@pytest.mark.parametrize("args, says", [(["--randomize", "fit", "--adapt", "nope"], "unknown adaptation 'nope'"),
                                        (["--adapt", "low_volume"], "need --randomize")])
def test_simulate_cli_refuses_a_bad_adaptation(args, says, monkeypatch, capsys, tmp_path):
    code, _, err = run_main(monkeypatch, capsys, "simulate", "--seed", SEED, "--out", tmp_path / "w", *args)
    assert code == 2 and says in err and not (tmp_path / "w").exists()
