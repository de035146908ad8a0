"""The start every run of a function or a cell shares: its arguments checked, its seed, and
deep copies of the values it starts from."""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "ArgumentError",
    "Uncopyable",
    "check_runs",
    "check_settings",
    "copy_all",
    "resolve_seed",
]


def check_runs(runs: Any) -> int:
    """``runs`` if it is an integer >= 2; else a one-line TypeError or ValueError."""
    if isinstance(runs, bool) or not isinstance(runs, int):
        raise TypeError(f"runs must be an integer >= 2, got {type(runs).__name__} {runs!r}")
    if runs < 2:
        raise ValueError(f"runs must be an integer >= 2 (a comparison needs two runs), got {runs}")
    return runs


def resolve_seed(seed: Any) -> int:
    """The seed every run uses: ``seed``, else the session's, else a fresh one."""
    from repro._session import effective_seed

    return effective_seed(seed)[0]


def check_settings(profile: str | None, overrides: dict[str, Any]) -> None:
    """Raise as ``scope(seed, profile, **overrides)`` would, before anything runs."""
    from repro._profiles import resolve
    from repro._session import current

    resolve(profile, overrides, (current().profile, current().overrides))


def copy_all(values: dict[str, Any]) -> dict[str, Any]:
    """One deep copy of ``values`` (shared references kept: an optimizer keeps its model's
    parameters); raises ``Uncopyable`` naming the first value that cannot be copied.

    A tensor that is not a graph leaf (a loss, an activation) refuses ``deepcopy``; it
    is copied detached, as the values a run starts from, not the graph that made them.
    """
    try:
        return copy.deepcopy(values)
    except Exception:
        memo = _detached_non_leaves(values)
        if memo:
            try:
                return copy.deepcopy(values, memo)
            except Exception:
                pass
        for name, value in values.items():
            try:
                copy.deepcopy(value, dict(memo))
            except Exception as exc:
                raise Uncopyable(
                    f"{name} ({type(value).__name__}) cannot be copied: {exc}"
                ) from None
        raise


def _detached_non_leaves(values: dict[str, Any]) -> dict[int, Any]:
    """A deepcopy memo in which every non-leaf tensor inside ``values`` is a detached clone."""
    import sys

    from repro._verify.digest import leaves

    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    memo: dict[int, Any] = {}
    keep = []
    for value in values.values():
        for leaf in leaves(value):
            t = leaf.value
            if isinstance(t, torch.Tensor) and not t.is_leaf and id(t) not in memo:
                memo[id(t)] = t.detach().clone().requires_grad_(t.requires_grad)
                keep.append(t)
    if memo:
        memo[id(memo)] = keep  # deepcopy's own rule: what the memo's ids name stays alive
    return memo


class ArgumentError(ValueError):
    """A bad argument to :func:`verify_cell`, found before anything ran."""


class Uncopyable(Exception):
    """A value the runs would need to start from cannot be deep-copied."""
