"""Randomized worlds: deterministic per seed, ranges that really shift behaviour, operator labels."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from distillguard.errors import UsageError
from distillguard.sim import simulate
from distillguard.sim.randomize import campaign_types, protocol, randomized_scenario, range_names
from distillguard.sim.scenario import load_scenario

SEEDS = range(6)


def _pops(sc: dict, arch: str) -> list[dict]:
    return [p for p in sc["populations"] if p["archetype"] == arch]


def test_same_range_and_seed_give_the_same_world_and_other_seeds_differ():
    a, b = randomized_scenario("fit", 7), randomized_scenario("fit", 7)
    assert a == b
    assert randomized_scenario("fit", 8) != a
    assert randomized_scenario("shifted", 7) != a
    load_scenario(a)  # a valid scenario


def test_same_world_gives_the_same_bytes(tmp_path):
    sc = randomized_scenario("shifted", 3)
    for d in ("x", "y"):
        simulate(sc, scale=0.05, seed=3, out=tmp_path / d)
    for name in ("events.parquet", "accounts.parquet", "labels.parquet"):
        assert (tmp_path / "x" / name).read_bytes() == (tmp_path / "y" / name).read_bytes(), name


def test_shifted_range_moves_population_parameters():
    def chat(range_name: str, key: str) -> list[float]:
        return [_pops(randomized_scenario(range_name, s), "chat")[0][key] for s in SEEDS]

    out_fit = [v["median"] for v in chat("fit", "output_tokens")]
    out_shift = [v["median"] for v in chat("shifted", "output_tokens")]
    assert max(out_fit) < min(out_shift)  # ordinary chat answers get longer
    assert max(chat("shifted", "followup")) < min(chat("fit", "followup"))

    def hydra_cards(range_name: str) -> list[int]:  # operators spread over more cards in the shifted range
        return [_pops(randomized_scenario(range_name, s, include=["hydra"]), "hydra")[0]["infra"]["payment"]["cards"][1]
                for s in SEEDS]

    assert max(hydra_cards("fit")) < min(hydra_cards("shifted"))


def test_ranges_shift_the_simulated_traffic(tmp_path):
    """Measured on events, not on the parameters: chat answers per question, careful operators' answer lengths."""
    ratios, attack_out = {}, {}
    for rn in ("fit", "shifted"):
        r_all, a_all = [], []
        for seed in (0, 1):
            out = tmp_path / f"{rn}{seed}"
            simulate(randomized_scenario(rn, seed), scale=0.08, seed=seed, out=out)
            ev = pq.read_table(out / "events.parquet", columns=["account_id", "input_tokens", "output_tokens", "status"]).to_pandas()
            lab = pq.read_table(out / "labels.parquet").to_pandas().set_index("account_id")
            ev = ev[ev.status == "ok"].join(lab, on="account_id")
            chat = ev[ev.archetype == "chat"]
            r_all.append(float(np.median(chat.output_tokens / chat.input_tokens)))
            a_all.append(float(np.median(ev[ev.is_attack].output_tokens)))
        ratios[rn], attack_out[rn] = np.mean(r_all), np.mean(a_all)
    assert ratios["shifted"] > 2 * ratios["fit"]
    assert ratios["shifted"] >= 5  # short questions, answers of hundreds of tokens
    assert attack_out["shifted"] < 0.7 * attack_out["fit"]


def test_operator_cells_carry_one_operator_id_and_their_own_cards(tmp_path):
    sc = {"name": "ops", "window": {"days": 2},
          "populations": [{"archetype": "chat", "accounts": 20},
                          {"archetype": "hydra", "accounts": 60, "campaigns": 4, "operators": 1,
                           "infra": {"payment": {"cards": [1, 1], "shared_frac": 1.0, "none_frac": 0.0}}},
                          {"archetype": "jailbreak", "accounts": 20, "campaigns": 2}]}
    simulate(sc, seed=2, out=tmp_path)
    lab = pq.read_table(tmp_path / "labels.parquet").to_pylist()
    acc = {r["account_id"]: r for r in pq.read_table(tmp_path / "accounts.parquet").to_pylist()}
    hydra = [r for r in lab if r["archetype"] == "hydra"]
    assert len({r["operator_id"] for r in hydra}) == 1
    assert len({r["campaign_id"] for r in hydra}) == 4
    cards = {}
    for r in hydra:
        cards.setdefault(r["campaign_id"], set()).add(acc[r["account_id"]]["payment_fingerprint"])
    card_sets = list(cards.values())
    assert all(not (a & b) for i, a in enumerate(card_sets) for b in card_sets[i + 1:])  # one card per cell, not shared
    jb = [r for r in lab if r["archetype"] == "jailbreak"]
    assert len({r["operator_id"] for r in jb}) == 2  # by default each campaign is its own operator
    assert all(r["operator_id"] is None and r["campaign_id"] is None for r in lab if r["archetype"] == "chat")


