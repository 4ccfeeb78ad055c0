"""Score a scan's ``accounts.parquet`` against simulator labels.

See docs/evaluation.md for what each figure means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from distillguard.errors import UsageError
from distillguard.evaluate.communities import benign_communities
from distillguard.evaluate.metrics import (
    ACTIONS,
    FLAG_ACTIONS,
    flags_at_fpr,
    system_metrics,
    volume_rank_score,
)

__all__ = [
    "Labels",
    "ScanAccounts",
    "load_labels",
    "load_scan",
    "align_scores",
    "evaluate",
    "DEFAULT_FPRS",
]

DEFAULT_FPRS = (0.001, 0.01)


@dataclass(frozen=True)
class Labels:
    """Ground truth, one entry per account, in a fixed order."""

    account_id: np.ndarray  # object (str)
    is_attack: np.ndarray  # bool
    campaign_id: np.ndarray  # object (str or None)
    archetype: np.ndarray  # object (str)
    operator_id: np.ndarray | None = None  # object (str or None); None: each campaign is its own operator

    def __len__(self) -> int:
        return int(self.account_id.size)

    @property
    def operators(self) -> np.ndarray:
        """True operator per account (the campaign id when the labels carry no operator_id)."""
        return self.campaign_id if self.operator_id is None else self.operator_id


@dataclass(frozen=True)
class ScanAccounts:
    """The columns of a scan's ``accounts.parquet`` that evaluation reads."""

    account_id: np.ndarray
    risk: np.ndarray  # float64
    action: np.ndarray  # object (str)
    campaign_id: np.ndarray  # object (str or None)
    n_events: np.ndarray | None  # float64, None when the column is absent
    operator_id: np.ndarray | None = None  # object (str or None), None when the column is absent


def _read_parquet(path: Path, what: str):
    import pyarrow.parquet as pq

    if not path.exists():
        raise UsageError(f"{what} not found: {path}")
    if not path.is_file():
        raise UsageError(f"{what} is not a file: {path}")
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for bad files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read {what} {path}: {msg}") from None


def _require(table, cols: list[str], what: str, path: Path) -> None:
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise UsageError(f"{what} {path} lacks column(s): {', '.join(missing)}")


def _strings(col) -> np.ndarray:
    return np.array([None if v is None else str(v) for v in col.to_pylist()], dtype=object)


def _unique_ids(ids: np.ndarray, what: str, path: Path) -> None:
    if any(v is None for v in ids):
        raise UsageError(f"{what} {path} has a null account_id")
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise UsageError(f"{what} {path} repeats account_id {uniq[counts > 1][0]!r}")


def load_labels(path: str | Path) -> Labels:
    """Read ``labels.parquet`` (account_id, campaign_id, archetype[, is_attack][, operator_id]).

    Without an ``is_attack`` column, an account is an attack account when its
    ``campaign_id`` is not null; without ``operator_id`` each campaign is its
    own operator. Raises :class:`UsageError` on bad input.
    """
    path = Path(path)
    t = _read_parquet(path, "labels file")
    _require(t, ["account_id", "campaign_id", "archetype"], "labels file", path)
    ids = _strings(t.column("account_id"))
    _unique_ids(ids, "labels file", path)
    camp = _strings(t.column("campaign_id"))
    camp = np.array([None if (c is None or c == "") else c for c in camp], dtype=object)
    arch = np.array(["unknown" if a is None else a for a in _strings(t.column("archetype"))], dtype=object)
    if "is_attack" in t.column_names:
        raw = t.column("is_attack").to_pylist()
        try:
            attack = np.array([bool(v) if v is not None else False for v in raw], dtype=bool)
        except (TypeError, ValueError):
            raise UsageError(f"labels file {path}: is_attack must be boolean") from None
    else:
        attack = np.array([c is not None for c in camp], dtype=bool)
    operator = _optional_ids(t, "operator_id")
    return Labels(account_id=ids, is_attack=attack, campaign_id=camp, archetype=arch, operator_id=operator)


def load_scan(scan_dir: str | Path) -> ScanAccounts:
    """Read ``DIR/accounts.parquet`` of a scan. Raises :class:`UsageError`."""
    d = Path(scan_dir)
    if not d.exists():
        raise UsageError(f"scan folder not found: {d}")
    if not d.is_dir():
        raise UsageError(f"--scan must be a scan's output folder, not a file: {d}")
    path = d / "accounts.parquet"
    t = _read_parquet(path, "scan accounts file")
    _require(t, ["account_id", "risk", "action"], "scan accounts file", path)
    ids = _strings(t.column("account_id"))
    _unique_ids(ids, "scan accounts file", path)
    try:
        risk = np.array(
            [math.nan if v is None else float(v) for v in t.column("risk").to_pylist()], dtype=np.float64
        )
    except (TypeError, ValueError):
        raise UsageError(f"scan accounts file {path}: risk must be numeric") from None
    risk = np.nan_to_num(risk, nan=0.0)
    action = np.array(
        ["allow" if a is None else str(a).strip().lower() for a in t.column("action").to_pylist()], dtype=object
    )
    bad = sorted(set(action.tolist()) - set(ACTIONS))
    if bad:
        raise UsageError(f"scan accounts file {path}: unknown action {bad[0]!r} (expected one of {', '.join(ACTIONS)})")
    camp = _optional_ids(t, "campaign_id")
    if camp is None:
        camp = np.full(ids.size, None, dtype=object)
    n_events = None
    if "n_events" in t.column_names:
        n_events = np.array(
            [0.0 if v is None else float(v) for v in t.column("n_events").to_pylist()], dtype=np.float64
        )
    return ScanAccounts(account_id=ids, risk=risk, action=action, campaign_id=camp, n_events=n_events,
                        operator_id=_optional_ids(t, "operator_id"))


