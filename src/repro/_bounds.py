"""Bounds on a config's data, checked before anything else reads it.

A config cell may come from someone else's notebook. Its dict is plain data, but
data can still be hostile in size: 100,000 nested lists would crash the recursive
writer with a ``RecursionError``, and a string of hundreds of megabytes would stall
the kernel. :func:`check_bounds` walks the data once, without recursion, and stops
at the first limit passed with a ``ValueError`` that says where and which.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_STRING", "check_bounds"]

#: Nesting a real config needs: the environment is 4 levels deep, params a few more.
MAX_DEPTH = 100
#: Values (containers, keys and leaves) in one config: a recorded environment has ~200.
MAX_ITEMS = 100_000
#: Characters in one string: a long prompt or path fits; a data set does not.
MAX_STRING = 1_000_000

_SMALL = "a config is small data (seed, profile, flags, parameters, environment)"


def check_bounds(value: Any, where: str) -> None:
    """Raise ``ValueError`` if ``value`` nests deeper than :data:`MAX_DEPTH`, holds more than
    :data:`MAX_ITEMS` values, or a string longer than :data:`MAX_STRING`.

    A container that holds itself is a ``ValueError`` too. Only ``dict``, ``list`` and
    ``tuple`` are walked into; other types are left to the caller's type check. Never
    recurses, so any depth is safe to check.
    """
    # Each entry: a value and the ids of the containers above it (a cycle is one of them).
    stack: list[tuple[Any, frozenset[int]]] = [(value, frozenset())]
    items = 0
    while stack:
        item, above = stack.pop()
        items += 1
        if items > MAX_ITEMS:
            raise ValueError(f"{where} holds more than {MAX_ITEMS:,} values; {_SMALL}")
        if isinstance(item, (str, bytes)) and len(item) > MAX_STRING:
            raise ValueError(
                f"{where} holds a string of {len(item):,} characters "
                f"(at most {MAX_STRING:,}); {_SMALL}"
            )
        if isinstance(item, (dict, list, tuple)):
            if id(item) in above:
                raise ValueError(f"{where} contains itself")
            if len(above) >= MAX_DEPTH:
                raise ValueError(f"{where} is nested more than {MAX_DEPTH} levels deep")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            if len(children) > MAX_ITEMS:
                raise ValueError(f"{where} holds more than {MAX_ITEMS:,} values; {_SMALL}")
            path = above | {id(item)}
            stack.extend((child, path) for child in children)