def test_randomized_worlds_have_a_multi_cell_operator_and_sometimes_a_large_campaign():
    worlds = [randomized_scenario("shifted", s) for s in range(8)]
    assert all(any(p.get("operators") == 1 and p["campaigns"] >= 5 for p in w["populations"]) for w in worlds)
    shares = []
    for w in worlds:
        total = sum(p["accounts"] for p in w["populations"])
        shares.append(max(p["accounts"] for p in w["populations"] if p["archetype"] in campaign_types()) / total)
    assert max(shares) >= 0.1


def test_exclude_and_include_campaign_types():
    for s in SEEDS:
        w = randomized_scenario("fit", s, exclude=["hydra"])
        assert not _pops(w, "hydra")
        w = randomized_scenario("shifted", s, include=["whale"])
        assert _pops(w, "whale")
    with pytest.raises(UsageError):
        randomized_scenario("fit", 1, exclude=["chat"])
    with pytest.raises(UsageError):
        randomized_scenario("nope", 1)


def test_protocol_never_reports_on_a_fitted_world():
    p = protocol()
    assert set(range_names()) >= {"fit", "shifted"}
    lo, hi = p["fit"]["seeds"]
    fitted = {(p["fit"]["range"], s) for s in range(lo, hi + 1)}
    reported = {(r["range"], s) for r in p["report"] for s in range(r["seeds"][0], r["seeds"][1] + 1)}
    assert not fitted & reported
    assert sum(1 for r in p["report"] if r["range"] == "shifted" for _ in range(r["seeds"][0], r["seeds"][1] + 1)) >= 5


def test_cli_randomize(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "distillguard.cli", "simulate", *args], capture_output=True, text=True)

    r = cli("--randomize", "fit", "--seed", "4", "--exclude-type", "jailbreak", "--scale", "0.03", "--out", str(tmp_path / "w"), "-q")
    assert r.returncode == 0, r.stderr
    lab = pq.read_table(tmp_path / "w" / "labels.parquet").column("archetype").to_pylist()
    assert "jailbreak" not in lab and "chat" in lab
    for args in (["--randomize", "fit", "--scenario", "smoke"], ["--randomize", "bogus"], ["--exclude-type", "hydra"],
                 ["--randomize", "fit", "--exclude-type", "unicorn"]):
        r = cli(*args, "--out", str(tmp_path / "o"))
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_shared_cloud_ranges_mix_app_archetypes(tmp_path):
    """With infra.ip.shared_nets, app backends, tutoring apps and VPN users meet on the same few /24s."""
    shared = {"infra": {"ip": {"kind": "cloud_shared", "shared_nets": 3, "group": [10, 20]}}}
    sc = {"name": "nets", "window": {"days": 1},
          "populations": [{"archetype": a, "accounts": 40, "volume": {"median": 5}, **shared}
                          for a in ("app_backend", "tutoring", "cloud_range_users")]}
    simulate(sc, seed=4, out=tmp_path)
    ev = pq.read_table(tmp_path / "events.parquet", columns=["account_id", "client_ip"]).to_pylist()
    arch = {r["account_id"]: r["archetype"] for r in pq.read_table(tmp_path / "labels.parquet").to_pylist()}
    by_net: dict[str, set] = {}
    for r in ev:
        by_net.setdefault(r["client_ip"].rsplit(".", 1)[0], set()).add(arch[r["account_id"]])
    assert len(by_net) <= 3
    assert any(len(kinds) == 3 for kinds in by_net.values())
