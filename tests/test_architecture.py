"""The package's shape: dependencies point one way through the layers, no import cycles, small modules.

The import graph comes from grimp (import-linter's engine), which reads every import statement of every
module, including imports inside functions; only imports under `if TYPE_CHECKING:` are left out (they
never run). See docs/architecture.md for what each layer owns.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

#: Top to bottom. A module may import its own layer and the ones below it, never one above.
LAYERS = [
    "squad.__main__",
    "squad.cli",
    "squad.github",
    "squad.orchestration",
    "squad.agents",
    "squad.models",
    "squad.infra",
    "squad.domain",
    "squad.config",
    "squad.errors",
]
PACKAGE = Path(__file__).resolve().parent.parent / "squad"
MAX_LINES = 500


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("squad", exclude_type_checking_imports=True, cache_dir=None)


def test_every_module_is_in_a_layer(graph: grimp.ImportGraph) -> None:
    stray = [
        m for m in graph.modules if m != "squad" and not any(m == lay or m.startswith(lay + ".") for lay in LAYERS)
    ]
    assert stray == [], "add these to a layer (and to docs/architecture.md)"


def test_dependencies_point_down_the_layers(graph: grimp.ImportGraph) -> None:
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS)
    problems = []
    for dep in sorted(illegal, key=lambda d: (d.importer, d.imported)):
        for route in dep.routes:
            chain = " -> ".join([*route.heads, *route.middle, *route.tails])
            problems.append(f"{dep.importer} -> {dep.imported}: {chain}")
    assert problems == [], "\n".join(problems)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    g = grimp.ImportGraph()
    for module in ("p.a", "p.b", "p.c"):
        g.add_module(module)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.c")
    g.add_import(importer="p.c", imported="p.a")
    assert _cycles(g) == [["p.a", "p.b", "p.c"]]


def test_no_module_is_too_long_to_change_safely() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_orchestration_never_builds_git_argv() -> None:
    """Only the workspace writes branches; the orchestration asks it (no `run_git`, no git subprocess)."""
    for path in (PACKAGE / "orchestration").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "run_git" not in text and '"git"' not in text, path
