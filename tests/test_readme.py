"""The README's examples are code that runs: every ```python block, and every ```ipython block
(line by line, or as one cell when it starts with %%) in a real InteractiveShell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```(python|ipython)\n(.*?)^```", README.read_text(), re.M | re.S)


def test_readme_has_examples() -> None:
    kinds = [kind for kind, _ in BLOCKS]
    assert kinds.count("python") >= 2 and kinds.count("ipython") >= 2


@pytest.mark.parametrize(
    "source", [code for kind, code in BLOCKS if kind == "python"], ids=lambda s: s.split("\n")[0]
)
def test_python_block_runs(source: str) -> None:
    exec(compile(source, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize(
    "source", [code for kind, code in BLOCKS if kind == "ipython"], ids=lambda s: s.split("\n")[0]
)
def test_ipython_block_runs(shell, source: str) -> None:
    assert shell.run_cell("import torch").success
    if source.startswith("%%"):
        cells = [source]
    else:
        cells = [line.split("#")[0].strip() for line in source.splitlines()]
        cells = [c for c in cells if c]
    for cell in cells:
        result = shell.run_cell(cell)
        assert result.success, f"README cell failed: {cell!r}: {result.error_in_exec!r}"
