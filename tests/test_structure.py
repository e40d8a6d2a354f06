"""The shape of the house: no import cycles between the project's files, and no function over 80 lines outside
tests (KNOWN_LONG, once the list of known debts, is empty and may not grow; see docs/layout.md).

Imports anywhere in a file count (inside functions too), so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("octo", "pipelines", "midtrain", "rl", "eval", "study")
MAX_LINES = 80
# function -> its length when listed; a listed function may only get shorter (none is left: keep it so)
KNOWN_LONG: dict[str, int] = {}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every module name a file imports, with relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = {}
    for name, path in mods.items():
        targets = set()
        for target in imported(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            # a package importing its own submodules, or a module its own package, is not a cycle between files
            if (
                target
                and target != name
                and not target.startswith(name + ".")
                and not name.startswith(target + ".")
            ):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def long_functions() -> dict[str, int]:
    lengths = {}
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    lengths[f"{path.relative_to(ROOT)}:{node.name}"] = n
    return lengths


def test_no_import_cycles_between_files():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_new_long_functions_and_known_ones_do_not_grow():
    found = long_functions()
    new = {f: n for f, n in found.items() if f not in KNOWN_LONG}
    grown = {f: n for f, n in found.items() if f in KNOWN_LONG and n > KNOWN_LONG[f]}
    assert not new, f"functions over {MAX_LINES} lines: {new}"
    assert not grown, f"known long functions grew: {grown}"


STAGES = ("pipelines", "midtrain", "rl", "eval", "study")


def test_every_stage_has_the_same_public_shape():
    """load / dry_run / run in the package, argparse in cli.py, and a __main__.py that only calls cli.main()."""
    for name in STAGES:
        package = importlib.import_module(name)
        missing = [f for f in ("load", "dry_run", "run") if not callable(getattr(package, f, None))]
        assert not missing, f"{name} lacks {missing}"
        assert callable(importlib.import_module(f"{name}.cli").main)
        entry = (ROOT / name / "__main__.py").read_text()
        assert f"from {name}.cli import main" in entry and len(entry.splitlines()) <= 6, name
