"""The house's arrows point down: every import of every module under src/repro, read with ``ast``.

Every import counts, at any depth: a lazy one inside a function is still an arrow (it runs
the first time the function does). The layers, from the top:

- the face: ``repro`` itself (``__init__.py``); nothing below it imports it;
- the shells: ``%repro`` (``_magics``), the panel, the command line, a pytest plugin: they
  parse, call and show, and may use each other;
- above the session: ``repro.launch``, verify and the notebook hosts (any module named for
  them: ``*launch``, ``*verify*``, ``_notebook*``);
- the core: every other module (a new module lands here unless its name says otherwise);
- the plugin interface, ``repro.frameworks``;
- the leaves, which import nothing but other leaves (the declared ones, and any module that
  imports nothing of repro).

A module may import its own layer and the layers below; no two private modules import each
other, directly or around a cycle. A failure names the offending edge and its line.
"""

from __future__ import annotations

import ast
import itertools
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Modules that import nothing of repro but other leaves (what any layer may use).
LEAVES = frozenset(
    {
        "repro._bounds",
        "repro._cell",
        "repro._diagnostics",
        "repro._environ",
        "repro._extension",
        "repro._ranks",
        "repro._seed",
        "repro._shown",
        "repro._version",
        "repro._warning",
    }
)
SHELLS = frozenset({"repro._magics", "repro._panel", "repro.cli", "repro.__main__"})

#: Edges that break the rules today in modules whose reshaping is another change's (verify's
#: ``import repro`` for ``repro.scope`` and ``__version__``): listed so that every other module
#: is held to the rules now. Remove an entry with its fix; an entry no import matches is ignored.
KNOWN: frozenset[tuple[str, str]] = frozenset()  # verify's entries went with repro._verify


def layer(module: str, leaves: frozenset[str] = LEAVES) -> tuple[int, str]:
    """(height, name) of ``module``'s layer: the face is highest, the leaves lowest."""
    last = module.rsplit(".", 1)[-1]
    if module == "repro":
        return 5, "the face (repro)"
    if module.startswith("repro.frameworks"):
        return 1, "the plugin interface (repro.frameworks)"
    if module in SHELLS or "pytest" in module:
        return 4, "a shell"
    if "verify" in module or last in ("_launch", "launch") or last.startswith("_notebook"):
        return 3, "above the session (launch, verify, notebook hosts)"
    if module in leaves:
        return 0, "a leaf"
    return 2, "the core"


class Edge(NamedTuple):
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def module_name(path: Path, root: Path = SRC) -> str:
    """``repro._session`` for ``src/repro/_session.py``; a package is named by its folder."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = SRC) -> dict[str, Path]:
    """Every module of the ``repro`` package under ``root``, by name."""
    return {module_name(p, root): p for p in sorted((root / "repro").rglob("*.py"))}


def imports(name: str, path: Path, known: set[str] | dict[str, Path]) -> Iterator[Edge]:
    """Every import of a repro module by ``name``, at any depth, relative ones resolved.

    ``from repro import X`` is an import of ``repro.X`` where that is a module, else of
    ``repro`` itself (a name the face exports).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target == "repro" or target.startswith("repro."):
                yield Edge(name, target, node.lineno)


def edges(root: Path = SRC) -> list[Edge]:
    """Every import between repro's modules."""
    found = modules(root)
    return [edge for name, path in found.items() for edge in imports(name, path, found)]


def upward(found: list[Edge], names: set[str] | dict[str, Path]) -> list[str]:
    """The edges that point up a layer, or at the face, each with why it is refused.

    ``names`` are all the modules: one that imports nothing of repro is a leaf too.
    """
    leaves = LEAVES | (set(names) - {edge.source for edge in found})
    bad = []
    for edge in found:
        if (edge.source, edge.target) in KNOWN or edge.source == edge.target:
            continue
        here, here_name = layer(edge.source, leaves)
        there, there_name = layer(edge.target, leaves)
        if edge.target == "repro" and edge.source != "repro":
            bad.append(f"{edge}: nothing below the face imports the public repro package")
        elif there > here:
            bad.append(f"{edge}: {here_name} may not import {there_name}")
    return bad


