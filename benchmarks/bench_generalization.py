"""Verdicts on traffic the scorer was not fitted on: randomized worlds, leave-one-type-out, Glasswally.

Usage: python benchmarks/bench_generalization.py [--worlds report] [--loco TYPE] [--glasswally PATH]
                                                 [--model M] [--policy P] [--no-baselines] [--out FILE]
       python benchmarks/bench_generalization.py --only-glasswally --glasswally PATH   # step 3 alone
       python benchmarks/bench_generalization.py --fit-worlds [--loco TYPE]   # only write the fitting worlds

1. Report worlds (``protocol.report`` of sim/ranges.yaml: the shifted range and
   unfitted seeds of the fit range, holdout phrasing): each is simulated,
   scanned with ``distillguard scan`` and scored; one row per world with the
   volume, PRADA and MMD baselines' recall at the scan's benign flag rate;
   the issue's targets judged on the worst world.
2. ``--loco TYPE``: the report worlds all contain TYPE; pass ``--model`` fitted
   on ``--fit-worlds --loco TYPE`` (worlds without TYPE) to measure recall on a
   campaign type the fit never saw.
3. Glasswally's labelled set (``datasets/labeled_5k.jsonl`` of the Glasswally
   repository, MIT; not shipped: give ``--glasswally PATH`` or
   ``$GLASSWALLY_LABELED``): labels split off, scanned, campaigns found, benign
   flagged, AUC. Skipped with a message when absent.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from rich.console import Console  # noqa: E402

import compare  # noqa: E402
from distillguard.errors import UsageError, exit_with  # noqa: E402
from distillguard.evaluate import evaluate  # noqa: E402
from distillguard.evaluate.communities import describe  # noqa: E402
from distillguard.evaluate.labelled import split_labelled_jsonl  # noqa: E402
from distillguard.evaluate.render import render_table, render_verdicts, render_worlds  # noqa: E402
from distillguard.privacy.keyed import load_key  # noqa: E402
from distillguard.privacy.redact import pseudonym  # noqa: E402
from distillguard.evaluate.worlds import dump, fit_worlds, judge, parse_worlds, pooled_rates, run_world, scan_cli  # noqa: E402

BASELINES = ("volume", "prada", "mmd")
SHOW_COMMUNITIES = 4


def baselines(events: Path, labels: Path, scan: Path) -> dict:
    """The three baselines flagged at the scan's benign flag rate (benchmarks/compare.py)."""
    return compare.compare(compare.parse_args(["--events", str(events), "--labels", str(labels), "--scan", str(scan)]))["systems"]


def render_pooled(figs: list[dict]):
    """Flag rate per archetype pooled over the worlds of each range: hard negatives and campaign types."""
    from rich.table import Table

    ranges = sorted({f["range"] for f in figs})
    pooled = {r: pooled_rates([f for f in figs if f["range"] == r]) for r in ranges}
    benign = {a for f in figs for a in f["benign_archetypes"]}
    table = Table(title="flag rate per archetype, pooled over the worlds of each range", show_edge=False, pad_edge=False)
    table.add_column("archetype")
    for r in ranges:
        table.add_column(r, justify="right")
    for a in sorted({a for p in pooled.values() for a in p}, key=lambda a: (a not in benign, a)):
        cells = [f"{100 * v['rate']:.1f}% ({v['flagged']}/{v['n']})" if (v := pooled[r].get(a)) else "—" for r in ranges]
        table.add_row(a + ("" if a in benign else " (campaign)"), *cells)
    return table


