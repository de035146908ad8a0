"""The panel's "Verify this notebook": ``repro verify`` on the notebook the panel lives in.

A thin shell over :func:`repro._notebook_checks.check_notebook` (so the panel's
verdict is the one pytest, pre-commit and the command give): it finds the
notebook's file, runs verify in a background thread (the kernel keeps running
cells meanwhile; verify's own kernels are fresh processes), shows verify's
progress frames while it runs, then the verdict, the report with its advice,
and a button named after the first differing cell that selects that cell in
JupyterLab or Notebook 7 through ipylab.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import ipywidgets as widgets

__all__ = ["VerifySection", "notebook_path", "select_cell"]


def notebook_path(app: Any = None) -> Path | None:
    """The file of the notebook this kernel serves, or None where nothing says which it is.

    jupyter_server sets ``JPY_SESSION_NAME`` when it starts a notebook's kernel: the
    notebook's path (older servers: its path from the server's root; the kernel starts
    in the notebook's folder, so its name is found there). Else ipylab's ``app``
    (JupyterLab or Notebook 7) names the current notebook the same way.
    """
    names = [os.environ.get("JPY_SESSION_NAME") or ""]
    sessions = getattr(app, "sessions", None)
    if sessions is not None:
        names.append((getattr(sessions, "current_session", None) or {}).get("path") or "")
    for name in filter(None, names):
        for path in (Path(name), Path.cwd() / PurePosixPath(name).name):
            if path.suffix == ".ipynb" and path.is_file():
                return path
    return None


def select_cell(app: Any, position: int, cells: int) -> None:
    """Make cell ``position`` (1-based, markdown cells counted) the current notebook's active cell.

    JupyterLab 4 and Notebook 7 have no command that selects a cell by its index, so
    this walks there with the commands behind the arrow keys in command mode: up past
    the first cell (a no-op at the top), then down.
    """
    app.commands.execute("notebook:enter-command-mode")
    for _ in range(cells):
        app.commands.execute("notebook:move-cursor-up")
    for _ in range(position - 1):
        app.commands.execute("notebook:move-cursor-down")


class VerifySection(widgets.VBox):
    """The panel's verify row: ``button``, then ``progress``, ``verdict``, ``cell_button``,
    ``report`` as verify runs and answers. ``thread`` is the last verification's thread."""

    def __init__(self, bridge: Any = None, locate: Callable[[], Path | None] | None = None) -> None:
        self._bridge = bridge
        self._locate = locate
        self._cells = 0
        self._first: int | None = None
        self.thread: threading.Thread | None = None
        self.button = widgets.Button(
            description="Verify this notebook",
            icon="check-double",
            tooltip="run the saved notebook in fresh kernels (or once against NB.repro.json "
            "beside it) and name the first cell whose results differ: repro verify",
            layout=widgets.Layout(width="auto"),
        )
        self.progress = widgets.HTML()
        self.verdict = widgets.HTML()
        self.cell_button = widgets.Button(
            icon="crosshairs",
            tooltip="select this cell in the notebook",
            layout=widgets.Layout(width="auto", display="none"),
        )
        self.report = widgets.HTML()
        self.button.on_click(self._start)
        self.cell_button.on_click(self._select)
        super().__init__(
            [
                widgets.HBox([self.button, self.progress]),
                widgets.HBox([self.verdict, self.cell_button]),
                self.report,
            ]
        )
        self.add_class("repro-verify-notebook")
        self.progress.add_class("repro-verify-progress")
        self.verdict.add_class("repro-verify-verdict")

    def _app(self) -> Any:
        bridge = self._bridge
        return bridge.app if bridge is not None and bridge.ready else None

    def _start(self, _button: Any = None) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        path = self._locate() if self._locate is not None else notebook_path(self._app())
        if path is None:
            self._say_error(
                "cannot tell which notebook this kernel serves (no JPY_SESSION_NAME, no "
                "ipylab): run repro verify NOTEBOOK in a terminal"
            )
            return
        self.button.disabled = True
        self.cell_button.layout.display = "none"
        self.verdict.value = self.report.value = ""
        self.progress.value = html.escape(f"verifying {path.name} (as saved) in fresh kernels…")
        self.thread = threading.Thread(
            target=self._run, args=(path,), name="repro-verify", daemon=True
        )
        self.thread.start()

    def _run(self, path: Path) -> None:
        from repro._notebook_checks import check_notebook

        try:
            import nbformat

            self._cells = len(nbformat.read(path, as_version=4).cells)
            report = check_notebook(path, progress=self._show_progress)
        except Exception as exc:  # shown in the panel: a thread's exception would be lost
            self._say_error(f"{type(exc).__name__}: {exc}")
        else:
            self._show(report)
        finally:
            self.button.disabled = False

    def _show_progress(self, frame: str) -> None:
        self.progress.value = f"<code>{html.escape(frame)}</code>"

    def _say_error(self, text: str) -> None:
        self.progress.value = ""
        self.verdict.value = f"<span class='repro-error'>⚠ {html.escape(text)}</span>"

    def _show(self, report: Any) -> None:
        self.progress.value = ""
        css = {True: "repro-ok", False: "repro-bad", None: "repro-error"}[report.reproducible]
        self.verdict.value = f"<b class='{css}'>{html.escape(report.verdict)}</b>"
        self._first = report.first
        if report.first is not None:
            self.cell_button.description = f"cell {report.first}"
            self.cell_button.layout.display = None if self._app() is not None else "none"
        body = str(report).splitlines()
        if body and body[-1] == report.verdict:
            body.pop()
        self.report.value = (
            f"<pre class='repro-code'>{html.escape(chr(10).join(body))}</pre>" if body else ""
        )

    def _select(self, _button: Any = None) -> None:
        app = self._app()
        if app is not None and self._first is not None:
            select_cell(app, self._first, self._cells)
