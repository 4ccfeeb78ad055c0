"""Link rules as data (``rules.yaml``): kinds of shared evidence and their weights."""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import yaml

__all__ = ["LinkRule", "load_rules"]


@dataclass(frozen=True)
class LinkRule:
    """How much sharing one kind of attribute is worth.

    A value shared by ``k`` of ``n`` accounts weighs
    ``weight * log(n / k) / log(n)``: rare values link strongly, values held
    by a large share of all accounts link nobody.
    """

    kind: str
    weight: float
    reason: str
    min_accounts: int = 2
    max_share: float = 1.0
    attach: float = 1.0

    def hub_weight(self, k: int, n: int) -> float:
        if k < self.min_accounts or n < 2 or k > self.max_share * n:
            return 0.0
        return self.weight * math.log(n / k) / math.log(n)


def load_rules(text: str | None = None) -> tuple[LinkRule, ...]:
    """Rules from YAML text, or the packaged defaults."""
    if text is None:
        text = resources.files("distillguard.link").joinpath("rules.yaml").read_text()
    data = yaml.safe_load(text) or {}
    return tuple(LinkRule(**r) for r in data.get("rules", []))
