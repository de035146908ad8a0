"""The one warning category repro raises, in a leaf so that every layer can use it.

``repro.ReproWarning`` is its public name; ``repro.frameworks.base`` re-exports it for plugins
that import it from there.
"""

from __future__ import annotations

__all__ = ["ReproWarning"]


class ReproWarning(UserWarning):
    """Something repro could not make reproducible, said in plain words with the fix."""