def cycles(found: list[Edge]) -> list[list[Edge]]:
    """One cycle of imports per strongly connected group of private modules (the face aside)."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in found:
        if "repro" in (edge.source, edge.target) or (edge.source, edge.target) in KNOWN:
            continue
        if edge.source != edge.target:
            graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
    found_cycles: list[list[Edge]] = []
    done: set[str] = set()
    for start in sorted(graph):
        # Depth-first from each module not yet in a reported cycle; a back edge closes one.
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, {}))))]
        path = [start]
        on_path = {start}
        visited = {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                continue
            if child in on_path:
                loop = [*path[path.index(child) :], child]
                if not done & set(loop):
                    found_cycles.append([graph[a][b] for a, b in itertools.pairwise(loop)])
                    done |= set(loop)
                continue
            if child not in visited:
                visited.add(child)
                stack.append((child, iter(sorted(graph.get(child, {})))))
                path.append(child)
                on_path.add(child)
    return found_cycles


# --- the house --------------------------------------------------------------------------


def test_every_arrow_points_down() -> None:
    bad = upward(edges(), modules())
    assert not bad, "imports against the layers:\n  " + "\n  ".join(bad)


def test_no_private_modules_import_each_other_around_a_cycle() -> None:
    found = cycles(edges())
    text = ["\n    ".join(map(str, cycle)) for cycle in found]
    assert not found, "import cycles:\n    " + "\n\n    ".join(text)


def test_the_leaves_are_there_and_every_module_has_a_layer() -> None:
    found = modules()
    assert found.keys() >= LEAVES, sorted(LEAVES - found.keys())
    assert found.keys() >= SHELLS, sorted(SHELLS - found.keys())
    by_layer: dict[str, list[str]] = {}
    for name in found:
        by_layer.setdefault(layer(name)[1], []).append(name)
    # The house as it stands: every layer holds something (else the rules guard nothing).
    assert len(by_layer) == 6, by_layer


# --- the reader itself, on a small made-up package --------------------------------------


@pytest.fixture
def package(tmp_path: Path) -> Path:
    files = {
        "repro/__init__.py": "from repro._core import run\n",
        "repro/_core.py": """
            from . import _leaf
            def later():
                from repro import _panel  # lazy, still an arrow
        """,
        "repro/_leaf.py": "import os\n",
        "repro/_panel.py": "from repro._core import later\n",
        "repro/verify/__init__.py": "from .. import _core\nfrom ._host import run\n",
        "repro/verify/_host.py": """
            import repro
            from repro import _leaf, __version__
        """,
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def test_lazy_and_relative_imports_are_read(package: Path) -> None:
    found = {(e.source, e.target) for e in edges(package)}
    assert ("repro._core", "repro._leaf") in found  # from . import _leaf
    assert ("repro._core", "repro._panel") in found  # inside a function
    assert ("repro.verify", "repro._core") in found  # from .. import _core
    assert ("repro.verify", "repro.verify._host") in found  # from ._host import run
    assert ("repro.verify._host", "repro._leaf") in found  # a submodule by from-import
    assert ("repro.verify._host", "repro") in found  # import repro, and __version__ from it


def test_an_upward_edge_and_a_cycle_are_named(package: Path) -> None:
    found = edges(package)
    bad = upward(found, modules(package))
    assert "repro._core (line 4) imports repro._panel: the core may not import a shell" in bad
    assert (
        "repro.verify._host (line 2) imports repro: nothing below the face imports the "
        "public repro package" in bad
    )
    loops = cycles(found)
    assert len(loops) == 1
    assert {str(edge) for edge in loops[0]} == {
        "repro._core (line 4) imports repro._panel",
        "repro._panel (line 1) imports repro._core",
    }
