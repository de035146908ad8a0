"""The extension's life cycle: what ``%load_ext repro`` registers and ``%unload_ext repro`` removes.

As IPython's autoreload does, the event callbacks are registered once, when the
extension loads, and kept here, so that unloading removes exactly them and
``%reload_ext repro`` any number of times leaves one set. Views (the panel) do not
register IPython events themselves: they subscribe here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["cell_running", "hook", "load", "on_cell_end", "on_unload", "unload"]

_shell: Any = None
_running = False
_cell_end: list[Callable[[], None]] = []
_unload: list[Callable[[], None]] = []


def _pre_run_cell(info: Any) -> None:
    global _running
    _running = True


def _post_run_cell(result: Any) -> None:
    # A flag, not a depth count: an empty cell fires post_run_cell without pre_run_cell.
    global _running
    _running = False
    for callback in list(_cell_end):
        callback()


def cell_running() -> bool:
    """Whether a cell is executing now (its end will notify :func:`on_cell_end` subscribers)."""
    return _running


def hook(shell: Any) -> None:
    """Register the cell callbacks on ``shell``, once (another shell's are removed first)."""
    global _shell
    if shell is _shell:
        return
    _unhook()
    shell.events.register("pre_run_cell", _pre_run_cell)
    shell.events.register("post_run_cell", _post_run_cell)
    _shell = shell


def _unhook() -> None:
    global _shell, _running
    if _shell is not None:
        for name, callback in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
            if callback in _shell.events.callbacks[name]:
                _shell.events.unregister(name, callback)
    _shell = None
    _running = False


def _subscribe(
    listeners: list[Callable[[], None]], callback: Callable[[], None]
) -> Callable[[], None]:
    listeners.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(callback)

    return unsubscribe


def on_cell_end(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` after every cell; returns the function that unsubscribes it."""
    return _subscribe(_cell_end, callback)


def on_unload(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` when the extension is unloaded; returns the unsubscribe."""
    return _subscribe(_unload, callback)


def load(shell: Any) -> None:
    """``%load_ext repro``: the magics and the cell callbacks (idempotent)."""
    from repro._magics import ReproMagics

    shell.register_magics(ReproMagics)
    hook(shell)


def unload(shell: Any) -> None:
    """``%unload_ext repro``: remove the magics and the callbacks; tell the views."""
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("repro", None)
    if shell is _shell or shell is None:
        _unhook()
    for callback in list(_unload):
        callback()
