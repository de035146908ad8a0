"""The interface every source of randomness implements."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import xxhash

# Re-exported: plugins written against earlier releases import it from here.
from repro._warning import ReproWarning

__all__ = ["Framework", "ReproWarning", "fingerprint"]


def fingerprint(data: bytes) -> str:
    """A short, stable hex digest of an RNG state (xxh3, 8 hex digits)."""
    return xxhash.xxh3_64_hexdigest(data)[:8]


class Framework:
    """One library's random number generators and backend settings.

    Subclasses set ``name`` (a short key), ``module`` (the module whose import
    makes the framework live: repro seeds it when that module is imported) and
    ``label`` (what a person reads), and implement the RNG methods. Methods are
    only called once ``module`` is imported, so an adapter may import it inside
    them; importing this class never imports the library.
    """

    name: str = ""
    module: str = ""
    label: str = ""

    @property
    def imported(self) -> bool:
        """Whether ``module`` is imported (a ``None`` entry in ``sys.modules`` blocks an import)."""
        return sys.modules.get(self.module) is not None

    def seed(self, seed: int) -> None:
        """Seed every generator of the library with ``seed`` (0 <= seed < 2**32)."""
        raise NotImplementedError

    #: Whether, right after ``seed(s)``, :meth:`fingerprints` depends on ``s`` alone (true of
    #: a plain generator; not of torch, whose CUDA streams appear once CUDA starts). repro
    #: then reads them once per seed and reuses them when the same seed is applied again.
    fingerprints_by_seed: bool = False

    #: Whether :meth:`seed` can raise for a checked seed (a device error, a plugin's own
    #: check). repro saves such a framework's state before seeding it, to put it back if
    #: seeding fails; one that cannot fail is seeded without that cost.
    seed_may_fail: bool = True

    def get_state(self) -> Any:
        """An opaque value that :meth:`set_state` restores exactly."""
        raise NotImplementedError

    def set_state(self, state: Any) -> None:
        """Restore a value returned by :meth:`get_state`."""
        raise NotImplementedError

    def reset(self) -> None:
        """Return the generators to how a fresh import leaves them."""
        raise NotImplementedError

    def fingerprints(self) -> dict[str, str]:
        """Per stream (e.g. ``"torch (CPU)"``), a short fingerprint of its current state.

        Must be cheap (the panel reads it after every cell) and must not
        initialise devices.
        """
        raise NotImplementedError

    def read_settings(self) -> dict[str, Any]:
        """The backend flags this framework has (name -> value); empty by default."""
        return {}

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        """Switch the backend flags to ``settings`` (flag name -> value; ignore names it lacks)."""

    def restore_settings(self, saved: dict[str, Any]) -> None:
        """Put back flags read earlier with :meth:`read_settings`."""

    def describe(self) -> dict[str, Any]:
        """Version and runtime facts for the exported environment (name -> plain value).

        The key ``name`` holds the version. Must not initialise devices.
        """
        return {}

    def __repr__(self) -> str:
        return f"<repro framework {self.name!r} ({self.module})>"
