"""The package's layers follow the data flow: data -> text -> models -> train/evaluate -> serve.

Checked statically over every ``import`` in the source (module level and inside functions alike), through
the whole chain of imports, so a lazy import cannot hide a dependency that points the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recfuse

ROOT = Path(recfuse.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """``{module: modules of recfuse it imports}`` (``from recfuse.x import y`` counts ``recfuse.x.y`` when that
    is a module, else ``recfuse.x``)."""
    files = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("recfuse")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                if not base.startswith("recfuse"):
                    continue
                for a in node.names:
                    deps.add(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base)
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        graph[name] = {p for d in deps for p in _parents(d) if p in files}
    return graph


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(1, len(parts))]


def _reach(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module reachable from ``start``, with one import chain that reaches it."""
    chains = {start: [start]}
    todo = [start]
    while todo:
        here = todo.pop()
        for dep in sorted(graph.get(here, ())):
            if dep not in chains:
                chains[dep] = [*chains[here], dep]
                todo.append(dep)
    return chains


GRAPH = _graph()
RULES = [  # (layer, layers it must never reach)
    ("recfuse.data", ("recfuse.text", "recfuse.models", "recfuse.train", "recfuse.evaluate", "recfuse.serve")),
    ("recfuse.text", ("recfuse.models", "recfuse.train", "recfuse.evaluate", "recfuse.serve")),
    ("recfuse.models", ("recfuse.evaluate", "recfuse.serve")),
    ("recfuse.train", ("recfuse.serve",)),
    ("recfuse.evaluate", ("recfuse.serve",)),
    ("recfuse.llm", ("recfuse.evaluate", "recfuse.serve")),
]


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_no_import_points_against_the_data_flow(layer: str, forbidden: tuple[str, ...]) -> None:
    bad = []
    for module in sorted(m for m in GRAPH if m == layer or m.startswith(layer + ".")):
        for reached, chain in _reach(GRAPH, module).items():
            if any(reached == f or reached.startswith(f + ".") for f in forbidden):
                bad.append(" -> ".join(chain))
                break
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_the_graph_sees_lazy_imports() -> None:
    """The check would catch a wrong-way import inside a function (the fusion model imports its explainer so)."""
    assert "recfuse.models.fusion.explain" in GRAPH["recfuse.models.fusion.model"]
    assert "recfuse.models.fusion.config" in _reach(GRAPH, "recfuse.models")
