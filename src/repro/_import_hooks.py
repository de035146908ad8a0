"""Run a function right after a module is imported (a post-import hook, as in PEP 369).

repro seeds a framework imported after ``%repro 42`` at its import. wrapt's hooks did this
before; importing wrapt 2 imports asyncio, ssl and importlib.metadata (16 ms and 3 MiB of
a fresh ``%load_ext repro`` with IPython 9, which no longer imports asyncio itself), for
the forty lines below. A leaf: imports nothing of repro.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["notify", "when_imported"]

Hook = Callable[[ModuleType], None]

_hooks: dict[str, list[Hook]] = {}
_lock = threading.RLock()
_finder: _Finder | None = None


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once module ``name`` is imported: now if it is already, else
    right after its import has executed it (once; a failed import leaves the hook waiting).
    """
    global _finder
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _hooks.setdefault(name, []).append(hook)
            if _finder is None:
                _finder = _Finder()
                sys.meta_path.insert(0, _finder)
    if module is not None:
        hook(module)


def notify(module: ModuleType) -> None:
    """Run the hooks waiting for ``module`` (by its ``__name__``), once; an import calls this
    itself, and a module made without an import (a stand-in in a test) may announce itself.
    """
    with _lock:
        hooks = _hooks.pop(module.__name__, [])
    for hook in hooks:
        hook(module)


class _Finder:
    """First on ``sys.meta_path``: for a watched name, the spec the other finders give,
    its loader wrapped so that the hooks run after the module's code."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """The other finders' spec for a watched ``fullname``; ``None`` (not ours) otherwise."""
        if fullname not in _hooks:  # a dict lookup: every other import passes here
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if getattr(spec.loader, "exec_module", None) is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


class _Loader:
    """A loader that runs the hooks after the wrapped one has executed the module; every
    other attribute is the wrapped loader's, and the module keeps the wrapped one."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def exec_module(self, module: ModuleType) -> None:
        """Execute ``module`` with the wrapped loader, then run its hooks."""
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        self._loader.exec_module(module)
        notify(module)
