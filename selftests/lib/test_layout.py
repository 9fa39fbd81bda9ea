"""The package's shape, as a ratchet for the redesign (issue 11): no new import circle, no
module growing past the size limit, no new place that re-decides the target by its name.

What is already wrong is listed here with today's figure and may only shrink; when an entry
is fixed, the test says to remove it, so the lists end empty and the limits become plain
rules. Imports under `TYPE_CHECKING` count: a circle hidden from the interpreter is still
one for a reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "signcheck"

MAX_LINES = 450
OVERSIZE: dict[str, int] = {}
"""Modules over the limit, with their line counts (they may not grow). None left."""

KNOWN_CYCLES: list[set[str]] = []
"""None left: `scenarios` and `teardown_probe` take a `runcontext.RunContext`, no longer
`run.RunResources` (which imported them while they imported it under TYPE_CHECKING)."""

TARGET_NAME_CHECKS: dict[str, int] = {}
"""`== "local"`-style comparisons outside `target.py` and `providers/`: none left (`target.KINDS`
holds what a target's name means, as behaviour flags)."""

_TARGET_COMPARISON = re.compile(
    r'(==|!=) "(local|cluster|yandex)"|"(local|cluster|yandex)" (==|!=)'
    r'|in \("(local|cluster|yandex)"'
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in modules else base)
    return {m for m in out if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_new_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles = _cycles(graph)
    new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not new, f"import circles (TYPE_CHECKING imports count): {new}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in cycles]
    assert not gone, f"fixed, remove from KNOWN_CYCLES: {gone}"


def test_cycle_finder_sees_a_circle() -> None:
    # The control: the finder is not blind (a graph with a circle and a tail).
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]


def test_module_sizes() -> None:
    sizes = {
        str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    over = {m: n for m, n in sizes.items() if n > MAX_LINES and n > OVERSIZE.get(m, 0)}
    assert not over, f"modules over {MAX_LINES} lines (split them by concern): {over}"
    fixed = [m for m in OVERSIZE if sizes.get(m, 0) <= MAX_LINES]
    assert not fixed, f"now within {MAX_LINES} lines, remove from OVERSIZE: {fixed}"
    shrunk = {m: sizes[m] for m in OVERSIZE if m in sizes and sizes[m] < OVERSIZE[m]}
    assert not shrunk, f"shrank: lower OVERSIZE to the new counts: {shrunk}"


def test_target_chosen_by_name_only_in_its_place() -> None:
    counts = {}
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        if rel == "target.py" or rel.startswith("providers/"):
            continue
        n = len(_TARGET_COMPARISON.findall(path.read_text()))
        if n:
            counts[rel] = n
    grown = {m: n for m, n in counts.items() if n > TARGET_NAME_CHECKS.get(m, 0)}
    assert not grown, (
        f"new target-name comparisons (use a behaviour flag on Target instead): {grown}"
    )
    assert counts == TARGET_NAME_CHECKS, (
        f"fewer comparisons than listed: set TARGET_NAME_CHECKS to {counts}"
    )
