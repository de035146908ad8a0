"""Sources of randomness: one adapter per library, all in one registry.

Seeding, scoping, the state, the panel and the export iterate over
:func:`frameworks`; nothing else in repro special-cases a library. Other
packages add their own adapter through the ``repro.frameworks`` entry-point
group: the entry point names a :class:`Framework` subclass, an instance, or a
callable returning one.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import xxhash

from repro.frameworks.base import Framework, fingerprint
from repro.frameworks.numpy import NumPyRandom
from repro.frameworks.python import PythonRandom
from repro.frameworks.torch import TorchRandom

__all__ = [
    "ENTRY_POINT_GROUP",
    "Framework",
    "fingerprint",
    "frameworks",
    "get",
    "loaded",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "repro.frameworks"

_registry: dict[str, Framework] = {}
_plugins_loaded = False


def register(framework: Framework) -> Framework:
    """Add ``framework`` to the registry (replacing one of the same name) and return it."""
    if not isinstance(framework, Framework):
        raise TypeError(
            f"repro.frameworks.register() takes a repro.frameworks.Framework, "
            f"got {type(framework).__name__}"
        )
    if not framework.name or not framework.module:
        raise ValueError("a Framework needs a non-empty 'name' and 'module'")
    _registry[framework.name] = framework
    return framework


def unregister(name: str) -> None:
    """Remove the framework called ``name`` from the registry (no error if absent)."""
    _registry.pop(name, None)


def _load_plugins() -> None:
    # Entry points are read once per process: scanning installed distributions costs milliseconds.
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj: Any = ep.load()
            framework = obj() if not isinstance(obj, Framework) and callable(obj) else obj
            register(framework)
        except Exception as exc:  # a broken plugin must not break seeding of the others
            import warnings

            warnings.warn(
                f"repro: could not load framework plugin {ep.name!r} ({ep.value}): {exc}",
                RuntimeWarning,
                stacklevel=2,
            )


def frameworks() -> tuple[Framework, ...]:
    """Every registered source of randomness, built-ins first, then plugins."""
    _load_plugins()
    return tuple(_registry.values())


def get(name: str) -> Framework:
    """The registered framework called ``name``."""
    _load_plugins()
    try:
        return _registry[name]
    except KeyError:
        raise ValueError(
            f"unknown framework {name!r}; registered: {', '.join(_registry)}"
        ) from None


def loaded() -> tuple[Framework, ...]:
    """The frameworks whose module is already imported in this process."""
    return tuple(fw for fw in frameworks() if fw.imported)


for _builtin in (PythonRandom(), NumPyRandom(), TorchRandom()):
    register(_builtin)

del xxhash  # imported above only to fail early when the dependency is missing
