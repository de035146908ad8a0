"""What a newcomer meets first, in real JupyterLab 4 in Chromium: the quickstart as opened
(before anything runs, its saved panel shows as it was), and the panel with a ten-digit seed
(the layout holds still, the hashing warning shows its code as code and its fix as a button)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.browser.test_panel_browser import (
    PANEL,
    POLL_MS,
    open_notebook,
    run_cell,
    screenshot_panel,
    unexpected_page_errors,
    use_theme,
    wait_for,
    wait_panel_contains,
)

# The same server as the other browser tests: the same pytest-xdist worker.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(2400), pytest.mark.xdist_group("browser")]

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "01-quickstart.ipynb"


def test_lab_quickstart_opens_showing_the_saved_panel(page: Any, jupyter_server: Any) -> None:
    shutil.copy(QUICKSTART, jupyter_server.root / "quickstart.ipynb")
    use_theme(jupyter_server, "JupyterLab Light")
    page.goto(jupyter_server.url + "lab/workspaces/quickstart/tree/quickstart.ipynb?reset")
    wait_for(page, ".jp-Notebook .jp-Cell")
    # Nothing runs: the panel cell's saved output is what the reader sees. JupyterLab draws
    # only the cells near the view, so the panel's cell is scrolled to first.
    index = page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " if (!w || !w.context || !w.context.isReady || !w.content) return false;"
        " const nb = w.content;"
        " const i = nb.widgets.findIndex(c => c.model.sharedModel.getSource() === '%repro panel');"
        " if (i < 0) return false;"
        " nb.activeCellIndex = i; nb.scrollToCell(nb.widgets[i]); return i; }",
        polling=POLL_MS,
    ).json_value()
    assert index > 0
    output = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")
    page.wait_for_function(
        "el => el.textContent.includes('Backend settings')",
        arg=output.element_handle(),
        polling=POLL_MS,
    )
    shown = output.inner_text()
    output.screenshot(path=str(page.artifacts / "quickstart-as-opened-lab.png"))
    # The panel as it was: its head, both tables and the warning, whole, with no cut line.
    for text in ("seed 42", "profile debug", "Sources of randomness", "Python random"):
        assert text in shown, shown
    assert "str hashing" in shown and "run the cell for the live panel" in shown
    assert not [line for line in shown.splitlines() if line.rstrip().endswith("…")], shown
    assert "widgets draw" not in shown and "`" not in shown
    # The executions counts show it was not run here (no kernel executed anything).
    assert page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status"
        " !== 'busy'"
    )
    assert not unexpected_page_errors(page)


def layout(page: Any) -> dict[str, float]:
    """Where the panel's tables sit, in pixels from the panel's top left corner."""
    return page.evaluate(
        "() => { const box = s => document.querySelector(s).getBoundingClientRect();"
        " const p = '.repro-panel '; const o = box('.repro-panel');"
        " const a = box(p + 'table.repro-sources'); const b = box(p + 'table.repro-settings');"
        " const r = x => Math.round(x);"
        " return {sources_top: r(a.top - o.top), sources_width: r(a.width),"
        " settings_left: r(b.left - o.left), settings_top: r(b.top - o.top),"
        " panel_height: r(o.height)}; }"
    )


def test_lab_panel_holds_still_with_a_ten_digit_seed(page: Any, jupyter_server: Any) -> None:
    jupyter_server.write_notebook(
        "ten-digits.ipynb",
        ["import numpy, torch\n%load_ext repro\n%repro 42 -p final -q\n%repro panel"],
    )
    use_theme(jupyter_server, "JupyterLab Light")
    open_notebook(page, jupyter_server, "lab/workspaces/ten-digits/tree/ten-digits.ipynb?reset")
    # The file browser closed, as on a laptop's full-width notebook: room for both tables.
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    run_cell(page, 0)
    wait_for(page, PANEL)
    wait_panel_contains(page, ".repro-head", "seed 42")
    wait_panel_contains(page, "table.repro-sources", "torch")
    before = layout(page)
    assert before["settings_top"] == before["sources_top"], before  # side by side
    screenshot_panel(page, "panel-seed-42-lab.png")

    seed_box = page.locator(f"{PANEL} input[type='text']").first
    seed_box.fill("3141592653")
    page.locator(f"{PANEL} button", has_text="Apply").click()
    wait_panel_contains(page, ".repro-head", "seed 3141592653")
    wait_panel_contains(page, "table.repro-sources", "3141592653")
    assert layout(page) == before
    screenshot_panel(page, "panel-ten-digit-seed-lab.png")

    old = page.locator(f"{PANEL} .repro-head").inner_text()
    page.locator(f"{PANEL} button", has_text="New random seed").click()
    page.wait_for_function(
        "old => document.querySelector('.repro-panel .repro-head').innerText !== old",
        arg=old,
        polling=POLL_MS,
    )
    wait_panel_contains(page, ".repro-status", "new seed")
    after = layout(page)
    assert {k: v for k, v in after.items() if k != "panel_height"} == {
        k: v for k, v in before.items() if k != "panel_height"
    }  # the status line under the tables may wrap: the tables themselves do not move
    screenshot_panel(page, "panel-new-random-seed-lab.png")

    warnings = page.locator(f"{PANEL} ul.repro-warnings")
    if warnings.count() and "str hashing" in warnings.inner_text():
        # Code as code, no backticks; and the fix one click away.
        assert "`" not in warnings.inner_text()
        assert "%repro kernel install" in warnings.locator("code").first.inner_text()
        page.locator(f"{PANEL} button", has_text="Install a kernel with fixed hashing").click()
        wait_panel_contains(page, ".repro-status", "Change Kernel")
        installed = jupyter_server.root.parent / "data" / "kernels" / "repro" / "kernel.json"
        assert '"PYTHONHASHSEED": "0"' in installed.read_text()
        screenshot_panel(page, "panel-kernel-installed-lab.png")
    assert not unexpected_page_errors(page)
