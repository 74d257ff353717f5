"""The package's layers, declared once: no import runs up a layer, no two modules import each other.

A module may import modules of its own layer and of the layers below it. ``train``, ``eval`` and
``infer`` are peers on one layer and must not import one another (what two of them share lives below).
Internal imports sit at module top, so the graph below is the real one; only command modules (they load
their library when a command runs, so ``medmo --help`` stays instant) and the lazy export tables of
package ``__init__`` files import ``medmo`` modules inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "medmo"

# Bottom to top. A name is a module or a package prefix; the longest matching prefix decides.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("medmo",),  # core: records, boxes, answers, prompts, findings, gold
    ("medmo.data",),
    ("medmo.model",),
    ("medmo.train", "medmo.eval", "medmo.infer"),
    ("medmo.serve",),
    ("medmo.speedrun_report",),
    ("medmo.speedrun",),
    ("medmo.cli",),
)
COMMAND_MODULES = ("medmo.cli", "medmo.speedrun")  # and every ``*.cli`` module


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> tuple[int, str]:
    """(layer index, the group name within the layer) of a module."""
    best = (-1, "", "")
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best[2]):
                best = (i, name, name)
    return best[0], best[1]


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """``(imported medmo module, inside a function, line)`` for every internal import of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medmo") and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names]
            targets = [n for n in names if n in MODULES] or [node.module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == "medmo"]
        else:
            continue
        inner, n = False, node
        while n in parents:
            n = parents[n]
            inner = inner or isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        out += [(t, inner, node.lineno) for t in targets if t in MODULES]
    return out


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _is_command(module: str) -> bool:
    return module in COMMAND_MODULES or module.endswith(".cli")


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m)[0] < 0] == []


def test_no_import_runs_up_a_layer_or_across_peers():
    wrong = []
    for module, imports in GRAPH.items():
        here, group = _layer(module)
        for target, _, line in imports:
            there, other = _layer(target)
            if there > here or (there == here and other != group):
                wrong.append(f"{module}:{line} imports {target}")
    assert wrong == []


def test_no_cycle_between_modules():
    edges = {m: {t for t, _, _ in imports if t != m} for m, imports in GRAPH.items()}
    # a package's __init__ re-exporting its submodules is not a cycle of two modules' logic
    for m in edges:
        edges[m] = {t for t in edges[m] if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if seen.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in seen:
                visit(t)
        stack.pop()
        seen[m] = 2

    for m in sorted(edges):
        if m not in seen:
            visit(m)
    assert cycles == []


def test_internal_imports_sit_at_module_top():
    inner = [f"{m}:{line} imports {t}" for m, imports in GRAPH.items() for t, is_inner, line in imports
             if is_inner and not _is_command(m) and MODULES[m].name != "__init__.py"]  # fmt: skip
    assert inner == []


@pytest.mark.parametrize("probe", ["medmo.data.images", "medmo.eval.tasks", "medmo.prompts"])
def test_the_checker_sees_the_real_graph(probe):
    # guards the checker itself: these modules do import other medmo modules
    assert GRAPH[probe]
