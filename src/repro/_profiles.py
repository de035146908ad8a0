"""Named trade-offs between speed and reproducibility.

They follow the reference guide's "Performance vs. Reproducibility".

A profile fixes every backend flag (a flag it does not name keeps torch's
default), so switching profiles gives the same flags whatever ran before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from repro._shown import shown
from repro._suggest import did_you_mean

__all__ = [
    "ALGORITHMS",
    "Profile",
    "ProfileTable",
    "Settings",
    "choose",
    "get_profile",
    "profiles",
    "register_profile",
    "resolve",
    "table",
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

    def overrides_for(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The overrides that turn this profile into ``settings`` (flags that differ, only)."""
        wanted = self.settings.with_overrides(**settings).as_dict()
        base = self.settings.as_dict()
        return {k: v for k, v in wanted.items() if v != base[k]}


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
            f"unknown profile {shown(name)}{did_you_mean(name, _PROFILES)}; "
            f"choose one of: {', '.join(_PROFILES)}"
        ) from None


def profiles() -> tuple[Profile, ...]:
    """Every registered profile, the built-in ones first."""
    return tuple(_PROFILES.values())


class ProfileTable:
    """The profiles as a table (what ``%repro profiles`` shows), the active one marked ●."""

    header = ("profile", "meant for", "trade", "flags")

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.rows = rows

    def __repr__(self) -> str:
        table = [self.header, *self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join(fmt.format(*r).rstrip() for r in table)

    def _repr_html_(self) -> str:
        import html

        def row(cells: tuple[str, ...], tag: str) -> str:
            inner = "".join(
                f"<{tag} style='text-align:left'>{html.escape(c)}</{tag}>" for c in cells
            )
            return f"<tr>{inner}</tr>"

        return f"<table>{row(self.header, 'th')}{''.join(row(r, 'td') for r in self.rows)}</table>"


def table(active: str | None = None) -> ProfileTable:
    """Every registered profile with what it is meant for, what it trades and its flags."""
    rows = []
    for p in profiles():
        s = p.settings
        flags = (
            f"deterministic={s.cudnn_deterministic} benchmark={s.cudnn_benchmark} "
            f"algorithms={s.deterministic_algorithms} tf32={s.matmul_tf32}/{s.cudnn_tf32}"
        )
        rows.append((("● " if p.name == active else "  ") + p.name, p.meant_for, p.trade, flags))
    return ProfileTable(rows)


def choose(
    profile: str | None = None,
    *,
    deterministic: bool = False,
    warn_only: bool = False,
    algorithms: str | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """The profile and overrides that the short flags mean: ``--deterministic`` is ``debug``,
    ``--warn-only`` is ``deterministic_algorithms="warn"``.

    A ``ValueError`` if two flags contradict each other (``-d -p production``).
    """
    if deterministic and profile and profile != "debug":
        raise ValueError("--deterministic means --profile debug; give one or the other")
    if warn_only and algorithms and algorithms != "warn":
        raise ValueError("--warn-only means --algorithms warn; give one or the other")
    overrides: dict[str, Any] = {}
    if warn_only or algorithms:
        overrides["deterministic_algorithms"] = "warn" if warn_only else algorithms
    return ("debug" if deterministic else profile), overrides


def resolve(
    profile: str | None,
    overrides: Mapping[str, Any],
    current: tuple[str | None, Mapping[str, Any]] = (None, {}),
) -> tuple[Profile | None, Settings | None, dict[str, Any]]:
    """How a profile combines with overrides: ``(profile, its settings, the overrides kept)``.

    Overrides without a profile adjust ``current`` (the session's profile and
    overrides); with no current profile that is a ``ValueError``. Nothing given:
    ``(None, None, {})``. Unknown names and flags raise before anything changes.
    """
    if profile is None and overrides:
        active, kept = current
        if active is None:
            raise ValueError(
                f"setting {', '.join(overrides)} needs a profile: pass profile='debug' "
                "(or another) with it"
            )
        profile, overrides = active, {**kept, **overrides}
    if profile is None:
        return None, None, {}
    chosen = get_profile(profile)
    return chosen, chosen.settings.with_overrides(**overrides), dict(overrides)


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
    base="debug",
    deterministic_algorithms="warn",
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