def _optional_ids(table, name: str) -> np.ndarray | None:
    """A nullable id column ("" counts as null), or None when the table lacks it."""
    if name not in table.column_names:
        return None
    return np.array([None if c in (None, "") else c for c in _strings(table.column(name))], dtype=object)


def align_scores(labels: Labels, account_ids, values, default: Any = 0.0, dtype=np.float64) -> np.ndarray:
    """Values keyed by ``account_ids`` re-ordered to ``labels`` order; accounts
    absent from ``account_ids`` get ``default``."""
    index = {str(a): i for i, a in enumerate(account_ids)}
    vals = np.asarray(values)
    out = np.empty(len(labels), dtype=dtype)
    for i, a in enumerate(labels.account_id):
        j = index.get(a)
        out[i] = default if j is None else vals[j]
    return out


def evaluate(labels: str | Path | Labels, scan_dir: str | Path, fprs=DEFAULT_FPRS) -> dict[str, Any]:
    """Every figure of a scan against labels, next to the volume baseline.

    Returns a JSON-ready dict:
    ``{"counts": {...}, "policy_fpr": f, "systems": {"scan": {...},
    "volume": {...} | None}, "benign_communities": [...], "notes": [...]}``
    (see :func:`distillguard.evaluate.communities.benign_communities`); each system's dict is
    :func:`distillguard.evaluate.metrics.system_metrics`. Accounts in the
    labels but missing from the scan count as risk 0 / ``allow`` / no
    campaign / 0 events.
    """
    lab = labels if isinstance(labels, Labels) else load_labels(labels)
    scan = load_scan(scan_dir)
    if len(lab) == 0:
        raise UsageError("labels file has no accounts")

    label_set = set(lab.account_id.tolist())
    scan_set = set(scan.account_id.tolist())
    n_missing = len(label_set - scan_set)
    n_unlabelled = len(scan_set - label_set)

    risk = align_scores(lab, scan.account_id, scan.risk, default=0.0)
    action = align_scores(lab, scan.account_id, scan.action, default="allow", dtype=object)
    pred_camp = align_scores(lab, scan.account_id, scan.campaign_id, default=None, dtype=object)
    pred_op = pred_camp if scan.operator_id is None else align_scores(lab, scan.account_id, scan.operator_id, default=None, dtype=object)
    flagged = np.array([a in FLAG_ACTIONS for a in action], dtype=bool)

    scan_metrics = system_metrics(
        lab.is_attack, lab.archetype, lab.campaign_id, risk, flagged, pred_camp, fprs=fprs,
        true_operator=lab.operators, pred_operator=pred_op,
    )
    policy_fpr = scan_metrics["policy"]["fpr"]
    notes: list[str] = []

    volume = None
    if scan.n_events is not None:
        n_ev = align_scores(lab, scan.account_id, scan.n_events, default=0.0)
        vscore = volume_rank_score(n_ev)
        vflag = flags_at_fpr(lab.is_attack, vscore, policy_fpr or 0.0)
        volume = system_metrics(lab.is_attack, lab.archetype, lab.campaign_id, vscore, vflag, None, fprs=fprs,
                                true_operator=lab.operators)
    else:
        notes.append("scan accounts.parquet has no n_events column: volume baseline not computed")

    if n_missing:
        notes.append(f"{n_missing} labelled account(s) missing from the scan were counted as risk 0 / allow")
    if n_unlabelled:
        notes.append(f"{n_unlabelled} scanned account(s) without a label were ignored")

    true_camps = {c for c in lab.campaign_id if c is not None}
    pred_camps = {c for c in pred_camp if c is not None}
    return {
        "labels": str(labels) if not isinstance(labels, Labels) else None,
        "scan": str(scan_dir),
        "counts": {
            "accounts": len(lab),
            "benign": int((~lab.is_attack).sum()),
            "attack": int(lab.is_attack.sum()),
            "true_campaigns": len(true_camps),
            "predicted_campaigns": len(pred_camps),
            "missing_from_scan": n_missing,
            "unlabelled_in_scan": n_unlabelled,
        },
        "fprs": list(fprs),
        "policy_fpr": policy_fpr,
        "systems": {"scan": scan_metrics, "volume": volume},
        "benign_communities": benign_communities(lab, dict(zip(scan.account_id, scan.action)), scan_dir),
        "notes": notes,
    }
