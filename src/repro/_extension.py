"""The IPython event hub: cell start and end, and the extension's unload, told to subscribers.

As IPython's autoreload does, the event callbacks are registered once, when the extension
loads (``repro.load_ipython_extension``, which also registers the magics), and kept here, so
that unloading removes exactly them and ``%reload_ext repro`` any number of times leaves
one set. Views (the panel) do not register IPython events themselves: they subscribe here.

Subscribers are isolated from each other: one that raises is reported once (a warning) and
the others still run, as IPython isolates its own event callbacks. A leaf: nothing of repro.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["cell_running", "load", "loaded", "on_cell_end", "on_unload", "unload"]

_shell: Any = None
_running = False
_cell_end: list[Callable[[Any], None]] = []
_unload: list[Callable[[], None]] = []
#: the extension's own subscriptions (given to load), removed when it unloads
_own: list[Callable[[], None]] = []
#: subscribers that raised once already: reported the first time only
_reported: set[int] = set()


def _notify(callbacks: list[Callable[..., None]], *args: Any) -> None:
    """Call each callback; one that raises is reported (once) and does not stop the rest."""
    for callback in list(callbacks):
        try:
            callback(*args)
        except Exception as exc:
            if id(callback) not in _reported:
                _reported.add(id(callback))
                name = getattr(callback, "__qualname__", repr(callback))
                warnings.warn(
                    f"repro: the subscriber {name} failed: {exc!r} (not reported again)",
                    RuntimeWarning,
                    stacklevel=2,
                )


def _pre_run_cell(info: Any) -> None:
    global _running
    _running = True


def _post_run_cell(result: Any) -> None:
    # A flag, not a depth count: an empty cell fires post_run_cell without pre_run_cell.
    global _running
    _running = False
    _notify(_cell_end, result)


def cell_running() -> bool:
    """Whether a cell is executing now (its end will notify :func:`on_cell_end` subscribers)."""
    return _running


def loaded() -> bool:
    """Whether the extension is loaded in a shell (so that cell ends are told)."""
    return _shell is not None


def _subscribe(listeners: list[Any], callback: Callable[..., None]) -> Callable[[], None]:
    listeners.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(callback)

    return unsubscribe


def on_cell_end(callback: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``callback(result)`` after every cell (IPython's ``ExecutionResult``); returns the
    function that unsubscribes it."""
    return _subscribe(_cell_end, callback)


def on_unload(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` when the extension is unloaded; returns the unsubscribe."""
    return _subscribe(_unload, callback)


def load(shell: Any, *cell_end: Callable[[Any], None]) -> None:
    """Register the cell callbacks on ``shell`` and subscribe the extension's own
    ``cell_end`` callbacks, once however often it is called (another shell's are removed)."""
    global _shell
    if shell is _shell:
        return
    _unhook()
    shell.events.register("pre_run_cell", _pre_run_cell)
    shell.events.register("post_run_cell", _post_run_cell)
    _shell = shell
    _own.extend(on_cell_end(callback) for callback in cell_end)


def _unhook() -> None:
    global _shell, _running
    if _shell is not None:
        for name, callback in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
            if callback in _shell.events.callbacks[name]:
                _shell.events.unregister(name, callback)
    for unsubscribe in _own:
        unsubscribe()
    _own.clear()
    _shell = None
    _running = False


def unload(shell: Any) -> None:
    """Remove the cell callbacks from ``shell`` and tell the subscribers the extension left."""
    if shell is _shell or shell is None:
        _unhook()
    _notify(_unload)
