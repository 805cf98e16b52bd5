"""The import structure DESIGN promises: one direction between packages, no cycles inside
the server, and nothing in the server importing `zkserver` (the wiring) but the CLI.

Read from the source with `ast`, so a violation fails here before it becomes a tangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("znodes", "client", "recipes", "server")
# Which packages each may import (ccore.<name>); DESIGN's one direction.
ALLOWED = {
    "znodes": set(),
    "client": {"znodes"},
    "recipes": {"znodes", "client"},
    "server": {"znodes"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names (without the ccore. prefix) of the project modules `path` imports,
    at module level or in functions, TYPE_CHECKING blocks included."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule (pkg itself is already loading);
            # `from pkg.mod import name` imports pkg.mod.
            subs = [f"{module}.{a.name}" for a in node.names]
            names = subs if not node.module else [module]
        else:
            continue
        for name in names:
            if name.startswith("ccore."):
                name = name[len("ccore.") :]
            if name.split(".")[0] in PACKAGES:
                found.add(name)
    return found


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in (ROOT / package).rglob("*.py")}


def test_packages_import_in_one_direction():
    bad = []
    for package in PACKAGES:
        for name, path in _modules(package).items():
            for imported in _imports(path):
                top = imported.split(".")[0]
                if top != package and top not in ALLOWED[package]:
                    bad.append(f"{name} imports {imported}")
    assert not bad, "\n".join(bad)


def _server_graph() -> dict[str, set[str]]:
    """server modules (outside zab/ and storage/, which are packages of their own) -> the
    server modules they import."""
    modules = _modules("server")
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported in _imports(path):
            # Names inside a module (`from .x import Y` gives server.x): keep real modules.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported.startswith("server"):
                edges.add(imported)
        graph[name] = edges
    return graph


def test_only_the_cli_imports_the_server_wiring():
    importers = sorted(name for name, edges in _server_graph().items() if "server.zkserver" in edges)
    assert importers == ["server.cli"]


def test_no_import_cycles_among_server_modules():
    """The Zab core and its role modules may keep theirs (as etcd-raft's raft.go does)."""
    graph = {
        n: {e for e in edges if not e.startswith("server.zab")}
        for n, edges in _server_graph().items()
        if not n.startswith("server.zab")
    }
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


# The client and the recipes run on Trio and on asyncio: they are written against anyio, and
# only client/_loop.py (the hot path's Event, chosen for the running loop) names a loop.
LOOP_MODULES = ("trio", "asyncio")
LOOP_ALLOWED = {"client._loop"}


def test_client_and_recipes_name_no_event_loop():
    bad = []
    for package in ("client", "recipes"):
        for name, path in _modules(package).items():
            if name in LOOP_ALLOWED:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                bad += [f"{name} imports {n}" for n in names if n.split(".")[0] in LOOP_MODULES]
    assert not bad, "\n".join(bad)
