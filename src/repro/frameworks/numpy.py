"""NumPy's legacy global generator (``np.random.rand`` and friends)."""

from __future__ import annotations

import struct
import sys
from typing import Any

from repro.frameworks.base import Framework, fingerprint


class NumPyRandom(Framework):
    """The global ``RandomState`` that ``np.random.seed`` controls.

    ``np.random.default_rng()`` Generators are not reached by any global seed:
    use :func:`repro.rng` for those.
    """

    name = "numpy"
    module = "numpy"
    label = "NumPy"
    fingerprints_by_seed = True
    seed_may_fail = False  # ``np.random.seed`` of a checked int cannot fail

    def seed(self, seed: int) -> None:
        """Seed it as ``np.random.seed(seed)`` does."""
        sys.modules["numpy"].random.seed(seed)

    def get_state(self) -> Any:
        """``np.random.get_state()``."""
        return sys.modules["numpy"].random.get_state()

    def set_state(self, state: Any) -> None:
        """``np.random.set_state(state)``."""
        sys.modules["numpy"].random.set_state(state)

    def reset(self) -> None:
        """Reseed from the OS, as NumPy does at import."""
        sys.modules["numpy"].random.seed()

    def fingerprints(self) -> dict[str, str]:
        """One stream: the MT19937 key, position and cached gaussian."""
        _, key, pos, has_gauss, gauss = sys.modules["numpy"].random.get_state()
        return {self.label: fingerprint(key.tobytes() + struct.pack("<iid", pos, has_gauss, gauss))}

    def describe(self) -> dict[str, Any]:
        """NumPy's version."""
        return {"numpy": sys.modules["numpy"].__version__}
