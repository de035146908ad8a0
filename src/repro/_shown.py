"""A value as error messages show it: short, one line, whatever the value."""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = ["shown"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def shown(value: Any) -> str:
    """``repr(value)``, cut to about 60 characters; a huge int is shown by its size.

    A message must stay one readable line even for a 10**5000 or a 50 MB string
    (``repr`` of an int over 4300 digits even raises ``ValueError`` itself).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return _REPR.repr(value)
