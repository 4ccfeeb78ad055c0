"""Shape of the code: no function in the package grows past what a reader can hold at once."""
from __future__ import annotations

import ast
from pathlib import Path

import distillguard

MAX_FUNCTION_LINES = 120
"""Lines from ``def`` to the function's last line (nested functions count inside their parent too)."""


def long_functions(source: str, where: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``where:line name (n lines)`` for every function in ``source`` longer than ``limit``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append(f"{where}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_the_measure_finds_a_long_function_and_names_it():
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    src = f"def short():\n    pass\n\n\nclass K:\n    async def long_one(self):\n{body}\n"
    assert long_functions(src, "k.py") == [f"k.py:6 long_one ({MAX_FUNCTION_LINES + 1} lines)"]


def test_no_function_in_the_package_is_over_the_limit():
    root = Path(distillguard.__file__).parent
    found = [f for p in sorted(root.rglob("*.py"))
             for f in long_functions(p.read_text(encoding="utf-8"), str(p.relative_to(root.parent)))]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines (split them along their steps):\n" + "\n".join(found)
