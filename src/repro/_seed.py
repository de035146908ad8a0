"""What a seed is, in one place: its range, its checks, its text form, and drawing a fresh one.

The magics, the panel, the command line and the API all come here, so ``%repro abc``,
the panel's seed box and ``repro.seed("abc")`` give the same words.
"""

from __future__ import annotations

import numbers
import secrets
from typing import Any

from repro._shown import shown

__all__ = ["SEED_LIMIT", "check_seed", "fresh_seed", "parse_seed"]

#: Seeds are integers in ``range(SEED_LIMIT)``: what NumPy's legacy seeding and
#: ``PYTHONHASHSEED`` both accept.
SEED_LIMIT = 2**32


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int if it is an integer with ``0 <= seed < 2**32``.

    Otherwise a ``TypeError`` (not an integer; ``bool`` is refused) or a
    ``ValueError`` (out of range), each naming ``name``.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer with 0 <= seed < 2**32, "
            f"got {type(seed).__name__} {shown(seed)}"
        )
    value = int(seed)
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(
            f"{name} must be an integer with 0 <= seed < 2**32 (4294967296), got {shown(value)}"
        )
    return value


def parse_seed(text: str, name: str = "seed", *, random: bool = True) -> int:
    """A seed typed by a person: decimal or ``0x..``/``0o..``/``0b..``, or (if ``random``)
    ``random`` for a fresh one.

    A ``ValueError`` in one line names what was typed.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} text must be a str, got {type(text).__name__}")
    word = text.strip()
    if random and word == "random":
        return fresh_seed()
    try:
        value = int(word, 0)
    except ValueError:
        choice = ", or 'random'" if random else ""
        raise ValueError(
            f"{name} must be an integer with 0 <= seed < 2**32{choice}; got {shown(word)}"
        ) from None
    return check_seed(value, name)


def fresh_seed() -> int:
    """A new seed from the operating system's entropy."""
    return secrets.randbits(32)
