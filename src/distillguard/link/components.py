"""Connected components of a relation given as pairs (union-find): rings tied by hubs, operators tied by evidence."""
from __future__ import annotations

from typing import Hashable, Iterable

__all__ = ["UnionFind"]


class UnionFind:
    """Disjoint sets with path halving; :meth:`groups` lists every item added or joined."""

    def __init__(self, items: Iterable[Hashable] = ()):
        self.parent: dict = {x: x for x in items}

    def find(self, x):
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def union_all(self, items: Iterable[Hashable]) -> None:
        it = iter(items)
        first = next(it, None)
        if first is None:
            return
        self.find(first)
        for x in it:
            self.union(first, x)

    def groups(self) -> list[list]:
        """The components, each in insertion order of its items."""
        out: dict = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return list(out.values())