def glasswally(path: Path, work: Path, scan_args: list[str], with_baselines: bool, console: Console) -> dict:
    events, labels = split_labelled_jsonl(path, work / "glasswally")
    scan_dir = work / "glasswally" / "scan"
    db = work / "glasswally" / "store.duckdb"
    db.unlink(missing_ok=True)
    # Its account ids are API keys, which the store keeps as keyed pseudonyms
    # (docs/privacy.md): scan under a known key and label the same pseudonyms.
    key = work / "glasswally" / "identifiers.key"
    key.write_text(secrets.token_hex(32) + "\n")
    scan_cli([events, "--db", db, "--identifier-key", key], scan_dir, scan_args)
    table = pq.read_table(labels)
    ids = [pseudonym(a, load_key(key)) for a in table.column("account_id").to_pylist()]
    labels = work / "glasswally" / "labels-pseudonymised.parquet"
    pq.write_table(table.set_column(table.column_names.index("account_id"), "account_id", pa.array(ids, pa.string())), labels)
    res = evaluate(labels, scan_dir)
    if with_baselines:
        for name, m in baselines(db, labels, scan_dir).items():
            if name in BASELINES:
                res["systems"][name] = m
    m = res["systems"]["scan"]
    console.print(render_table(res, title=f"Glasswally labelled set: {path.name}"))
    formed = pq.read_table(scan_dir / "accounts.parquet", columns=["campaign_id"]).column("campaign_id").drop_null()
    summary = {"campaigns_found": m["campaigns_found"]["found"], "campaigns": m["campaigns_found"]["total"],
               "campaigns_formed": len(set(formed.to_pylist())), "linkage_ari": m["linkage_ari"],
               "linkage_ari_all": m["linkage_ari_all"],
               "benign_flagged": m["policy"]["fp"], "benign": res["counts"]["benign"], "roc_auc": m["roc_auc"],
               "policy_recall": m["policy"]["recall"], "pass": m["campaigns_found"]["found"] == m["campaigns_found"]["total"]
               and m["policy"]["fp"] == 0}
    console.print(f"Glasswally: campaigns found {summary['campaigns_found']}/{summary['campaigns']}, benign flagged "
                  f"{summary['benign_flagged']}/{summary['benign']}, AUC {summary['roc_auc']:.3f}, campaigns formed "
                  f"{summary['campaigns_formed']}, linkage ARI {summary['linkage_ari']:.3f} (campaign accounts) / "
                  f"{summary['linkage_ari_all']:.3f} (all accounts) -> "
                  + ("PASS" if summary["pass"] else "FAIL"), highlight=False)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", default="report", help="'report' (protocol.report) or RANGE:LO-HI[:FAMILY],...")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-data" / "generalization")
    ap.add_argument("--loco", metavar="TYPE", help="leave-one-campaign-type-out: worlds with TYPE; --model fitted without it")
    ap.add_argument("--fit-worlds", action="store_true", help="only simulate the fitting worlds (without --loco TYPE) and exit")
    ap.add_argument("--model", type=Path, help="fusion model YAML for the scans (default: the packaged one)")
    ap.add_argument("--policy", type=Path, help="policy YAML for the scans (default: the packaged one)")
    ap.add_argument("--glasswally", type=Path, default=os.environ.get("GLASSWALLY_LABELED") or None,
                    help="Glasswally's datasets/labeled_5k.jsonl (default: $GLASSWALLY_LABELED)")
    ap.add_argument("--no-baselines", action="store_true", help="skip the volume, PRADA and MMD baselines")
    ap.add_argument("--only-glasswally", action="store_true", help="skip the worlds: only Glasswally's labelled set")
    ap.add_argument("--out", type=Path, help="also write every figure as JSON here")
    args = ap.parse_args(argv)
    console = Console(width=max(Console().width, 170))
    loco = [args.loco] if args.loco else []
    if args.fit_worlds:
        for d in fit_worlds(args.work / "fit", loco):
            print(d)
        return 0
    scan_args = [*(["--model", str(args.model)] if args.model else []), *(["--policy", str(args.policy)] if args.policy else [])]
    t_start = time.perf_counter()
    figs = []
    for spec in [] if args.only_glasswally else parse_worlds(args.worlds):
        t0 = time.perf_counter()
        f = run_world(spec, args.work / "worlds", include=loco, scan_args=scan_args)
        if not args.no_baselines:
            data = Path(f["data"])
            systems = baselines(data / "events.parquet", data / "labels.parquet", data / "scan")
            f["baselines"] = {b: systems[b]["policy"]["recall"] for b in BASELINES}
            f["baseline_figures"] = {b: {k: systems[b][k] for k in ("roc_auc", "policy", "campaigns_found")} for b in BASELINES}
        figs.append(f)
        console.print(f"{f['world']}: {f['events']:,} events, {f['accounts']:,} accounts; simulate {f['seconds']['simulate']} s, "
                      f"scan {f['seconds']['scan']} s, all {time.perf_counter() - t0:.0f} s", highlight=False)
    if figs:
        console.print(render_worlds(figs, title="report worlds (never fitted on); baselines flagged at the scan's benign flag rate"))
    for f in figs:  # the largest benign communities that reached challenge, and what linked them
        comm = f["benign_communities"]
        for entry in comm[:SHOW_COMMUNITIES]:
            console.print(f"  {f['world']} benign community flagged: {describe(entry)}", highlight=False)
        if len(comm) > SHOW_COMMUNITIES:
            console.print(f"  {f['world']}: {len(comm) - SHOW_COMMUNITIES} more (all in --out)", highlight=False)
    verdicts = judge(figs, args.loco) if figs else []
    if figs:
        console.print(render_pooled(figs))
        console.print(render_verdicts(verdicts))
    gw = None
    if args.glasswally is None or not Path(args.glasswally).is_file():
        console.print("Glasswally: skipped (give --glasswally PATH or $GLASSWALLY_LABELED: datasets/labeled_5k.jsonl "
                      "of the Glasswally repository)" + (f"; not a file: {args.glasswally}" if args.glasswally else ""))
    else:
        gw = glasswally(Path(args.glasswally), args.work, scan_args, not args.no_baselines, console)
    console.print(f"bench-generalization: {len(figs)} worlds in {time.perf_counter() - t_start:.0f} s")
    if args.out:
        dump(figs, verdicts + ([{"target": "glasswally", **gw}] if gw else []), args.out)
    return 0


if __name__ == "__main__":
    exit_with(main, "bench_generalization")
