"""Scenario files: loading, merging with the archetype library, validation.

A scenario names populations; each population names an archetype of
``scenarios/archetypes.yaml`` and may override any of its keys. Every problem
with a scenario raises :class:`distillguard.errors.UsageError`.
"""
from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from distillguard.errors import UsageError
from distillguard.sim.grammar_data import GRAMMAR, LANGS, SYSTEM

__all__ = ["Scenario", "Population", "load_scenario", "preset_names", "ARCHETYPES"]

_PKG = "distillguard.sim"


def _read_yaml_text(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise UsageError(f"scenario {where}: not valid YAML ({first})") from None


def _library() -> dict:
    text = resources.files(_PKG).joinpath("scenarios/archetypes.yaml").read_text(encoding="utf-8")
    return _read_yaml_text(text, "archetypes.yaml")


_LIB = _library()
DEFAULTS: dict = _LIB["defaults"]
ARCHETYPES: dict[str, dict] = _LIB["archetypes"]

# keys whose values are free-form mappings (any key allowed)
_FREE = {"prompts", "languages", "countries", "models", "signup_path"}
_START_KINDS = {"diurnal", "business", "uniform", "waves", "lockstep", "batch"}
_IP_KINDS = {"home", "nat", "cloud", "cloud_shared", "corporate", "rotating", "unique_residential"}
_UA_KINDS = {"browser", "sdk", "ide", "campaign", "unique_browser"}
_PAY_KINDS = {"unique", "org", "shared", "none"}
_EMAIL_KINDS = {"consumer", "corporate", "edu", "edu_or_corp", "campaign"}
_ORG_KINDS = {"personal", "shared", "campaign"}
_SIGNUP_KINDS = {"spread", "bursts"}
MAX_SHARED_NETS = 64
"""World-wide cloud /24 ranges that ``infra.ip.shared_nets`` can draw from."""


def _merge(base: dict, over: dict, path: str) -> dict:
    out = copy.deepcopy(base)
    for key, val in over.items():
        here = f"{path}.{key}" if path else key
        if key not in base and path.split(".")[-1] not in _FREE:
            raise UsageError(f"scenario: unknown key {here!r}")
        if key in _FREE or path.split(".")[-1] in _FREE:
            out[key] = copy.deepcopy(val)
        elif isinstance(base.get(key), dict) and isinstance(val, dict):
            out[key] = _merge(base[key], val, here)
        else:
            out[key] = copy.deepcopy(val)
    return out


@dataclass
class Population:
    """One population of a scenario: an archetype, its size and its behaviour."""

    index: int
    archetype: str
    accounts: int
    campaigns: int
    spec: dict
    operators: int = 0  # operators running the campaigns (0: one per campaign)

    @property
    def attack(self) -> bool:
        return bool(self.spec["attack"])


@dataclass
class Scenario:
    name: str
    description: str
    start: dt.datetime
    days: float
    response_max_chars: int
    base_models: dict[str, float]
    reasoning_models: list[str]
    release: dict | None
    populations: list[Population] = field(default_factory=list)

    @property
    def start_us(self) -> int:
        return int(self.start.timestamp() * 1_000_000)

    @property
    def window_s(self) -> float:
        return self.days * 86400.0


def preset_names() -> list[str]:
    folder = resources.files(_PKG).joinpath("scenarios")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml") and p.name != "archetypes.yaml")


def load_scenario(name_or_path: str | Path | dict = "default", scale: float = 1.0) -> Scenario:
    """Load a preset by name, a YAML file by path, or a mapping; apply ``scale``."""
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise UsageError(f"--scale must be a positive number, got {scale!r}")
    if isinstance(name_or_path, dict):
        raw, where = name_or_path, "<mapping>"
    else:
        s = str(name_or_path)
        p = Path(s)
        if s in preset_names():
            text = resources.files(_PKG).joinpath(f"scenarios/{s}.yaml").read_text(encoding="utf-8")
            where = s
        elif p.suffix in (".yaml", ".yml") or p.exists():
            try:
                text = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read scenario {s}: {exc.__class__.__name__}") from None
            where = s
        else:
            raise UsageError(f"unknown scenario {s!r}; presets: {', '.join(preset_names())}, or a .yaml file")
        raw = _read_yaml_text(text, where)
    if not isinstance(raw, dict):
        raise UsageError(f"scenario {where}: top level must be a mapping")
    return _build(raw, where, float(scale))


def _build(raw: dict, where: str, scale: float) -> Scenario:
    allowed = {"name", "description", "window", "response_max_chars", "models", "populations"}
    for key in raw:
        if key not in allowed:
            raise UsageError(f"scenario {where}: unknown key {key!r}")
    window = raw.get("window") or {}
    try:
        start_txt = str(window.get("start", "2026-03-02T00:00:00Z")).replace("Z", "+00:00")
        start = dt.datetime.fromisoformat(start_txt)
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.timezone.utc)
        days = float(window.get("days", 7))
    except (TypeError, ValueError, AttributeError):
        raise UsageError(f"scenario {where}: window needs start (ISO 8601) and days (number)") from None
    if not 0 < days <= 400:
        raise UsageError(f"scenario {where}: window.days must be in (0, 400]")
    models = raw.get("models") or {}
    if not isinstance(models, dict):
        raise UsageError(f"scenario {where}: models must be a mapping")
    base = models.get("base") or {"orion-2": 1.0}
    if not isinstance(base, dict) or not base or not all(isinstance(v, (int, float)) and v >= 0 for v in base.values()):
        raise UsageError(f"scenario {where}: models.base must map model names to weights")
    release = models.get("release")
    if release is not None and not (isinstance(release, dict) and "name" in release
                                    and isinstance(release.get("at_day"), (int, float)) and 0 <= release["at_day"] <= days):
        raise UsageError(f"scenario {where}: models.release needs name and at_day (a day inside the window)")
    pops_raw = raw.get("populations")
    if not isinstance(pops_raw, list) or not pops_raw:
        raise UsageError(f"scenario {where}: populations must be a non-empty list")
    pops: list[Population] = []
    for i, p in enumerate(pops_raw):
        if not isinstance(p, dict) or "archetype" not in p:
            raise UsageError(f"scenario {where}: population {i} needs an archetype")
        arch = p["archetype"]
        if arch not in ARCHETYPES:
            raise UsageError(f"scenario {where}: unknown archetype {arch!r} (known: {', '.join(sorted(ARCHETYPES))})")
        n = p.get("accounts")
        if not isinstance(n, (int, float)) or n < 0:
            raise UsageError(f"scenario {where}: population {i} ({arch}) needs accounts >= 0")
        camps = p.get("campaigns", 1)
        if not isinstance(camps, int) or camps < 1:
            raise UsageError(f"scenario {where}: population {i} ({arch}): campaigns must be an integer >= 1")
        ops = p.get("operators", camps)
        if not isinstance(ops, int) or isinstance(ops, bool) or not 1 <= ops <= camps:
            raise UsageError(f"scenario {where}: population {i} ({arch}): operators must be an integer in [1, campaigns]")
        over = {k: v for k, v in p.items() if k not in ("archetype", "accounts", "campaigns", "operators")}
        spec = _merge(DEFAULTS, ARCHETYPES[arch], "")
        spec = _merge(spec, over, "")
        _validate_spec(spec, f"scenario {where}: population {i} ({arch})")
        n_acc = int(round(n * scale))
        if n > 0 and n_acc == 0:
            n_acc = 1
        if spec["attack"]:
            camps = max(1, min(camps, n_acc)) if n_acc else camps
            ops = min(ops, camps)
        pops.append(Population(i, arch, n_acc, camps, spec, ops if ops < camps else 0))
    return Scenario(
        name=str(raw.get("name", where)),
        description=str(raw.get("description", "")),
        start=start.astimezone(dt.timezone.utc),
        days=days,
        response_max_chars=_positive_int(raw.get("response_max_chars", 700), f"scenario {where}: response_max_chars"),
        base_models={str(k): float(v) for k, v in base.items()},
        reasoning_models=[str(m) for m in models.get("reasoning", [])],
        release=release,
        populations=pops,
    )


