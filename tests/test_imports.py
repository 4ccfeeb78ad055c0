"""Import hygiene of ``src/distillguard``, read from the source (every import, at module level or in a function).

- no import circle between modules;
- no circle between packages at import time, and between packages at all
  beyond the known upward calls listed in ``KNOWN_UPWARD`` (each a lazy
  import, named with its reason; the list may only shrink);
- no import of another package's private (``_``) names.

"Package" is the first level under ``distillguard`` (``ingest``, ``link``,
``scan``...). ``LAYERS`` is the one direction of docs/architecture.md.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import distillguard

ROOT = Path(distillguard.__file__).parent
LAYERS = ["errors", "limits", "schema", "request_params", "subject", "signing", "text", "privacy", "store", "audit", "auth", "ingest", "features",
          "signals", "link", "erasure", "score", "intel", "scan", "report", "sim", "evaluate", "console", "case", "serve",
          "engines", "commands", "cli"]
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def _module(path: Path) -> str:
    parts = ("distillguard",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _imports():
    """(importer, imported module, imported name or None, at import time) for every import of the package."""
    for path in ROOT.rglob("*.py"):
        me = _module(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for stmt in tree.body for n in ast.walk(stmt)
               if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        for node in ast.walk(tree):
            eager = id(node) in top and not _under_main_guard(tree, node)
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("distillguard"):
                        yield me, a.name, None, eager
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("distillguard"):
                    for a in node.names:
                        sub = f"{target}.{a.name}"
                        yield (me, sub, None, eager) if _exists(sub) else (me, target, a.name, eager)


def _under_main_guard(tree, node) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "__main__" in ast.unparse(stmt.test):
            if any(n is node for n in ast.walk(stmt)):
                return True
    return False


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in list(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


IMPORTS = list(_imports())


def test_the_walk_sees_eager_and_lazy_imports():
    seen = {(m, t, e) for m, t, _, e in IMPORTS}
    assert ("distillguard.serve.linking", "distillguard.link.kinds", True) in seen
    assert ("distillguard.erasure", "distillguard.link.memberships", False) in seen  # inside a function
    assert ("distillguard.ingest.jsonl", "distillguard.ingest.jsonl_rules", True) in seen  # relative or absolute


def test_no_import_circle_between_modules():
    graph = defaultdict(set)
    for me, target, _, _ in IMPORTS:
        if target != me:
            graph[me].add(target)
    assert _cycles(graph) == []


def test_no_import_circle_between_packages_at_import_time():
    graph = defaultdict(set)
    for me, target, _, eager in IMPORTS:
        if eager and _package(me) != _package(target):
            graph[_package(me)].add(_package(target))
    assert _cycles(graph) == []


def test_imports_follow_the_layers_except_the_known_upward_calls():
    rank = {p: i for i, p in enumerate(LAYERS)}
    upward = defaultdict(set)
    for me, target, _, _ in IMPORTS:
        a, b = _package(me), _package(target)
        assert a in rank and b in rank, f"{a} or {b} is missing from LAYERS"
        if rank[a] < rank[b]:
            upward[(a, b)].add(f"{me} -> {target}")
    assert set(upward) <= set(KNOWN_UPWARD), {k: sorted(v) for k, v in upward.items() if k not in KNOWN_UPWARD}
    assert set(KNOWN_UPWARD) <= set(upward), "a known upward call is gone: drop it from KNOWN_UPWARD"


def test_no_private_name_imported_from_another_package():
    private = [(me, target, name) for me, target, name, _ in IMPORTS
               if name and name.startswith("_") and not name.startswith("__") and _package(me) != _package(target)]
    assert private == []
