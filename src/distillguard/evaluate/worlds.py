"""The cross-world protocol: many randomized worlds, the real scan on each, worst world and targets.

``run_world`` simulates one world of a named range (``distillguard.sim.randomize``)
unless it is already on disk, scans it with ``distillguard scan`` (the CLI, in a
child process: exactly what a user runs) and scores it with :func:`evaluate`.
``judge`` compares the per-world figures with the issue's targets
(``protocol.targets`` in ``sim/ranges.yaml``): the worst world decides, not
the mean. ``distillguard evaluate --worlds``, ``benchmarks/bench_generalization.py``
and ``benchmarks/bench_adaptation.py`` (adapted worlds: ``adaptation_worlds``,
``run_world(..., adaptation=NAME)``, ``pooled_reasons``) use it; see docs/evaluation.md.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq

from distillguard.errors import UsageError
from distillguard.evaluate.core import evaluate, load_labels
from distillguard.sim import simulate
from distillguard.sim.randomize import protocol, randomized_scenario, world_name

__all__ = ["WorldSpec", "parse_worlds", "report_worlds", "run_world", "world_figures", "judge", "pooled_rates", "dump", "scan_cli",
           "fit_worlds", "adaptation_worlds", "pooled_reasons", "slim"]

WorldSpec = tuple[str, int, str]  # (range, seed, family)


def parse_worlds(text: str) -> list[WorldSpec]:
    """``report`` (the protocol's report worlds) or ``RANGE:LO-HI[:FAMILY]`` (comma-separated)."""
    if text == "report":
        return report_worlds()
    out: list[WorldSpec] = []
    for part in text.split(","):
        bits = part.strip().split(":")
        try:
            lo, _, hi = bits[1].partition("-")
            seeds = range(int(lo), int(hi or lo) + 1)
            family = bits[2] if len(bits) > 2 else "holdout"
        except (IndexError, ValueError):
            raise UsageError(f"--worlds: expected 'report' or RANGE:LO-HI[:FAMILY], got {part!r}") from None
        out += [(bits[0], s, family) for s in seeds]
    _never_fitted(out)
    return out


def report_worlds() -> list[WorldSpec]:
    return [(r["range"], s, r.get("family", "holdout")) for r in protocol()["report"]
            for s in range(r["seeds"][0], r["seeds"][1] + 1)]


def adaptation_worlds(seeds: Iterable[int] | None = None) -> list[WorldSpec]:
    """The worlds adversary adaptations are applied to: ``protocol.adaptation``'s range on ``seeds`` (default: its seeds)."""
    spec = protocol()["adaptation"]
    if seeds is None:
        seeds = range(spec["seeds"][0], spec["seeds"][1] + 1)
    out = [(spec["range"], int(s), spec.get("family", "holdout")) for s in seeds]
    _never_fitted(out)
    return out


def _never_fitted(worlds: Iterable[WorldSpec]) -> None:
    fit = protocol()["fit"]
    lo, hi = fit["seeds"]
    for rn, seed, _ in worlds:
        if rn == fit["range"] and lo <= seed <= hi:
            raise UsageError(f"world {rn}-{seed} is a fitting world (protocol.fit seeds {lo}-{hi}); report on other seeds")


def fit_worlds(work: str | Path, exclude: Iterable[str] = ()) -> list[Path]:
    """Simulate the protocol's fitting worlds into ``work`` (reused when present): what a fit reads.

    ``exclude`` leaves campaign types out (leave-one-type-out). Returns the world folders.
    """
    fit = protocol()["fit"]
    out = []
    for seed in range(fit["seeds"][0], fit["seeds"][1] + 1):
        d = Path(work) / world_name(fit["range"], seed, exclude)
        if not (d / "labels.parquet").exists():
            simulate(randomized_scenario(fit["range"], seed, exclude), seed=seed, out=d, family=fit.get("family", "train"))
        out.append(d)
    return out


def run_world(spec: WorldSpec, work: str | Path, exclude: Iterable[str] = (), include: Iterable[str] = (),
              scale: float = 1.0, scan_args: Iterable[str] = (), adaptation: str | None = None) -> dict[str, Any]:
    """Simulate (if absent), scan and evaluate one world (adapted by ``adaptation``); returns :func:`world_figures`."""
    rn, seed, family = spec
    name = (world_name(rn, seed, exclude, adaptation) + (f"-with-{'-'.join(sorted(include))}" if include else "")
            + (f"-x{scale:g}" if scale != 1.0 else ""))
    data = Path(work) / name
    t0 = time.perf_counter()
    if not (data / "labels.parquet").exists():
        simulate(randomized_scenario(rn, seed, exclude, include, adaptation), scale=scale, seed=seed, out=data, family=family)
    sim_s = time.perf_counter() - t0
    scan_dir = data / "scan"
    t0 = time.perf_counter()
    scan_cli([data / "events.parquet", "--accounts", data / "accounts.parquet"], scan_dir, scan_args)
    scan_s = time.perf_counter() - t0
    fig = world_figures(data / "labels.parquet", scan_dir)
    n_events = pq.ParquetFile(data / "events.parquet").metadata.num_rows
    fig.update(world=name, range=rn, seed=seed, family=family, adaptation=adaptation, data=str(data), events=n_events,
               seconds={"simulate": round(sim_s, 1), "scan": round(scan_s, 1)})
    return fig


def scan_cli(inputs: Iterable, out: str | Path, scan_args: Iterable[str] = ()) -> dict[str, Any]:
    """Run ``distillguard scan INPUTS --out OUT`` in a child process; its JSON summary."""
    cmd = [sys.executable, "-m", "distillguard.cli", "scan", *map(str, inputs), "--out", str(out), "--quiet", "--json", *scan_args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsageError(f"scan of {out} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout)


def world_figures(labels_path: str | Path, scan_dir: str | Path) -> dict[str, Any]:
    """The protocol's figures of one scanned world, plus the full :func:`evaluate` result."""
    lab = load_labels(labels_path)
    res = evaluate(lab, scan_dir)
    m = res["systems"]["scan"]
    benign_arch = sorted({str(a) for a, y in zip(lab.archetype, lab.is_attack) if not y})
    found = m["campaigns_found"]
    return {
        "accounts": res["counts"]["accounts"],
        "benign": res["counts"]["benign"],
        "attack": res["counts"]["attack"],
        "campaigns": found["total"],
        "operators": len({o for o in lab.operators if o is not None}),
        "policy_recall": m["policy"]["recall"],
        "benign_flag_rate": m["policy"]["fpr"],
        "campaigns_found": found["found"],
        "operator_ari": m.get("operator_ari"),
        "linkage_ari": m["linkage_ari"],
        "roc_auc": m["roc_auc"],
        "archetypes": {a: m["flag_rate_by_archetype"][a] for a in m["flag_rate_by_archetype"]},
        "benign_archetypes": benign_arch,
        "benign_communities": res["benign_communities"],
        "attack_reasons": _attack_reasons(lab, scan_dir),
        "evaluation": res,
    }


def _attack_reasons(lab, scan_dir: str | Path) -> dict[str, int]:
    """How many campaign accounts carry each reason code in the scan's ``accounts.parquet``."""
    attack = {a for a, y in zip(lab.account_id, lab.is_attack) if y}
    t = pq.read_table(Path(scan_dir) / "accounts.parquet", columns=["account_id", "reasons"])
    return dict(Counter(code for a, codes in zip(t.column("account_id").to_pylist(), t.column("reasons").to_pylist())
                        if a in attack for code in set(codes or [])))


def pooled_reasons(figs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Share of campaign accounts carrying each reason code, pooled over worlds: ``{code: {n, carrying, share}}``."""
    n = sum(f["attack"] for f in figs)
    pool: Counter = Counter()
    for f in figs:
        pool.update(f["attack_reasons"])
    return {c: {"n": n, "carrying": k, "share": k / n if n else None} for c, k in sorted(pool.items())}


def pooled_rates(figs: list[dict[str, Any]], archetypes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Flag rate per archetype pooled over worlds: ``{archetype: {n, flagged, rate}}``."""
    pool: dict[str, list[int]] = {}
    for f in figs:
        for a, v in f["archetypes"].items():
            if archetypes is None or a in archetypes:
                nk = pool.setdefault(a, [0, 0])
                nk[0] += v["n"]
                nk[1] += v["flagged"]
    return {a: {"n": n, "flagged": k, "rate": k / n if n else None} for a, (n, k) in sorted(pool.items())}


def judge(figs: list[dict[str, Any]], loco_type: str | None = None) -> list[dict[str, Any]]:
    """Each target of ``protocol.targets``: the worst world's value and whether it passes."""
    t = protocol()["targets"]

    def worst(key: str, lowest: bool):
        vals = [(f[key] if f[key] is not None else (0.0 if lowest else 1.0), f["world"]) for f in figs]
        return min(vals) if lowest else max(vals)

    out = []
    for key, lowest in (("policy_recall", True), ("benign_flag_rate", False), ("operator_ari", True)):
        v, w = worst(key, lowest)
        out.append({"target": key, "want": f"{'>=' if lowest else '<='} {t[key]:g} every world", "worst": v, "world": w,
                    "pass": v >= t[key] if lowest else v <= t[key]})
    share = [(f["campaigns_found"] / f["campaigns"] if f["campaigns"] else 1.0, f["world"]) for f in figs]
    v, w = min(share)
    out.append({"target": "campaigns_found", "want": "every campaign, every world", "worst": v, "world": w,
                "pass": v >= t["campaigns_found"]})
    benign = sorted({a for f in figs for a in f["benign_archetypes"]})
    rates = pooled_rates(figs, benign)
    a, r = max(((a, v["rate"] or 0.0) for a, v in rates.items()), key=lambda x: x[1], default=("-", 0.0))
    out.append({"target": "archetype_flag_rate", "want": f"<= {t['archetype_flag_rate']:g} each benign archetype (pooled)",
                "worst": r, "world": a, "pass": r <= t["archetype_flag_rate"]})
    if loco_type:
        v = pooled_rates(figs, [loco_type]).get(loco_type, {}).get("rate")
        out.append({"target": "loco_recall", "want": f">= {t['loco_recall']:g} on {loco_type} (pooled)", "worst": v,
                    "world": loco_type, "pass": v is not None and v >= t["loco_recall"]})
    return out


def slim(figs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The figures without the bulky full evaluation (what JSON dumps keep)."""
    return [{k: v for k, v in f.items() if k != "evaluation"} for f in figs]


def dump(figs: list[dict[str, Any]], verdicts: list[dict[str, Any]], path: str | Path) -> None:
    """Write the figures (:func:`slim`) and verdicts as JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"worlds": slim(figs), "targets": verdicts}, indent=1, default=str) + "\n", encoding="utf-8")
