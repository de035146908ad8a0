"""The panel's "Verify this notebook" in real JupyterLab 4 and Notebook 7, in Chromium.

A click runs ``repro verify`` on the notebook the panel is in, in the background: the
kernel runs another cell meanwhile, the panel shows verify's progress, then the verdict
and the report, and the button named after the first differing cell selects that cell.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.browser.test_panel_browser import (
    NOTEBOOK7_OWN_ERRORS,
    PANEL,
    POLL_MS,
    open_notebook,
    run_cell,
    unexpected_page_errors,
    use_theme,
    wait_for,
    wait_panel_contains,
    wait_theme,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(2400), pytest.mark.xdist_group("browser")]

#: Cell 3 (index 2) draws from a generator the OS seeds: verify must name it.
CELLS = [
    "%load_ext repro\n%repro panel",
    "import numpy as np",
    "noise = np.random.default_rng().normal(size=4)",
    "noise.sum()",
    "print('kernel answers', 6 * 7)",
]

SECTION = f"{PANEL} .repro-verify-notebook"


def verify_and_use_the_kernel_meanwhile(page: Any) -> None:
    """Click verify; while it runs, run the last cell; wait for the verdict naming cell 3."""
    run_cell(page, 0)
    wait_for(page, PANEL)
    page.locator(f"{SECTION} button", has_text="Verify this notebook").click()
    wait_panel_contains(page, ".repro-verify-progress", "verifying")
    out = run_cell(page, len(CELLS) - 1)
    assert "kernel answers 42" in out, out
    # The cell ran while verify was still at work: no verdict yet.
    assert page.locator(f"{SECTION} .repro-verify-verdict").inner_text() == ""
    page.wait_for_function(
        "sel => { const el = document.querySelector(sel);"
        " return el && /\\d+\\/\\d+/.test(el.textContent); }",
        arg=f"{SECTION} .repro-verify-progress",
        polling=POLL_MS,
    )  # verify's own progress frames: run N ███░░ k/n cells
    frontend = page.evaluate("() => window.jupyterapp.name").split()[-1].lower()
    screenshot_section(page, f"panel-verify-progress-{frontend}.png")
    wait_panel_contains(page, ".repro-verify-verdict", "NOT reproducible: cell 3 ")
    assert "noise" in page.locator(f"{SECTION} pre").inner_text()


def select_cell_from_the_verdict(page: Any) -> None:
    """The active cell is the last one (it just ran); the cell's name selects cell 3."""
    active = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
    assert page.evaluate(active) == len(CELLS) - 1
    page.locator(f"{SECTION} button", has_text="cell 3").click()
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2",
        polling=POLL_MS,
    )
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.mode") == "command"


def screenshot_section(page: Any, name: str) -> None:
    page.locator(PANEL).screenshot(path=str(page.artifacts / name))


def test_lab_verify_this_notebook(page: Any, jupyter_server: Any) -> None:
    jupyter_server.write_notebook("verify-lab.ipynb", CELLS)
    use_theme(jupyter_server, "JupyterLab Light")
    open_notebook(page, jupyter_server, "lab/workspaces/verify-lab/tree/verify-lab.ipynb?reset")
    wait_theme(page, "JupyterLab Light")
    verify_and_use_the_kernel_meanwhile(page)
    screenshot_section(page, "panel-verify-lab-light.png")
    select_cell_from_the_verdict(page)
    assert not unexpected_page_errors(page)


def test_notebook7_verify_this_notebook(page: Any, jupyter_server: Any) -> None:
    jupyter_server.write_notebook("verify-nb7.ipynb", CELLS)
    use_theme(jupyter_server, "JupyterLab Dark")
    open_notebook(page, jupyter_server, "notebooks/verify-nb7.ipynb")
    wait_theme(page, "JupyterLab Dark")
    assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
    verify_and_use_the_kernel_meanwhile(page)
    screenshot_section(page, "panel-verify-notebook7-dark.png")
    select_cell_from_the_verdict(page)
    assert not unexpected_page_errors(page, NOTEBOOK7_OWN_ERRORS)
