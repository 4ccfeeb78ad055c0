"""Domain randomization: a scenario drawn per world from a named parameter range.

``randomized_scenario("fit", seed)`` returns a scenario mapping (the same shape
as a scenario YAML file) whose populations, sizes and behaviour knobs are drawn
from ``ranges.yaml`` with ``seed``; :func:`distillguard.sim.simulate` accepts it
as ``scenario``. The same range and seed always give the same mapping.
``exclude`` drops campaign archetypes (leave-one-campaign-type-out fitting);
``include`` forces them in (evaluating the left-out type); ``adaptation``
names an adversary adaptation (``adaptations`` of ranges.yaml): the same world,
with only that adaptation's operator knobs redrawn from its intervals. See
docs/simulator.md, "Randomized worlds" and "Adversary adaptations".
"""
from __future__ import annotations

import copy
import zlib
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

import numpy as np
import yaml

from distillguard.errors import UsageError
from distillguard.sim.scenario import _FREE, ARCHETYPES, DEFAULTS, _merge

__all__ = ["range_names", "randomized_scenario", "protocol", "campaign_types", "world_name", "adaptation_names", "adaptation"]

_BASE_MODELS = {"base": {"orion-2": 0.55, "orion-2-mini": 0.3, "orion-2-reasoner": 0.15},
                "reasoning": ["orion-2-reasoner", "orion-3"]}