def _positive_int(v: Any, name: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise UsageError(f"{name} must be a positive integer")
    return v


def _dist_ok(d: Any) -> bool:
    return (isinstance(d, dict) and isinstance(d.get("values"), list) and isinstance(d.get("p"), list)
            and len(d["values"]) == len(d["p"]) and len(d["p"]) > 0
            and all(isinstance(x, (int, float)) and x >= 0 for x in d["p"]) and sum(d["p"]) > 0)


def _weights_ok(d: Any) -> bool:
    return isinstance(d, dict) and d and all(isinstance(v, (int, float)) and v >= 0 for v in d.values()) and sum(d.values()) > 0


def _range(v: Any, name: str, bad, lo_min: float = 1, hi_max: float | None = None, integer: bool = True) -> None:
    ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    if ok and integer:
        ok = all(float(x).is_integer() for x in v)
    if ok:
        ok = lo_min <= v[0] <= v[1] and (hi_max is None or v[1] <= hi_max)
    if not ok:
        bad(f"{name} must be [lo, hi] with {lo_min} <= lo <= hi" + (f" <= {hi_max}" if hi_max is not None else ""))


def _validate_spec(s: dict, where: str) -> None:
    def bad(msg: str):
        raise UsageError(f"{where}: {msg}")

    try:
        if not _weights_ok(s["prompts"]):
            bad("prompts must map prompt kinds to weights")
        for k in s["prompts"]:
            if k not in GRAMMAR:
                bad(f"unknown prompt kind {k!r} (known: {', '.join(GRAMMAR)})")
        if not _weights_ok(s["languages"]) or any(k not in LANGS for k in s["languages"]):
            bad(f"languages must map {', '.join(LANGS)} to weights")
        if not _weights_ok(s["countries"]):
            bad("countries must map country codes to weights")
        if s["models"] is not None and not _weights_ok(s["models"]):
            bad("models must map model names to weights")
        if s["timing"]["start"] not in _START_KINDS:
            bad(f"timing.start must be one of {', '.join(sorted(_START_KINDS))}")
        v = s["volume"]
        if not (v["median"] > 0 and v["sigma"] >= 0 and 1 <= v["min"] <= v["max"] and 0 <= v["low_frac"] <= 1):
            bad("volume needs median > 0, sigma >= 0, 1 <= min <= max, 0 <= low_frac <= 1")
        se = s["sessions"]
        if not (se["mean_len"] >= 1 and se["gap_median_s"] > 0 and se["gap_sigma"] >= 0):
            bad("sessions needs mean_len >= 1, gap_median_s > 0, gap_sigma >= 0")
        for key in ("temperature", "top_p", "max_output_tokens", "n", "logprobs", "top_logprobs", "reasoning_effort"):
            if not _dist_ok(s["params"][key]):
                bad(f"params.{key} needs values and p lists of equal length")
        for key in ("output_tokens", "reasoning_tokens"):
            if not (s[key]["median"] > 0 and s[key]["sigma"] >= 0):
                bad(f"{key} needs median > 0 and sigma >= 0")
        spk = s["system_prompt"]["kind"]
        spk = spk if isinstance(spk, list) else [spk]
        if not spk or any(k not in SYSTEM for k in spk):
            bad(f"system_prompt.kind must be one of (or a list of) {', '.join(SYSTEM)}")
        if not 0 <= s["system_prompt"]["prob"] <= 1:
            bad("system_prompt.prob must be in [0, 1]")
        inf = s["infra"]
        for key, kinds in (("ip", _IP_KINDS), ("ua", _UA_KINDS), ("payment", _PAY_KINDS), ("email", _EMAIL_KINDS),
                           ("org", _ORG_KINDS), ("signup", _SIGNUP_KINDS)):
            if inf[key]["kind"] not in kinds:
                bad(f"infra.{key}.kind must be one of {', '.join(sorted(kinds))}")
        if not _weights_ok(inf["signup_path"]):
            bad("infra.signup_path must map paths to weights")
        for key in ("template_pool", "campaign_pool", "keys_per_account"):
            lo, hi = s[key]
            if not (1 <= lo <= hi):
                bad(f"{key} must be [lo, hi] with 1 <= lo <= hi")
        if s["adapt"] is not None:
            ad = s["adapt"]
            if not (isinstance(ad, dict) and set(ad) <= {"at_day", "gap_sigma", "desync", "new_templates", "new_proxies"}
                    and isinstance(ad.get("at_day"), (int, float)) and ad["at_day"] >= 0):
                bad("adapt needs at_day >= 0 and only gap_sigma, desync, new_templates, new_proxies")
        if s["end_users"] is not None:
            _range(s["end_users"], "end_users", bad)
        if s["pivot"] is not None:
            if not ("delay_h" in s["pivot"] and "share" in s["pivot"]):
                bad("pivot needs delay_h and share")
            _range(s["pivot"]["delay_h"], "pivot.delay_h", bad, lo_min=0, integer=False)
            _range(s["pivot"]["share"], "pivot.share", bad, lo_min=0, hi_max=1, integer=False)
        for key, kind in (("temperature", "num"), ("top_p", "num"), ("max_output_tokens", "int"), ("n", "int"),
                          ("logprobs", "bool"), ("top_logprobs", "int"), ("reasoning_effort", "str")):
            for x in s["params"][key]["values"]:
                ok = x is None or (
                    (kind == "num" and isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0)
                    or (kind == "int" and isinstance(x, int) and not isinstance(x, bool) and x >= 1)
                    or (kind == "bool" and isinstance(x, bool))
                    or (kind == "str" and isinstance(x, str)))
                if not ok:
                    bad(f"params.{key}: bad value {x!r}")
        if not 0 <= s["params"]["sticky"] <= 1:
            bad("params.sticky must be in [0, 1]")
        for key in ("ip", "ua"):
            _range(inf[key]["per_account"], f"infra.{key}.per_account", bad)
        _range(inf["ip"]["group"], "infra.ip.group", bad)
        _range(inf["ip"]["pool"], "infra.ip.pool", bad)
        if not (isinstance(inf["ip"]["shared_nets"], (int, float)) and 0 <= inf["ip"]["shared_nets"] <= MAX_SHARED_NETS):
            bad(f"infra.ip.shared_nets must be in [0, {MAX_SHARED_NETS}]")
        _range(inf["payment"]["cards"], "infra.payment.cards", bad)
        _range(inf["signup"]["bursts"], "infra.signup.bursts", bad)
        _range(inf["signup"]["days_before"], "infra.signup.days_before", bad, lo_min=0, integer=False)
        _range(inf["org"]["size"], "infra.org.size", bad)
        for key in ("shared_frac", "none_frac"):
            if not 0 <= inf["payment"][key] <= 1:
                bad(f"infra.payment.{key} must be in [0, 1]")
        for key in ("verified",):
            if not 0 <= inf[key] <= 1:
                bad(f"infra.{key} must be in [0, 1]")
        for key in ("followup", "second_language", "is_batch"):
            if not 0 <= s[key] <= 1:
                bad(f"{key} must be in [0, 1]")
        t = s["timing"]
        if not (t["wave_every_h"] > 0 and t["wave_len_h"] > 0 and t["wave_jitter_s"] >= 0 and 0 < t["participation"] <= 1
                and 0 <= t["weekend"]):
            bad("timing needs wave_every_h > 0, wave_len_h > 0, wave_jitter_s >= 0, 0 < participation <= 1, weekend >= 0")
        st = s["status"]
        if not (min(st.values()) >= 0 and sum(st.values()) <= 1):
            bad("status rates must be >= 0 and sum to at most 1")
        if not (0 < s["filler_skew"] and s["context_tokens"] >= 0):
            bad("filler_skew must be > 0 and context_tokens >= 0")
    except (KeyError, TypeError, ValueError) as exc:
        bad(f"malformed value ({exc.__class__.__name__}: {exc})")
