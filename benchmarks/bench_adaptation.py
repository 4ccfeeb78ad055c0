"""Adversary adaptation: what each operator change a detector invites costs, on the same worlds.

Usage: python benchmarks/bench_adaptation.py [--work DIR] [--seeds LO-HI|S,S,...] [--only NAME[,NAME]]
                                             [--scale S] [--model M] [--policy P] [--out FILE]

For the unadapted worlds (``protocol.adaptation`` of sim/ranges.yaml: fit-range
seeds nobody fits on) and for each adaptation of ranges.yaml's ``adaptations``
on the same seeds, each world is simulated (cached under ``--work``), scanned
with ``distillguard scan`` and scored. Printed, with deltas against the
unadapted worlds on the same seeds:
1. per adaptation: policy recall and benign flag rate pooled over seeds, the
   worst world's recall, campaigns found, mean operator ARI;
2. recall per campaign type, pooled over seeds;
3. the share of campaign accounts carrying each reason code, and per
   adaptation the codes it silences (the detectors it defeats).
Simulator worlds (evidence class 2 of EVALUATION.md); nothing is tuned on them.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from distillguard.errors import UsageError, exit_with  # noqa: E402
from distillguard.evaluate.worlds import adaptation_worlds, pooled_rates, pooled_reasons, run_world, slim  # noqa: E402
from distillguard.sim.randomize import adaptation, adaptation_names  # noqa: E402

BASELINE = "unadapted"
SILENCED_DROP = 0.10  # a reason code counts as silenced when its share of campaign accounts falls by >= 10 points


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one readable line, exit 2
        raise UsageError(message)


def parse_seeds(text: str) -> list[int]:
    """``LO-HI`` or ``S,S,...``."""
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--seeds: expected LO-HI or S,S,..., got {text!r}") from None


def parse_only(text: str | None) -> list[str]:
    names = adaptation_names() if text is None else [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        adaptation(n)  # unknown name -> UsageError
    return names


def summary(figs: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of one condition pooled over its worlds (seeds)."""
    benign = {a for f in figs for a in f["benign_archetypes"]}
    rates = pooled_rates(figs)

    def pooled(keep) -> float | None:
        n = sum(v["n"] for a, v in rates.items() if keep(a))
        return sum(v["flagged"] for a, v in rates.items() if keep(a)) / n if n else None

    aris = [f["operator_ari"] for f in figs if f["operator_ari"] is not None]
    return {
        "policy_recall": pooled(lambda a: a not in benign),
        "worst_recall": min(f["policy_recall"] for f in figs),
        "benign_flag_rate": pooled(lambda a: a in benign),
        "campaigns_found": sum(f["campaigns_found"] for f in figs),
        "campaigns": sum(f["campaigns"] for f in figs),
        "operator_ari": sum(aris) / len(aris) if aris else None,
        "recall_by_type": {a: v["rate"] for a, v in rates.items() if a not in benign},
        "accounts_by_type": {a: v["n"] for a, v in rates.items() if a not in benign},
        "reasons": {c: v["share"] for c, v in pooled_reasons(figs).items()},
        "scan_s": sum(f["seconds"]["scan"] for f in figs),
    }


def _cell(v, base, pct: bool = False, show_delta: bool = True, digits: int = 1) -> str:
    if v is None:
        return "—"
    txt = f"{100 * v:.{digits}f}%" if pct else f"{v:.3f}"
    if not show_delta or base is None:
        return txt
    d = v - base
    return txt + (f" ({100 * d:+.{digits}f})" if pct else f" ({d:+.3f})")


def silenced(s: dict, base: dict) -> list[tuple[str, float, float]]:
    """Reason codes whose share of campaign accounts fell by >= SILENCED_DROP: ``(code, before, after)``, biggest drop first."""
    out = [(c, b, s["reasons"].get(c, 0.0)) for c, b in base["reasons"].items() if b - s["reasons"].get(c, 0.0) >= SILENCED_DROP]
    return sorted(out, key=lambda x: x[2] - x[1])


