"""The panel in real JupyterLab 4 and Notebook 7, in Chromium: its buttons change the kernel,
it follows the cells that run, and export inserts the config cell below the panel's cell."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ARTIFACTS, Server

pytest.importorskip("ipylab")

# A server start, a kernel start and a page load each take seconds; on a busy CI machine, more.
pytestmark = pytest.mark.timeout(900)

CELLS = [
    "%load_ext repro\n%repro panel",
    "import sys, torch\n"
    "print('FLAGS', torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,\n"
    "      torch.are_deterministic_algorithms_enabled(),\n"
    "      torch.is_deterministic_algorithms_warn_only_enabled())\n"
    "print('PYTHON', sys.executable)",
    "import random\nrandom.random()",
]

PANEL = ".repro-panel"


# --- driving a notebook like a person ------------------------------------------------


def open_notebook(page: Any, server: Server, url_path: str) -> None:
    """Open a notebook page and wait until its kernel is idle (it answered kernel_info)."""
    page.goto(server.url + url_path)
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")


def cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cell(page: Any, index: int) -> str:
    """Run cell ``index`` in place (Ctrl+Enter), wait for its result; return its output."""
    target = cell(page, index)
    target.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    prompt = target.locator(".jp-InputPrompt")
    # "[ ]:" before, "[*]:" while it runs, "[n]:" once the kernel replied.
    page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle())
    return target.locator(".jp-OutputArea").inner_text()


def panel_text(page: Any, selector: str) -> str:
    return page.locator(f"{PANEL} {selector}").first.inner_text()


def wait_panel_contains(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([sel, text]) => { const el = document.querySelector(sel);"
        " return el !== null && el.textContent.includes(text); }",
        arg=[f"{PANEL} {selector}", text],
    )


def python_fingerprint(page: Any) -> str:
    row = page.locator(f"{PANEL} table.repro-sources tr", has_text="Python random")
    return row.locator("code.repro-fingerprint").inner_text()


def notebook_sources(page: Any) -> list[str]:
    """The current notebook's cells, read from its model (what gets saved)."""
    return page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".map(c => c.model.sharedModel.getSource())"
    )


def click_export_and_read_new_cell(page: Any) -> list[str]:
    """Make another cell active, click export in the panel, wait for the new cell; return cells."""
    before = notebook_sources(page)
    page.locator(f"{PANEL} button", has_text="Export config cell").click()
    page.wait_for_function(
        "n => { const w = window.jupyterapp.shell.currentWidget.content.widgets;"
        " return w.length === n + 1 && w.some(c => c.model.sharedModel.getSource()"
        ".includes('repro.apply_config(config)')); }",
        arg=len(before),
    )
    wait_panel_contains(page, ".repro-status", "inserted below")
    return notebook_sources(page)


def check_config_cell(cells: list[str], profile: str | None) -> None:
    """Cell 1 (right below the panel's cell 0) is a valid config cell; no other cell changed."""
    assert cells[0] == CELLS[0]
    assert cells[2:] == CELLS[1:], "an existing cell was changed or the cell went elsewhere"
    tree = ast.parse(cells[1])
    config = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "config"
    )
    assert config["profile"] == profile
    assert isinstance(config["seed"], int)


def screenshot_panel(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.locator(PANEL).screenshot(path=str(path))
    return path


def set_theme(page: Any, theme: str) -> None:
    page.evaluate(
        "theme => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme
    )
    page.wait_for_selector(f"body[data-jp-theme-name='{theme}']", state="attached")
    # The theme's CSS is applied once the variables change on the panel.
    page.wait_for_function(
        "light => { const el = document.querySelector('.repro-panel');"
        " const bg = getComputedStyle(document.body).getPropertyValue('--jp-layout-color1');"
        " return el !== null && bg.trim() !== '' && (bg.trim().toLowerCase() === 'white'"
        " || bg.trim().toLowerCase() === '#ffffff') === light; }",
        arg=theme == "JupyterLab Light",
    )


# --- JupyterLab 4 ------------------------------------------------------------------------


def test_lab_panel_drives_and_follows_the_kernel(page: Any, jupyter_server: Server) -> None:
    jupyter_server.write_notebook("lab.ipynb", CELLS)
    open_notebook(page, jupyter_server, "lab/workspaces/panel-lab/tree/lab.ipynb?reset")

    run_cell(page, 0)
    page.wait_for_selector(PANEL)
    wait_panel_contains(page, ".repro-head", "seed none")
    assert "debug" in panel_text(page, ".widget-toggle-buttons")

    # A seed typed and applied in the panel seeds the kernel.
    seed_box = page.locator(f"{PANEL} input[type='text']").first
    seed_box.fill("2024")
    page.locator(f"{PANEL} button", has_text="Apply").click()
    wait_panel_contains(page, ".repro-head", "seed 2024")

    # A profile clicked in the panel switches the kernel's torch flags.
    page.locator(f"{PANEL} .widget-toggle-button", has_text="final").click()
    wait_panel_contains(page, ".repro-head", "profile final")
    out = run_cell(page, 1)
    assert "FLAGS True False True True" in out, out
    assert f"PYTHON {sys.executable}" in out, "the server's kernel is not this Python"
    wait_panel_contains(page, "table.repro-settings", "warn")

    # A cell that draws a random number moves the fingerprint the panel shows.
    before = python_fingerprint(page)
    assert re.fullmatch(r"[0-9a-f]{8}", before)
    run_cell(page, 2)
    page.wait_for_function(
        "old => { const sel = '.repro-panel table.repro-sources tr';"
        " const rows = [...document.querySelectorAll(sel)];"
        " const row = rows.find(r => r.textContent.includes('Python random'));"
        " return row && !row.textContent.includes(old) && row.textContent.includes('moved'); }",
        arg=before,
    )

    set_theme(page, "JupyterLab Light")
    screenshot_panel(page, "panel-lab-light.png")
    set_theme(page, "JupyterLab Dark")
    screenshot_panel(page, "panel-lab-dark.png")
    set_theme(page, "JupyterLab Light")

    # Export: cell 2 is active (it just ran), yet the config goes right below the panel's cell.
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex") == 2
    check_config_cell(click_export_and_read_new_cell(page), "final")
    assert not page.page_errors


# --- Notebook 7 ---------------------------------------------------------------------------


def test_notebook7_panel_displays_and_exports(page: Any, jupyter_server: Server) -> None:
    jupyter_server.write_notebook("nb7.ipynb", CELLS)
    open_notebook(page, jupyter_server, "notebooks/nb7.ipynb")
    assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"

    run_cell(page, 0)
    page.wait_for_selector(PANEL)
    page.locator(f"{PANEL} .widget-toggle-button", has_text="debug").click()
    wait_panel_contains(page, ".repro-head", "profile debug")
    out = run_cell(page, 1)
    assert "FLAGS True False True False" in out, out
    run_cell(page, 2)
    screenshot_panel(page, "panel-notebook7.png")

    check_config_cell(click_export_and_read_new_cell(page), "debug")
    assert not page.page_errors
