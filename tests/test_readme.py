"""The README's examples run as pasted: each ```python and ```ipython block in a fresh kernel.

Each block is one cell of its own notebook, executed by nbclient in a new ``python3``
kernel, with nothing imported before it. A ``%%repro`` block runs after one cell of
``%load_ext repro`` (a cell magic must open its cell; the README says so). A marker on
the line above a block changes how it is run, and says why in the README itself:

- ``<!-- readme-test: each line -->``: a reference list with a comment on each line; each
  line (its comment removed) runs as a cell of its own, in order, in one fresh kernel.
- ``<!-- readme-test: illustrative: WHY -->``: not a cell (a script for torchrun, say): it is
  only compiled, and WHY must say what it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"^(?:<!-- readme-test: (?P<marker>[^\n]*?) -->\n)?"
    r"```(?P<kind>python|ipython)\n(?P<code>.*?)^```",
    re.M | re.S,
)
BLOCKS = [(m["kind"], m["marker"], m["code"]) for m in BLOCK.finditer(README.read_text())]
#: Per cell: a guard against a hung kernel (a loaded 2-core machine starts one slowly).
TIMEOUT_S = 600


def cells_of(kind: str, marker: str | None, code: str) -> list[str]:
    """The cells a block runs as, in a fresh kernel."""
    if marker == "each line":
        lines = [line.split("#")[0].strip() for line in code.splitlines()]
        return [line for line in lines if line]
    if code.startswith("%%"):
        return ["%load_ext repro", code]
    return [code]


def run_in_fresh_kernel(cells: list[str], folder: Path) -> list[Any]:
    """Execute ``cells`` as a notebook in a new kernel started in ``folder``; raise on an error."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=TIMEOUT_S,
        startup_timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    return nb.cells


def test_readme_has_examples_and_knows_its_markers() -> None:
    kinds = [kind for kind, _, _ in BLOCKS]
    assert kinds.count("python") >= 2 and kinds.count("ipython") >= 2
    for _, marker, code in BLOCKS:
        assert (
            marker is None
            or marker == "each line"
            or (marker.startswith("illustrative: ") and len(marker) > len("illustrative: ") + 10)
        ), f"unknown or unexplained readme-test marker {marker!r} above:\n{code}"


RUN = [b for b in BLOCKS if not (b[1] or "").startswith("illustrative")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "marker", "code"), RUN, ids=[f"{k}:{c.splitlines()[0][:40]}" for k, _, c in RUN]
)
def test_block_runs_as_pasted_in_a_fresh_kernel(
    kind: str, marker: str | None, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `%repro kernel install` writes a kernelspec: into a folder of the test's, not the user's.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    cells = run_in_fresh_kernel(cells_of(kind, marker, code), tmp_path)
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, "\n".join("\n".join(e.traceback) for e in errors)


@pytest.mark.parametrize(
    "code", [c for _, m, c in BLOCKS if (m or "").startswith("illustrative")] or [None]
)
def test_illustrative_blocks_are_still_valid_python(code: str | None) -> None:
    if code is None:
        pytest.skip("no illustrative block in the README")
    compile(code, "README.md", "exec")


def test_a_block_that_needs_what_it_does_not_import_fails_here(tmp_path: Path) -> None:
    # The check itself can fail: the README's old %%repro --verify snippet used torch unimported.
    old = "%%repro 42 --verify\nx = torch.randn(1000)\n"
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="NameError"):
        run_in_fresh_kernel(cells_of("ipython", None, old), tmp_path)
