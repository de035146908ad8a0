"""The "did you mean" of every error about a mistyped name (an option, a subcommand, a profile).

A leaf: it imports nothing of repro.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean `--deterministic`?)`` for the known name closest to ``word``, or ``""``.

    difflib's ratio, at its usual cut-off of 0.6: close enough that a typo of one or two
    letters is caught, far enough that an unrelated word gets no suggestion.
    """
    if not isinstance(word, str) or not word:
        return ""
    close = difflib.get_close_matches(word, [c for c in choices if c != word], n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""
