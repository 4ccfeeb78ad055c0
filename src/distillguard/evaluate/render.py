"""Terminal rendering of evaluation results: one compact Rich table with a
column per system (our scan, the volume baseline, other baselines)."""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["metric_rows", "render_table", "render_worlds", "render_verdicts", "SYSTEM_TITLES"]

SYSTEM_TITLES = {
    "scan": "distillguard",
    "volume": "volume",
    "prada": "PRADA",
    "mmd": "MMD",
}


def _num(x: Any, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _fpr_label(f: float) -> str:
    return f"{100 * f:g}%"


def metric_rows(result: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """``(label, [cell per system])`` rows for a result of
    :func:`distillguard.evaluate.evaluate` (or ``benchmarks/compare.py``)."""
    systems = [(k, v) for k, v in result["systems"].items()]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, fn) -> None:
        rows.append((label, [("n/a" if m is None else fn(m)) for _, m in systems]))

    row("ROC AUC", lambda m: _num(m["roc_auc"]))
    for f in result.get("fprs", []):
        key = f"{f:g}"
        row(
            f"recall @ benign FPR ≤ {_fpr_label(f)}",
            lambda m, key=key: _num(m["recall_at_fpr"][key]["recall"]),
        )
    pf = result.get("policy_fpr")
    at = f" (flags at FPR {_pct(pf)})" if pf is not None else ""
    row("policy precision" + at, lambda m: _num(m["policy"]["precision"]))
    row("policy recall", lambda m: _num(m["policy"]["recall"]))
    row("policy FPR", lambda m: _pct(m["policy"]["fpr"]))
    archetypes: list[str] = []
    for _, m in systems:
        if m is not None:
            archetypes = list(m["flag_rate_by_archetype"])
            break
    for a in archetypes:
        row(f"flag rate: {a}", lambda m, a=a: _pct(m["flag_rate_by_archetype"][a]["rate"]))
    row(
        "campaigns found (≥½ flagged)",
        lambda m: f'{m["campaigns_found"]["found"]}/{m["campaigns_found"]["total"]}',
    )
    row("linkage ARI (campaign accounts)", lambda m: _num(m.get("linkage_ari")))
    row("linkage ARI (all accounts)", lambda m: _num(m.get("linkage_ari_all")))
    row("operator ARI (campaign accounts)", lambda m: _num(m.get("operator_ari")))
    return rows


def render_table(result: Mapping[str, Any], title: str = "evaluation"):
    """A Rich :class:`~rich.table.Table` of :func:`metric_rows`."""
    from rich.table import Table

    c = result.get("counts", {})
    caption = None
    if c:
        caption = (
            f'{c.get("accounts", 0)} accounts: {c.get("benign", 0)} benign, {c.get("attack", 0)} attack, '
            f'{c.get("true_campaigns", 0)} campaigns'
        )
        if c.get("missing_from_scan"):
            caption += f'; {c["missing_from_scan"]} missing from scan (risk 0)'
    table = Table(title=title, caption=caption, show_edge=False, pad_edge=False)
    table.add_column("metric", style="bold")
    for k in result["systems"]:
        table.add_column(SYSTEM_TITLES.get(k, k), justify="right")
    for label, cells in metric_rows(result):
        table.add_row(label, *cells)
    return table


def render_worlds(figs, title: str = "cross-world evaluation"):
    """One row per world (``distillguard.evaluate.worlds.run_world`` figures); baselines
    (``fig["baselines"]``: name -> recall at the scan's benign FPR) get a column each."""
    from rich.table import Table

    names = sorted({b for f in figs for b in f.get("baselines", {})})
    table = Table(title=title, show_edge=False, pad_edge=False)
    for col in ("world", "accounts", "campaigns", "recall", "benign flagged", "found", "operator ARI",
                "worst benign archetype", "benign communities"):
        table.add_column(col, justify="left" if col in ("world", "worst benign archetype") else "right")
    for b in names:
        table.add_column(f"{SYSTEM_TITLES.get(b, b)} recall", justify="right")
    for f in figs:
        worst = max(((a, v) for a, v in f["archetypes"].items() if a in f["benign_archetypes"]),
                    key=lambda av: (av[1]["rate"] or 0.0, av[1]["flagged"]), default=None)
        worst_txt = f"{worst[0]} {worst[1]['flagged']}/{worst[1]['n']}" if worst and worst[1]["flagged"] else "—"
        comm = f["benign_communities"]
        table.add_row(
            f["world"], f'{f["accounts"]}', f'{f["attack"]} in {f["campaigns"]}', _num(f["policy_recall"]),
            _pct(f["benign_flag_rate"]), f'{f["campaigns_found"]}/{f["campaigns"]}', _num(f["operator_ari"]), worst_txt,
            f'{len(comm)} ({sum(c["flagged_benign"] for c in comm)} acc.)' if comm else "0",
            *[_num(f.get("baselines", {}).get(b)) for b in names],
        )
    return table


def render_verdicts(verdicts):
    """The targets: want, worst value (and where), pass/fail."""
    from rich.table import Table

    table = Table(title="targets (worst world decides)", show_edge=False, pad_edge=False)
    for col in ("target", "want", "worst", "where", "verdict"):
        table.add_column(col)
    for v in verdicts:
        table.add_row(v["target"], v["want"], _num(v["worst"], 4), str(v["world"]), "PASS" if v["pass"] else "FAIL")
    return table
