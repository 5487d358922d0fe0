"""The layout is part of the design: packages import only the packages below them, no module
imports itself round a circle (lazy imports inside functions included), configuration depends
on nothing else of qa, and no class grows past about 150 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "qa"

# what each package may import (besides itself); modules at the top (build, cli...) may import all
LAYERS = {
    "config": set(),
    "errors": set(),
    "ingest": {"config", "errors"},
    "embed": {"config", "errors"},
    "store": {"config", "errors", "ingest", "embed"},
    "retrieve": {"config", "errors", "ingest", "embed", "store"},
    "present": {"config", "errors", "ingest", "embed", "store", "retrieve"},
}
MAX_CLASS_LINES = 150


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The qa modules a file imports, anywhere in it (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("qa"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qa"):
            for alias in node.names:  # `from qa.store import local` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known and m != "qa"}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "qa"


def test_packages_import_only_the_layers_below_them():
    wrong = [
        (module, target)
        for module, targets in graph().items()
        for target in targets
        if package(module) in LAYERS
        and package(target) != package(module)
        and package(target) not in LAYERS[package(module)]
    ]
    assert wrong == []


def test_no_import_circles():
    edges = graph()
    cycles = []

    def visit(node: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        for nxt in sorted(edges[node]):
            if nxt in on_path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                on_path.add(nxt)
                visit(nxt, path + [nxt], on_path, done)
                on_path.discard(nxt)
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        if start not in done:
            visit(start, [start], {start}, done)
    assert cycles == []


def test_configuration_depends_on_nothing_else_of_qa():
    assert graph()["qa.config"] == set()


def test_the_checker_sees_lazy_imports_and_submodules():
    """The graph would miss circles if it missed imports inside functions."""
    edges = graph()
    assert "qa.retrieve.searcher" in edges["qa.cli"]  # imported inside a command function
    assert "qa.store.local" in edges["qa.store"]  # `from qa.store.local import LocalStore`


def test_no_class_is_longer_than_about_150_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno >= MAX_CLASS_LINES:
                long.append((module_name(path), node.name, node.end_lineno - node.lineno + 1))
    assert long == []