@lru_cache(maxsize=1)
def _library() -> dict:
    text = resources.files("distillguard.sim").joinpath("ranges.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def range_names() -> list[str]:
    return sorted(_library()["ranges"])


def campaign_types() -> list[str]:
    """Campaign archetypes (what ``exclude`` / ``include`` accept)."""
    return sorted(a for a, spec in ARCHETYPES.items() if spec.get("attack"))


def protocol() -> dict:
    """Which worlds fit and which report: ``{"fit": {range, seeds: [lo, hi], family}, "report": [...]}``."""
    return copy.deepcopy(_library()["protocol"])


def world_name(range_name: str, seed: int, exclude: Iterable[str] = (), adaptation: str | None = None) -> str:
    ex = sorted(exclude)
    return f"{range_name}-{seed}" + (f"-without-{'-'.join(ex)}" if ex else "") + (f"-adapt-{adaptation}" if adaptation else "")


def adaptation_names() -> list[str]:
    return sorted(_library().get("adaptations", {}))


def adaptation(name: str) -> dict:
    """One adversary adaptation of ranges.yaml, ``{why, knobs: {knob: interval}}``; only campaign knobs may move."""
    lib = _library()
    if name not in lib.get("adaptations", {}):
        raise UsageError(f"unknown adaptation {name!r}; adaptations: {', '.join(adaptation_names())}")
    spec = copy.deepcopy(lib["adaptations"][name])
    attack = set(lib["groups"]["attack"])
    for knob in spec["knobs"]:
        if knob not in lib["knobs"]:
            raise UsageError(f"adaptation {name!r}: unknown knob {knob!r}")
        if not set(_group(lib["knobs"][knob]["archetypes"], lib["groups"])) <= attack:
            raise UsageError(f"adaptation {name!r}: knob {knob!r} moves benign archetypes; an adaptation moves campaign knobs only")
    return spec


def _group(names: str | list, groups: dict) -> list[str]:
    return list(groups[names]) if isinstance(names, str) else list(names)


def _draw(rng: np.random.Generator, spec: Any, log: bool = False):
    """A value from ``[lo, hi]`` (uniform, or log-uniform) or ``{values, p}``."""
    if isinstance(spec, dict):
        p = np.asarray(spec["p"], dtype=float)
        return spec["values"][int(rng.choice(len(p), p=p / p.sum()))]
    lo, hi = float(spec[0]), float(spec[1])
    if log and lo > 0:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def _int_between(rng: np.random.Generator, lohi, log: bool = True) -> int:
    lo, hi = int(lohi[0]), int(lohi[1])
    return int(round(_draw(rng, [lo, hi], log=log))) if hi > lo else lo


def _get(spec: dict, path: list[str]):
    for key in path:
        spec = spec[key]
    return spec


def _has(spec: dict, path: list[str]) -> bool:
    for key in path:
        if not isinstance(spec, dict) or key not in spec:
            return False
        spec = spec[key]
    return True


def _put(over: dict, path: list[str], value) -> None:
    for key in path[:-1]:
        over = over.setdefault(key, {})
    over[path[-1]] = value


def _apply(knob: dict, merged: dict, value):
    """The new value of ``knob``'s key given the archetype's current one."""
    cur = _get(merged, knob["path"].split("."))
    if knob["mode"] == "scale":
        if isinstance(cur, list):  # an integer [lo, hi] pair stays integer and ordered
            lo = max(1, int(round(cur[0] * value)))
            return [lo, max(lo, int(round(cur[1] * value)))]
        return float(cur * value)
    return value


def _knob_values(rng: np.random.Generator, knob: dict, interval, targets: list[str]) -> dict[str, Any]:
    """One knob's drawn value per target archetype (one draw per world unless ``per: archetype``)."""
    world_value = _draw(rng, interval, knob.get("log", False))
    return {a: _draw(rng, interval, knob.get("log", False)) if knob.get("per") == "archetype" else world_value for a in targets}


def randomized_scenario(range_name: str, seed: int, exclude: Iterable[str] = (), include: Iterable[str] = (),
                        adaptation_name: str | None = None) -> dict:
    """A scenario mapping for one world of ``range_name`` drawn with ``seed`` (adapted by ``adaptation_name``)."""
    lib = _library()
    if range_name not in lib["ranges"]:
        raise UsageError(f"unknown range {range_name!r}; ranges: {', '.join(range_names())}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    exclude, include = set(exclude), set(include)
    for t in exclude | include:
        if t not in campaign_types():
            raise UsageError(f"unknown campaign type {t!r} (known: {', '.join(campaign_types())})")
    if exclude & include:
        raise UsageError(f"a campaign type cannot be both excluded and included: {', '.join(sorted(exclude & include))}")
    adapted = adaptation(adaptation_name)["knobs"] if adaptation_name else {}
    R = lib["ranges"][range_name]
    groups = lib["groups"]
    rng = np.random.default_rng([seed, zlib.crc32(range_name.encode())])
    # the adaptation draws from its own stream, so every other draw of the world stays as it was
    adapt_rng = np.random.default_rng([seed, zlib.crc32(range_name.encode()), zlib.crc32(f"adapt:{adaptation_name}".encode())])

    days = round(_draw(rng, R["window_days"]), 2)
    n_benign = _int_between(rng, R["benign_accounts"], log=False)
    mix = {a: _draw(rng, lohi) for a, lohi in R["benign_mix"].items()}
    total = sum(mix.values())
    pops: list[dict] = [{"archetype": a, "accounts": max(1, int(round(n_benign * w / total)))} for a, w in mix.items()]

    for arch, c in R["campaigns"].items():
        appears = rng.random() < c["prob"]
        if arch in exclude or not (appears or arch in include):
            continue
        k = _int_between(rng, c["campaigns"], log=False)
        n = sum(_int_between(rng, c["accounts"]) for _ in range(k))
        pops.append({"archetype": arch, "accounts": max(n, k), "campaigns": k})

    op = R["operator"]
    if rng.random() < op["prob"] and op["type"] not in exclude:
        cells = _int_between(rng, op["campaigns"], log=False)
        n = _int_between(rng, op["accounts"])
        # one operator, several cells: each its own cards and proxies, sharing templates and schedule
        pops.append({"archetype": op["type"], "accounts": max(n, cells), "campaigns": cells, "operators": 1,
                     "infra": {"payment": {"cards": list(op["cards"]), "shared_frac": 0.85}}})

    big = R["large_campaign"]
    kinds = [t for t in big["types"] if t not in exclude]
    if rng.random() < big["prob"] and kinds:
        share = _draw(rng, big["share"])
        others = sum(p["accounts"] for p in pops)
        pops.append({"archetype": kinds[int(rng.integers(len(kinds)))],
                     "accounts": int(round(others * share / (1.0 - share))), "campaigns": 1})

    # behaviour knobs, drawn per world (or per archetype), applied on top of each archetype's defaults
    present = {p["archetype"] for p in pops}
    overrides: dict[str, dict] = {a: {} for a in present}
    merged = {a: _merge(DEFAULTS, ARCHETYPES[a], "") for a in present}
    for name, knob in lib["knobs"].items():
        if knob.get("adaptation_only") and name not in adapted:
            continue  # archetype default unless an adaptation moves it; no draw, so worlds stay as they were
        targets = [a for a in _group(knob["archetypes"], groups) if a in present]
        values = {} if knob.get("adaptation_only") else _knob_values(rng, knob, R["knobs"][name], targets)
        if name in adapted:
            values = _knob_values(adapt_rng, knob, adapted[name], targets)
        for a, value in values.items():
            if "table" in knob:
                value = lib[knob["table"]][value]
            path = knob["path"].split(".")
            new = copy.deepcopy(_apply(knob, merged[a], value))
            if path[0] in _FREE and len(path) > 1:  # a free mapping (prompt mix...) is replaced whole
                new, path = {**merged[a][path[0]], path[1]: new}, path[:1]
            _put(overrides[a], path, new)
            merged[a] = _merge(merged[a], _nested(path, new), "")
    for p in pops:
        extra = copy.deepcopy(overrides[p["archetype"]])
        for key, val in p.pop("infra", {}).items():  # population-specific infra (the operator's cells) wins
            extra.setdefault("infra", {}).setdefault(key, {}).update(val)
        for name in adapted:  # ... except over what the operator deliberately changes
            path = lib["knobs"][name]["path"].split(".")
            if path[0] == "infra" and _has(overrides[p["archetype"]], path):
                _put(extra, path, copy.deepcopy(_get(overrides[p["archetype"]], path)))
        p.update(extra)

    return {
        "name": world_name(range_name, seed, exclude, adaptation_name),
        "description": f"randomized world: range {range_name}, seed {seed}"
                       + (f", without {', '.join(sorted(exclude))}" if exclude else "")
                       + (f", adapted: {adaptation_name}" if adaptation_name else ""),
        "window": {"start": "2026-03-02T00:00:00Z", "days": days},
        "response_max_chars": 400,
        "models": {**_BASE_MODELS, "release": {"name": "orion-3", "at_day": round(days * _draw(rng, [0.4, 0.7]), 2)}},
        "populations": pops,
    }


def _nested(path: list[str], value) -> dict:
    out: dict = {}
    _put(out, path, value)
    return out
