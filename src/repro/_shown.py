"""A value as error messages show it: short, one line, whatever the value."""

from __future__ import annotations

import os
import reprlib
from typing import Any

from repro._environ import RECORDED

__all__ = ["redact", "shown"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def shown(value: Any) -> str:
    """``repr(value)``, cut to about 60 characters; a huge int is shown by its size.

    A message must stay one readable line even for a 10**5000 or a 50 MB string
    (``repr`` of an int over 4300 digits even raises ``ValueError`` itself).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return redact(_REPR.repr(value))


def redact(text: str) -> str:
    """``text`` with the value of every environment variable that could hold a secret
    replaced by ``$NAME``.

    Reports show the user's own values (a differing string, an output); those may carry
    a token read from the environment. Only the variables repro records (its allow-list)
    and values too short to be a secret (under 8 characters) are left as they are.
    """
    for name, value in os.environ.items():
        if len(value) >= 8 and name not in RECORDED and value in text:
            text = text.replace(value, f"${name}")
    return text