def render_summary(sums: dict[str, dict], seeds: list[int]) -> Table:
    base = sums[BASELINE]
    t = Table(title=f"adapted vs unadapted fit-range worlds, seeds {', '.join(map(str, seeds))} (pooled; delta vs unadapted)",
              show_edge=False, pad_edge=False)
    for col in ("adaptation", "policy recall", "worst-world recall", "benign flagged", "campaigns found", "operator ARI (mean)",
                "silenced reasons (share of campaign accounts: unadapted -> adapted)"):
        t.add_column(col, justify="left" if col in ("adaptation",) or col.startswith("silenced") else "right")
    for name, s in sums.items():
        first = name == BASELINE
        found = f"{s['campaigns_found']}/{s['campaigns']}"
        if not first:
            found += f" ({s['campaigns_found'] - base['campaigns_found']:+d})"
        lost = ", ".join(f"{c} {100 * b:.0f}%->{100 * a:.0f}%" for c, b, a in silenced(s, base)) if not first else ""
        t.add_row(name, _cell(s["policy_recall"], base["policy_recall"], show_delta=not first),
                  _cell(s["worst_recall"], base["worst_recall"], show_delta=not first),
                  _cell(s["benign_flag_rate"], base["benign_flag_rate"], pct=True, show_delta=not first, digits=2), found,
                  _cell(s["operator_ari"], base["operator_ari"], show_delta=not first), lost or ("—" if not first else ""))
    return t


def render_matrix(sums: dict[str, dict], key: str, title: str) -> Table:
    """Rows: campaign types or reason codes; columns: unadapted, then each adaptation with its delta."""
    base = sums[BASELINE]
    t = Table(title=title, show_edge=False, pad_edge=False)
    t.add_column(key.replace("_", " "))
    for name in sums:
        t.add_column(name, justify="right")
    rows = sorted({r for s in sums.values() for r in s[key]})
    for r in rows:
        missing = 0.0 if key == "reasons" else None  # a reason nobody carries has share 0; an absent campaign type has no recall
        b = base[key].get(r, missing)
        label = f"{r} ({base['accounts_by_type'][r]} accounts)" if key == "recall_by_type" and r in base["accounts_by_type"] else r
        t.add_row(label, *[_cell(s[key].get(r, missing), b, pct=True, show_delta=n != BASELINE)
                       for n, s in sums.items()])
    return t


def main(argv=None) -> int:
    ap = _Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "bench-data" / "adaptation", help="where worlds are simulated (reused)")
    ap.add_argument("--seeds", help="LO-HI or S,S,... (default: protocol.adaptation's seeds)")
    ap.add_argument("--only", metavar="NAME[,NAME]", help="these adaptations only (default: all of ranges.yaml)")
    ap.add_argument("--scale", type=float, default=1.0, help="population scale of every world (a quick look: 0.1)")
    ap.add_argument("--model", type=Path, help="fusion model YAML for the scans (default: the packaged one)")
    ap.add_argument("--policy", type=Path, help="policy YAML for the scans (default: the packaged one)")
    ap.add_argument("--out", type=Path, help="JSON of every figure (default: WORK/adaptation.json)")
    args = ap.parse_args(argv)
    worlds = adaptation_worlds(parse_seeds(args.seeds) if args.seeds else None)
    names = parse_only(args.only)
    seeds = [s for _, s, _ in worlds]
    scan_args = [*(["--model", str(args.model)] if args.model else []), *(["--policy", str(args.policy)] if args.policy else [])]
    console = Console(width=max(Console().width, 200))
    t_start = time.perf_counter()
    figs: dict[str, list[dict]] = {}
    for name in [BASELINE, *names]:
        for spec in worlds:
            f = run_world(spec, args.work, scale=args.scale, scan_args=scan_args, adaptation=None if name == BASELINE else name)
            figs.setdefault(name, []).append(f)
            console.print(f"{f['world']}: {f['events']:,} events, {f['accounts']:,} accounts ({f['attack']:,} campaign); "
                          f"recall {f['policy_recall']:.3f}, benign flagged {100 * f['benign_flag_rate']:.2f}%; "
                          f"simulate {f['seconds']['simulate']} s, scan {f['seconds']['scan']} s", highlight=False)
    sums = {name: summary(fs) for name, fs in figs.items()}
    console.print(render_summary(sums, seeds))
    for name in names:
        console.print(f"  {name}: {adaptation(name)['why']}", highlight=False)
    console.print(render_matrix(sums, "recall_by_type", "recall per campaign type, pooled over seeds (delta vs unadapted, points)"))
    console.print(render_matrix(sums, "reasons", "share of campaign accounts carrying each reason code (delta vs unadapted, points)"))
    elapsed = time.perf_counter() - t_start
    console.print(f"bench-adaptation: {len(names)} adaptations x {len(worlds)} seeds (+ unadapted) in {elapsed:.0f} s; "
                  "simulator worlds (evidence class 2), nothing tuned on them")
    out = args.out or args.work / "adaptation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": seeds, "seconds": round(elapsed), "summary": sums, "adaptations": {n: adaptation(n) for n in names},
                               "worlds": {n: slim(fs) for n, fs in figs.items()}}, indent=1, default=str) + "\n",
                   encoding="utf-8")
    console.print(f"figures: {out}")
    return 0


if __name__ == "__main__":
    exit_with(main, "bench_adaptation")
