"""repro: make a Jupyter notebook reproducible in one line.

``%load_ext repro`` then ``%repro 42 --deterministic``; or, without IPython::

    import repro
    repro.setup(42, "debug")

Importing repro imports neither torch nor ipywidgets: frameworks are seeded
when they are imported, and the panel loads when it is asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from repro._data import dataloader_kwargs, rng, seed_worker
from repro._launch import LaunchError, launch, seed_from_env
from repro._profiles import Profile, Settings, get_profile, profiles, register_profile
from repro._ranks import rank_seed
from repro._session import scope, seed, setup, use_profile
from repro._state import State, hash_seed, state
from repro._version import __version__
from repro._warning import ReproWarning
from repro.frameworks.base import Framework

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "Framework",
    "LaunchError",
    "Profile",
    "ReproWarning",
    "Settings",
    "State",
    "VerifyReport",
    "__version__",
    "apply_config",
    "check",
    "config_cell",
    "dataloader_kwargs",
    "environment",
    "get_profile",
    "hash_seed",
    "launch",
    "load_ipython_extension",
    "panel",
    "profiles",
    "rank_seed",
    "register_profile",
    "rng",
    "scope",
    "seed",
    "seed_from_env",
    "seed_worker",
    "setup",
    "state",
    "unload_ipython_extension",
    "use_profile",
    "verify",
]

# Loaded on first use, so that ``import repro`` stays light.
_LAZY = {
    "environment": "repro._capture",
    "config_cell": "repro._config",
    "apply_config": "repro._config",
    "check": "repro._config",
    "panel": "repro._panel",
    "verify": "repro._verify",
    "VerifyReport": "repro._verify",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        function = getattr(import_module(_LAZY[name]), name)
        globals()[name] = function
        return function
    raise AttributeError(f"module 'repro' has no attribute {name!r}")


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext repro``: register ``%repro`` and ``%%repro`` and the cell callbacks (once,
    however often loaded); deterministic-mode failures get their explanation under the
    traceback."""
    from repro import _diagnostics, _extension
    from repro._magics import ReproMagics

    _check_shell(ipython)
    ipython.register_magics(ReproMagics)
    _extension.load(ipython, _diagnostics.after_cell)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext repro``: remove the magics and the event callbacks; tell the views."""
    from repro import _extension

    _check_shell(ipython)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("repro", None)
    _extension.unload(ipython)


def _check_shell(ipython: Any) -> None:
    if not hasattr(ipython, "magics_manager"):
        raise TypeError(f"ipython must be an IPython shell, got {type(ipython).__name__}")
