"""The panel's "Verify this notebook" with real ipywidgets and real kernels (verify's own).

The browser tests (tests/browser/test_panel_verify_browser.py) click it in JupyterLab 4
and Notebook 7; here the widget logic: the background thread, the progress frames, the
verdict, the report, and which notebook the kernel serves.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import repro
from repro._panel import _descendants
from repro._panel_verify import VerifySection, notebook_path

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("panel-verify")]


def write(path: Path, *sources: str) -> Path:
    cells = [new_markdown_cell("# analysis"), *(new_code_cell(s) for s in sources)]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_verify_runs_in_the_background_and_names_the_cell(tmp_path: Path, capsys) -> None:
    notebook = write(
        tmp_path / "bad.ipynb",
        "import numpy as np",
        "noise = np.random.default_rng().normal(size=4)",  # cell 3: seeded by the OS
        "noise.sum()",
    )
    section = VerifySection(locate=lambda: notebook)
    frames: list[str] = []
    section.progress.observe(lambda change: frames.append(change["new"]), names="value")
    stderr = sys.stderr

    section.button.click()
    # The click returned while verify runs (its kernels take seconds to start).
    assert section.thread is not None and section.thread.is_alive()
    assert section.button.disabled
    print("written by the kernel's own thread meanwhile", file=sys.stderr)
    section.thread.join(timeout=600)

    assert not section.thread.is_alive() and not section.button.disabled
    assert sys.stderr is stderr  # the progress capture put the stream back
    assert "written by the kernel's own thread meanwhile" in capsys.readouterr().err
    assert "verifying bad.ipynb" in frames[0]
    assert any(re.search(r"\d+/\d+", frame) for frame in frames[1:]), frames  # verify's bar
    assert section.progress.value == ""
    assert re.search(r"NOT reproducible: cell 3\b", section.verdict.value)
    assert "repro-bad" in section.verdict.value
    assert "noise" in section.report.value  # the report: what differs in cell 3
    assert section.cell_button.description == "cell 3"
    # No frontend bridge here (no ipylab answering): the verdict names the cell in text.
    assert section.cell_button.layout.display == "none"


def test_a_reproducible_notebook(tmp_path: Path) -> None:
    notebook = write(tmp_path / "good.ipynb", "import numpy as np\nnp.arange(3.0).sum()")
    section = VerifySection(locate=lambda: notebook)
    section.button.click()
    assert section.thread is not None
    section.thread.join(timeout=600)
    assert re.search(r">reproducible\b", section.verdict.value)
    assert "repro-ok" in section.verdict.value
    assert section.cell_button.layout.display == "none"


def test_no_notebook_to_verify_is_said() -> None:
    section = VerifySection(locate=lambda: None)
    section.button.click()
    assert section.thread is None and not section.button.disabled
    assert "cannot tell which notebook this kernel serves" in section.verdict.value


def test_which_notebook_the_kernel_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = write(tmp_path / "here.ipynb", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert notebook_path() is None
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))  # jupyter_server 2: the full path
    assert notebook_path() == notebook
    monkeypatch.setenv("JPY_SESSION_NAME", "project/here.ipynb")  # older: from the root
    assert notebook_path() == tmp_path / "here.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", "project/gone.ipynb")
    assert notebook_path() is None


def test_the_panel_has_the_section() -> None:
    p = repro.panel()
    try:
        assert isinstance(p.verify, VerifySection)
        assert p.verify in list(_descendants(p))
        assert p.verify.button.description == "Verify this notebook"
    finally:
        p.close()
