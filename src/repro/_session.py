"""The kernel's current seed and profile, and the ways to change them.

``seed()``, ``use_profile()``, ``setup()`` and ``scope()`` are plain functions:
the magics, the panel and scripts all call them. A framework that is not yet
imported is seeded (and switched to the profile's flags) when it is imported,
through a post-import hook, so ``import repro`` never imports torch.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import wrapt

from repro import _distributed
from repro import frameworks as _frameworks
from repro._profiles import Profile, Settings, get_profile
from repro.frameworks import Framework

__all__ = [
    "ENV_VARS",
    "SEED_LIMIT",
    "check_seed",
    "current",
    "scope",
    "seed",
    "setup",
    "subscribe",
    "use_profile",
]

#: Seeds are integers in ``range(SEED_LIMIT)``: what NumPy's legacy seeding accepts.
SEED_LIMIT = 2**32

#: The environment variables repro may set, and that ``scope`` therefore saves and restores.
ENV_VARS = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "REPRO_SEED",
    "REPRO_PROFILE",
    "REPRO_OVERRIDES",
)


@dataclass
class Session:
    """What repro has applied to this process. One instance, :func:`current`."""

    seed: int | None = None
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    settings: Settings | None = None
    #: framework name -> the seed it was given
    seeds: dict[str, int] = field(default_factory=dict)
    #: stream label -> fingerprint right after seeding ("moved" compares with it)
    marks: dict[str, str] = field(default_factory=dict)
    #: warnings raised while applying settings, kept for the state's warnings
    notes: list[str] = field(default_factory=list)
    #: the last config applied with repro.apply_config (for ``%repro check``)
    config: dict[str, Any] | None = None
    #: bumped on every change, so the panel can tell cheaply that nothing changed
    generation: int = 0
    #: the rank the streams were derived for (None: one process, the guide's streams)
    rank: int | None = None

    def copy(self) -> Session:
        """An independent copy (for scope's snapshot)."""
        return Session(
            self.seed,
            self.profile,
            dict(self.overrides),
            self.settings,
            dict(self.seeds),
            dict(self.marks),
            list(self.notes),
            self.config,
            self.generation,
            self.rank,
        )


_session = Session()
_listeners: list[Callable[[], None]] = []
_watched: set[str] = set()


def current() -> Session:
    """The live session object (read it; change it only through the functions here)."""
    return _session


def subscribe(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` after every change of seed, profile or scope; returns an unsubscribe."""
    _listeners.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            _listeners.remove(callback)

    return unsubscribe


def _changed() -> None:
    _session.generation += 1
    for callback in list(_listeners):
        try:
            callback()
        except Exception as exc:  # a broken listener (a closed panel) must not break seeding
            warnings.warn(f"repro: a state listener failed: {exc!r}", RuntimeWarning, stacklevel=3)


def check_seed(seed: Any) -> int:
    """``seed`` as an int if ``0 <= seed < 2**32``, else a ``TypeError``/``ValueError``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an integer with 0 <= seed < 2**32, got {type(seed).__name__} {seed!r}"
        )
    value = int(seed)
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(
            f"seed must be an integer with 0 <= seed < 2**32 (4294967296), got {value}"
        )
    return value


def fresh_seed() -> int:
    """A new seed from the operating system's entropy."""
    return secrets.randbits(32)


# --- deferred seeding -------------------------------------------------------------


def _sync(fw: Framework, session: Session) -> None:
    """Bring a freshly imported framework in line with ``session``."""
    if session.seed is not None:
        value = _distributed.stream_seed(session.seed, fw.name, session.rank)
        fw.seed(value)
        session.seeds[fw.name] = value
        session.marks.update(fw.fingerprints())
    if session.settings is not None:
        _apply_to([fw], session.settings, session)


def _on_import(module: Any) -> None:
    for fw in _frameworks.frameworks():
        if fw.module == module.__name__:
            try:
                _sync(fw, _session)
            except Exception as exc:  # never break the user's import
                warnings.warn(
                    f"repro: could not seed {fw.label} at import: {exc!r}",
                    RuntimeWarning,
                    stacklevel=2,
                )
    _changed()


def _watch() -> None:
    """Hook the import of every registered framework that is not imported yet."""
    for fw in _frameworks.frameworks():
        if fw.module not in _watched and not fw.imported:
            _watched.add(fw.module)
            wrapt.register_post_import_hook(_on_import, fw.module)


# --- applying ---------------------------------------------------------------------


def _seed_all(value: int, rank: int | None = None) -> None:
    if rank is not None:
        # Deriving a rank's seed imports NumPy: do it before listing what is imported,
        # or NumPy, imported by the derivation itself, would be left unseeded.
        _distributed.rank_seed(value, rank)
    live = _frameworks.loaded()
    saved = [(fw, fw.get_state()) for fw in live]
    # Per rank: which stream is shared across ranks and which is derived is _distributed's call.
    seeds = {fw.name: _distributed.stream_seed(value, fw.name, rank) for fw in live}
    try:
        for fw in live:
            fw.seed(seeds[fw.name])
    except BaseException:
        for fw, state in saved:
            fw.set_state(state)
        raise
    _session.seed, _session.rank = value, rank
    _session.seeds = seeds
    _session.marks = {k: v for fw in live for k, v in fw.fingerprints().items()}
    os.environ["PYTHONHASHSEED"] = str(value)
    os.environ["REPRO_SEED"] = str(value)


def _apply_to(
    live: tuple[Framework, ...] | list[Framework], settings: Settings, session: Session
) -> None:
    saved = [(fw, fw.read_settings()) for fw in live]
    env = {name: os.environ.get(name) for name in ENV_VARS}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for fw in live:
                fw.apply_settings(settings)
    except BaseException:
        for fw, flags in saved:
            fw.restore_settings(flags)
        _restore_env(env)
        raise
    for w in caught:
        message = str(w.message)
        if message not in session.notes:
            session.notes.append(message)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _restore_env(env: dict[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _resolve(
    seed: Any, profile: str | None, overrides: dict[str, Any]
) -> tuple[int | None, Profile | None, Settings | None, dict[str, Any]]:
    """Check every argument before anything changes; overrides alone adjust the current profile."""
    value = None if seed is None else check_seed(seed)
    if profile is None and overrides:
        if _session.profile is None:
            raise ValueError(
                f"setting {', '.join(overrides)} needs a profile: pass profile='debug' "
                "(or another) with it"
            )
        profile = _session.profile
        overrides = {**_session.overrides, **overrides}
    if profile is None:
        return value, None, None, {}
    chosen = get_profile(profile)
    return value, chosen, chosen.settings.with_overrides(**overrides), dict(overrides)


def _use(chosen: Profile, settings: Settings, overrides: dict[str, Any]) -> None:
    _apply_to(_frameworks.loaded(), settings, _session)
    _session.profile, _session.overrides, _session.settings = chosen.name, overrides, settings
    # For child processes (repro.seed_from_env), like REPRO_SEED.
    os.environ["REPRO_PROFILE"] = chosen.name
    if overrides:
        os.environ["REPRO_OVERRIDES"] = json.dumps(overrides)
    else:
        os.environ.pop("REPRO_OVERRIDES", None)


def seed(seed: int | None = None, *, rank: int | None = None) -> int:
    """Seed Python ``random``, NumPy's global RNG and PyTorch (CPU and every CUDA device).

    Gives exactly the streams of the reference guide's ``set_seed(seed)`` (and of
    Lightning's ``seed_everything(seed)``). A framework imported later is seeded
    at its import. With ``None``, draws a fresh seed from the OS. Also sets
    ``PYTHONHASHSEED`` and ``REPRO_SEED`` for child processes; the running
    kernel's own ``str`` hashing cannot change (see :attr:`repro.State.hash_seed`).

    In a process group (or under torchrun, or with ``rank=``), torch stays on ``seed``
    on every rank while Python ``random`` and NumPy get ``repro.rank_seed(seed, rank)``:
    the same model initialisation, each rank its own data streams.

    Returns the seed, so that a drawn one can be pinned.
    """
    value = fresh_seed() if seed is None else check_seed(seed)
    _seed_all(value, _distributed.resolve_rank(rank))
    _watch()
    _changed()
    return value


def use_profile(name: str, **overrides: Any) -> Profile:
    """Switch the backend flags to profile ``name``, with optional flag ``overrides``.

    All or nothing: if a flag cannot be set, every flag is put back. Frameworks
    imported later get the same flags at their import. Returns the profile.
    """
    chosen = get_profile(name)
    _use(chosen, chosen.settings.with_overrides(**overrides), dict(overrides))
    _watch()
    _changed()
    return chosen


def setup(
    seed: int | None = None,
    profile: str | None = None,
    *,
    rank: int | None = None,
    **overrides: Any,
) -> int | None:
    """Seed and switch profile in one call, checking every argument before changing anything.

    ``repro.setup(42, "debug")`` is what ``%repro 42 --deterministic`` does. A
    ``None`` seed or profile leaves that part as it is; overrides without a
    profile adjust the current profile. ``rank`` as for :func:`seed`. Returns the session's seed.
    """
    value, chosen, settings, merged = _resolve(seed, profile, overrides)
    ranked = _distributed.resolve_rank(rank)
    if chosen is not None and settings is not None:
        _use(chosen, settings, merged)
    if value is not None:
        _seed_all(value, ranked)
    _watch()
    _changed()
    return _session.seed


@contextlib.contextmanager
def scope(seed: int | None = None, profile: str | None = None, **overrides: Any) -> Iterator[int]:
    """Run a block under a seed and profile, then restore everything it touched.

    Saves every RNG state, backend flag and environment variable repro may
    change, seeds with ``seed`` (the session's seed if ``None``, or a fresh one if
    there is none), applies ``profile``, and restores it all on exit, also after
    an exception or ``KeyboardInterrupt``. CUDA generators are saved only if
    CUDA is already initialised: entering a scope never starts a GPU. Yields the seed.
    """
    value, chosen, settings, merged = _resolve(seed, profile, overrides)
    if value is None:
        value = _session.seed if _session.seed is not None else fresh_seed()
    snapshot = _Snapshot.take()
    try:
        if chosen is not None and settings is not None:
            _use(chosen, settings, merged)
        ranked = _distributed.resolve_rank()
        _seed_all(value, _session.rank if ranked is None else ranked)
        _watch()
        _changed()
        yield value
    finally:
        snapshot.restore()


@dataclass
class _Snapshot:
    session: Session
    states: list[tuple[Framework, Any, dict[str, Any]]]
    env: dict[str, str | None]

    @classmethod
    def take(cls) -> _Snapshot:
        states = [(fw, fw.get_state(), fw.read_settings()) for fw in _frameworks.loaded()]
        return cls(_session.copy(), states, {name: os.environ.get(name) for name in ENV_VARS})

    def restore(self) -> None:
        global _session
        errors: list[BaseException] = []
        before = {fw.name for fw, _, _ in self.states}
        for fw, state, flags in self.states:
            try:
                fw.set_state(state)
                fw.restore_settings(flags)
            except Exception as exc:
                errors.append(exc)
        outer = self.session
        for fw in _frameworks.loaded():
            if fw.name in before:
                continue
            # Imported inside the scope: leave it as if imported under the outer session.
            try:
                if outer.seed is None:
                    fw.reset()
                else:
                    value = _distributed.stream_seed(outer.seed, fw.name, outer.rank)
                    fw.seed(value)
                    outer.seeds[fw.name] = value
                    outer.marks.update(fw.fingerprints())
                fw.apply_settings(outer.settings or Settings())
            except Exception as exc:
                errors.append(exc)
        _restore_env(self.env)
        outer.generation = _session.generation
        _session.__dict__.update(outer.__dict__)
        _changed()
        if errors:
            raise RuntimeError(f"repro: could not restore everything: {errors!r}") from errors[0]
