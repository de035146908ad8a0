"""Python's ``random`` module."""

from __future__ import annotations

import random
from array import array
from typing import Any

from repro.frameworks.base import Framework, fingerprint


class PythonRandom(Framework):
    """The global generator behind ``random.random()`` and friends."""

    name = "python"
    module = "random"
    label = "Python random"
    fingerprints_by_seed = True
    seed_may_fail = False  # ``random.seed`` of an int cannot fail

    def seed(self, seed: int) -> None:
        """Seed it as ``random.seed(seed)`` does."""
        random.seed(seed)

    def get_state(self) -> Any:
        """``random.getstate()``."""
        return random.getstate()

    def set_state(self, state: Any) -> None:
        """``random.setstate(state)``."""
        random.setstate(state)

    def reset(self) -> None:
        """Reseed from the OS, as the module does at import."""
        random.seed()

    def fingerprints(self) -> dict[str, str]:
        """One stream: the Mersenne Twister words, position and cached gauss."""
        _, words, gauss = random.getstate()
        return {self.label: fingerprint(array("I", words).tobytes() + repr(gauss).encode())}
