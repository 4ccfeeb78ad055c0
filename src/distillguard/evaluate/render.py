"""Terminal rendering of evaluation results: one compact Rich table with a
column per system (our scan, the volume baseline, other baselines)."""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["metric_rows", "render_table", "SYSTEM_TITLES"]

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
