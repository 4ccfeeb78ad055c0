"""Link rules as data (``rules.yaml``): kinds of shared evidence and their weights."""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
import yaml

__all__ = ["LinkRule", "load_rules"]


@dataclass(frozen=True)
class LinkRule:
    """How much sharing one kind of attribute is worth.

    A value shared by ``k`` of ``n`` accounts weighs
    ``weight * log(n / k) / log(n)``: rare values link strongly, values held
    by more than ``max_share`` of all accounts link nobody. In a scan of
    fewer than ``small_scan`` accounts a share is a handful of accounts (1%
    of 231 is 2), so there the limit is never below ``min_cap`` holders: six
    proxy accounts on one rare user agent still link. In larger scans the
    floor would let popular templates and user agents join ordinary users
    into big communities, so it does not apply. ``reason`` is the reason
    code the evidence supports; ``online_risk`` the risk one shared value of
    this kind gives a new account in the decision service (None: not linked online).
    ``max_distinct_share`` (kinds read from requests): an account whose
    requests (at least ``stable_min_requests`` with a value) carry more
    distinct values than this share of them draws a new value per connection
    (a randomised TLS ClientHello): its values describe no client and link
    nobody, and by chance collisions they would join unrelated accounts.
    """

    kind: str
    weight: float
    reason: str
    min_accounts: int = 2
    max_share: float = 1.0
    attach: float = 1.0
    min_cap: int = 50
    small_scan: int = 1000
    online_risk: float | None = None
    max_distinct_share: float | None = None
    stable_min_requests: int = 4

    def hub_weight(self, k: int, n: int) -> float:
        return float(self.hub_weights(np.array([k], dtype=float), n)[0])

    def hub_weights(self, k: np.ndarray, n: int) -> np.ndarray:
        """:meth:`hub_weight` of many holder counts ``k`` at once."""
        k = np.asarray(k, dtype=float)
        ok = (k >= self.min_accounts) & (k <= max(self.max_share * n, self.min_cap if n < self.small_scan else 0)) & (n >= 2)
        out = np.zeros(len(k))
        out[ok] = self.weight * np.log(n / k[ok]) / math.log(n)
        return out


def load_rules(text: str | None = None) -> tuple[LinkRule, ...]:
    """Rules from YAML text, or the packaged defaults."""
    if text is None:
        text = resources.files("distillguard.link").joinpath("rules.yaml").read_text()
    data = yaml.safe_load(text) or {}
    return tuple(LinkRule(**r) for r in data.get("rules", []))
