"""Named trade-offs between speed and reproducibility.

They follow the reference guide's "Performance vs. Reproducibility".

A profile fixes every backend flag (a flag it does not name keeps torch's
default), so switching profiles gives the same flags whatever ran before.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from repro._shown import shown

__all__ = [
    "ALGORITHMS",
    "Profile",
    "Settings",
    "get_profile",
    "profiles",
    "register_profile",
    "unregister_profile",
]

#: The values of ``Settings.deterministic_algorithms``: off, on with a warning, on with an error.
ALGORITHMS = ("off", "warn", "raise")


@dataclass(frozen=True)
class Settings:
    """Backend flags a profile sets. The defaults are torch's own defaults."""

    cudnn_deterministic: bool = False
    cudnn_benchmark: bool = False
    deterministic_algorithms: Literal["off", "warn", "raise"] = "off"
    matmul_tf32: bool = False
    cudnn_tf32: bool = True
    fill_uninitialized_memory: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "deterministic_algorithms":
                if value not in ALGORITHMS:
                    raise ValueError(
                        f"deterministic_algorithms must be one of {', '.join(ALGORITHMS)}, "
                        f"got {shown(value)}"
                    )
            elif not isinstance(value, bool):
                raise TypeError(f"{f.name} must be True or False, got {shown(value)}")

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some flags changed; an unknown flag name is a ``TypeError``."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown setting {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
            )
        return replace(self, **overrides)

    def as_dict(self) -> dict[str, Any]:
        """The flags as a plain dict, in declaration order."""
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """A named set of :class:`Settings` with what it is meant for and what it trades."""

    name: str
    meant_for: str
    trade: str
    settings: Settings = field(default_factory=Settings)

    def __str__(self) -> str:
        return f"{self.name}: {self.meant_for} ({self.trade})"


_PROFILES: dict[str, Profile] = {}


def register_profile(
    name: str,
    meant_for: str,
    trade: str = "",
    *,
    base: str | None = None,
    **settings: Any,
) -> Profile:
    """Register (or replace) a profile and return it.

    ``settings`` are :class:`Settings` fields; unnamed ones come from the profile
    ``base`` if given, else torch's defaults. Example::

        repro.register_profile("fast-debug", "debugging on a big model", base="debug",
                               deterministic_algorithms="warn")
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][\w-]*", name):
        raise ValueError(
            f"a profile name must be a word like 'debug' or 'my-profile', got {shown(name)}"
        )
    for argument, text in (("meant_for", meant_for), ("trade", trade)):
        if not isinstance(text, str):
            raise TypeError(f"{argument} must be a str, got {type(text).__name__}")
    if base is not None and not isinstance(base, str):
        raise TypeError(f"base must be a profile name (str), got {type(base).__name__}")
    start = get_profile(base).settings if base is not None else Settings()
    profile = Profile(name, meant_for, trade, start.with_overrides(**settings))
    _PROFILES[name] = profile
    return profile


def unregister_profile(name: str) -> None:
    """Remove a registered profile (the four built-in ones can be replaced, not removed)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in profile and cannot be removed")
    _PROFILES.pop(name, None)


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a ``ValueError`` lists the known names."""
    if not isinstance(name, str):
        raise TypeError(f"a profile name is a str, got {type(name).__name__}")
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {shown(name)}; choose one of: {', '.join(_PROFILES)}"
        ) from None


def profiles() -> tuple[Profile, ...]:
    """Every registered profile, the built-in ones first."""
    return tuple(_PROFILES.values())


register_profile(
    "debug",
    "development: finding nondeterminism",
    "slowest; raises on any nondeterministic op",
    cudnn_deterministic=True,
    cudnn_benchmark=False,
    deterministic_algorithms="raise",
    matmul_tf32=False,
    cudnn_tf32=False,
    fill_uninitialized_memory=True,
)
register_profile(
    "final",
    "reported results",
    "slow, bit-exact; warns on nondeterministic ops",
    cudnn_deterministic=True,
    cudnn_benchmark=False,
    deterministic_algorithms="warn",
    matmul_tf32=False,
    cudnn_tf32=False,
    fill_uninitialized_memory=True,
)
register_profile(
    "search",
    "hyperparameter search: seeds are enough",
    "torch's default speed; runs close, not bit-exact",
)
register_profile(
    "production",
    "speed; seeds logged",
    "fastest (cuDNN autotuning, TF32); runs differ",
    cudnn_deterministic=False,
    cudnn_benchmark=True,
    deterministic_algorithms="off",
    matmul_tf32=True,
    cudnn_tf32=True,
    fill_uninitialized_memory=False,
)
_BUILTIN = frozenset(_PROFILES)
