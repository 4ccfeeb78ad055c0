"""Compare distillguard's scan with three baselines on the same labelled traffic.

    python benchmarks/compare.py --events OUT/events.parquet --labels OUT/labels.parquet [--scan SCAN_DIR]

Baselines (benchmarks/baselines): volume threshold, PRADA-style distance test
(Juuti et al. 2019), per-account MMD test on embeddings (arXiv 2606.05725).
Every figure comes from the metric functions of ``distillguard.evaluate``.
Baselines are flagged at the policy's achieved benign FPR (``--fpr`` when no
scan is given). See docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import embed_samples, mmd_risk, prada_risk, sample_prompts, volume_risk  # noqa: E402

from distillguard.errors import UsageError  # noqa: E402
from distillguard.evaluate import (  # noqa: E402
    DEFAULT_FPRS,
    align_scores,
    evaluate,
    flags_at_fpr,
    load_labels,
    system_metrics,
)
from distillguard.evaluate.render import render_table  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", required=True, help="events Parquet file (or a distillguard .duckdb store)")
    ap.add_argument("--labels", required=True, help="labels.parquet from distillguard simulate")
    ap.add_argument("--scan", help="a distillguard scan output folder (optional)")
    ap.add_argument("--fpr", type=float, default=0.01, help="benign FPR to flag baselines at when no --scan (default 0.01)")
    ap.add_argument("--max-per-account", type=int, default=64, help="prompts sampled per account (default 64)")
    ap.add_argument(
        "--mmd-reference",
        choices=["benign-half", "population"],
        default="benign-half",
        help="MMD reference: prompts of a random half of the benign accounts (default), or of all accounts",
    )
    ap.add_argument("--permutations", type=int, default=0, help="MMD permutation test rounds (0 = statistic)")
    ap.add_argument("--only", default="volume,prada,mmd", help="comma-separated baselines to run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--out", help="also write the JSON here")
    return ap.parse_args(argv)


def compare(args: argparse.Namespace) -> dict:
    lab = load_labels(args.labels)
    if not Path(args.events).exists() and "*" not in args.events:
        raise UsageError(f"events file not found: {args.events}")
    fprs = DEFAULT_FPRS
    systems: dict = {}
    timings: dict[str, float] = {}
    notes: list[str] = []
    counts = {
        "accounts": len(lab),
        "benign": int((~lab.is_attack).sum()),
        "attack": int(lab.is_attack.sum()),
        "true_campaigns": len({c for c in lab.campaign_id if c is not None}),
    }
    if args.scan:
        t0 = time.perf_counter()
        res = evaluate(lab, args.scan, fprs=fprs)
        systems["scan"] = res["systems"]["scan"]
        policy_fpr = res["policy_fpr"] or 0.0
        counts["missing_from_scan"] = res["counts"]["missing_from_scan"]
        notes += res["notes"]
        timings["scan_eval"] = time.perf_counter() - t0
    else:
        policy_fpr = args.fpr
        notes.append(f"no --scan: baselines flagged at benign FPR <= {policy_fpr:g}")

    def add(name: str, account_id, risk) -> None:
        score = align_scores(lab, account_id, risk, default=0.0)
        flagged = flags_at_fpr(lab.is_attack, score, policy_fpr)
        systems[name] = system_metrics(lab.is_attack, lab.archetype, lab.campaign_id, score, flagged, None, fprs=fprs,
                                       true_operator=lab.operators)

    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if "volume" in only:
        t0 = time.perf_counter()
        v = volume_risk(args.events)
        add("volume", v.account_id, v.risk)
        timings["volume"] = time.perf_counter() - t0
    if only & {"prada", "mmd"}:
        t0 = time.perf_counter()
        samples = sample_prompts(args.events, max_per_account=args.max_per_account, seed=args.seed)
        emb = embed_samples(samples)
        timings["sample_and_embed"] = time.perf_counter() - t0
        counts["sampled_prompts"] = len(samples.texts)
        if "prada" in only:
            t0 = time.perf_counter()
            p = prada_risk(emb)
            add("prada", p.account_id, p.risk)
            timings["prada"] = time.perf_counter() - t0
        if "mmd" in only:
            t0 = time.perf_counter()
            ref = None
            if args.mmd_reference == "benign-half":
                benign = np.sort(lab.account_id[~lab.is_attack].astype(str))
                rng = np.random.default_rng(args.seed)
                ref = set(rng.choice(benign, size=max(1, benign.size // 2), replace=False).tolist()) if benign.size else None
                notes.append("MMD reference: prompts of a random half of the benign accounts (labels used)")
            m = mmd_risk(emb, reference_accounts=ref, permutations=args.permutations, seed=args.seed)
            add("mmd", m.account_id, m.risk)
            timings["mmd"] = time.perf_counter() - t0
    return {
        "events": str(args.events),
        "labels": str(args.labels),
        "scan": args.scan,
        "counts": counts,
        "fprs": list(fprs),
        "policy_fpr": policy_fpr,
        "systems": systems,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "notes": notes,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = compare(args)
    except (UsageError, FileNotFoundError) as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
        return 0
    from rich.console import Console

    console = Console()
    console.print(render_table(result, title="distillguard vs baselines"))
    for note in result["notes"]:
        console.print(f"note: {note}")
    console.print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings_s"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
