"""The latest keys seen, remembered in bounded memory (intake's repeated event ids, the OTLP calls already in)."""
from __future__ import annotations

__all__ = ["Recent"]


class Recent:
    """At least the latest ``limit`` keys (at most twice as many), in two generations of sets: when the newer
    holds ``limit``, the older is forgotten whole. A lookup and an insert per key, where an ``OrderedDict``
    trimmed one key at a time cost ~3x (docs/serve.md, Performance). Not thread-safe: callers hold their lock."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self._new: set = set()
        self._old: set = set()

    def __contains__(self, key) -> bool:
        return key in self._new or key in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def add(self, key) -> None:
        self._new.add(key)
        if len(self._new) >= self.limit:
            self._old, self._new = self._new, set()

    def fresh(self, keys) -> list[bool]:
        """Whether each key is new (a repeat within ``keys`` too), remembering them."""
        out = []
        new, old, limit = self._new, self._old, self.limit
        for k in keys:
            if k in new or k in old:
                out.append(False)
                continue
            new.add(k)
            out.append(True)
            if len(new) >= limit:
                self._old, self._new = old, new = new, set()
        return out
