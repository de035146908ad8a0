"""The kernel's current seed and profile, and the ways to change them.

``seed()``, ``use_profile()``, ``setup()`` and ``scope()`` are plain functions:
the magics, the panel and scripts all call them. A framework that is not yet
imported is seeded (and switched to the profile's flags) when it is imported,
through a post-import hook, so ``import repro`` never imports torch.

Every change checks all of its arguments first, then applies all or nothing, under
one lock: a panel callback arriving from another thread while a cell changes the
state applies before or after that change, never in the middle of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import wrapt

from repro import _environ, _ranks
from repro import frameworks as _frameworks
from repro._profiles import Profile, Settings, get_profile, resolve
from repro._seed import check_seed, fresh_seed
from repro.frameworks import Framework

__all__ = [
    "History",
    "Session",
    "Snapshot",
    "apply",
    "current",
    "history",
    "record_verdict",
    "scope",
    "seed",
    "setup",
    "snapshot",
    "subscribe",
    "use_profile",
]


@dataclass(frozen=True)
class Session:
    """What repro has applied to this process: what a :class:`Snapshot` saves and restores.

    Immutable: a change replaces the whole value (``dataclasses.replace``), so a saved
    one cannot be changed under its holder. Read the live one with :func:`current`.
    """

    seed: int | None = None
    profile: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings | None = None
    #: framework name -> the seed it was given
    seeds: Mapping[str, int] = field(default_factory=dict)
    #: stream label -> fingerprint right after seeding ("moved" compares with it)
    marks: Mapping[str, str] = field(default_factory=dict)
    #: warnings raised while applying settings, kept for the state's warnings
    notes: tuple[str, ...] = ()
    #: the last config applied with repro.apply_config (for ``%repro check``)
    config: dict[str, Any] | None = None
    #: the rank the streams were derived for (None: one process, the guide's streams)
    rank: int | None = None


@dataclass
class History:
    """What happened in this process, which no restore takes back."""

    #: bumped on every change, so a view can tell cheaply that nothing changed
    generation: int = 0
    #: the last verify verdict line (``%%repro --verify``, ``repro.verify``), or None
    last_verify: str | None = None


_session = Session()
_history = History()
#: Held by every change and by every read of the whole state (``repro.state()``).
lock = threading.RLock()
_listeners: list[Callable[[], None]] = []
_watched: set[str] = set()


def current() -> Session:
    """The session now (an immutable value: read it again after a change)."""
    return _session


def history() -> History:
    """What happened in this process: the change count and the last verify verdict."""
    return _history


def _set(**changes: Any) -> None:
    """Replace the session with a copy that has ``changes`` (the one way it changes)."""
    global _session
    _session = replace(_session, **changes)


def subscribe(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` after every change of seed, profile or scope; returns an unsubscribe."""
    _listeners.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            _listeners.remove(callback)

    return unsubscribe


def _changed() -> None:
    _history.generation += 1
    for callback in list(_listeners):
        try:
            callback()
        except Exception as exc:  # a broken listener (a closed panel) must not break seeding
            warnings.warn(f"repro: a state listener failed: {exc!r}", RuntimeWarning, stacklevel=3)


def record_verdict(line: str) -> None:
    """Remember the last verify verdict (the state and the panel show it)."""
    _history.last_verify = line
    _changed()


def effective_seed(seed: Any = None) -> tuple[int, bool]:
    """The seed a seeded block runs with, and whether it was drawn just now.

    ``seed`` if given (checked), else the session's seed, else a fresh one from
    the OS (``drawn`` is then True, so the caller can print or warn that it will
    not repeat).
    """
    if seed is not None:
        return check_seed(seed), False
    if _session.seed is not None:
        return _session.seed, False
    return fresh_seed(), True


# --- deferred seeding -------------------------------------------------------------


def _sync(fw: Framework, session: Session, *, undo: bool = False) -> Session:
    """Leave ``fw``, imported just now, as if it had been imported under ``session``; return
    ``session`` with what that seeding recorded.

    The one way a framework imported late is brought in line: at its import, and when a
    scope it was imported in ends (``undo``: it then carries the scope's seed and flags, so
    without a seed it is reset and without a profile its flags go back to the defaults).
    """
    if session.seed is not None:
        value = _ranks.stream_seed(session.seed, fw.name, session.rank)
        fw.seed(value)
        session = replace(
            session,
            seeds={**session.seeds, fw.name: value},
            marks={**session.marks, **fw.fingerprints()},
        )
    elif undo:
        fw.reset()
    if session.settings is not None or undo:
        notes = _apply_to([fw], session.settings or Settings(), session.notes)
        session = replace(session, notes=notes)
    return session


def _on_import(module: Any) -> None:
    global _session
    with lock:
        for fw in _frameworks.frameworks():
            if fw.module == module.__name__:
                try:
                    _session = _sync(fw, _session)
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


def _seed_all(value: int, rank: int | None = None, *, rollback: bool = True) -> None:
    """Seed every imported framework with ``value``: all of them, or none if one fails.

    Only frameworks whose seeding may fail are saved (a NumPy ``get_state`` alone
    costs 25 µs), and they are seeded first; the others cannot fail, and an
    interrupt among them finishes the seeding rather than leave it half done.
    ``rollback=False`` where the caller holds a snapshot that it restores on failure.
    On a ``rank``, each framework gets its stream's seed (see :mod:`repro._ranks`).
    """
    if rank is not None:
        # Deriving a rank's seed imports NumPy: do it before listing what is imported,
        # or NumPy, imported by the derivation itself, would be left unseeded.
        _ranks.rank_seed(value, rank)
    live = _frameworks.loaded()
    seeds = {fw.name: _ranks.stream_seed(value, fw.name, rank) for fw in live}
    risky = [fw for fw in live if fw.seed_may_fail]
    safe = [fw for fw in live if not fw.seed_may_fail]
    saved = [(fw, fw.get_state()) for fw in risky] if rollback else []
    try:
        for fw in risky:
            fw.seed(seeds[fw.name])
    except BaseException:
        for fw, state in saved:
            fw.set_state(state)
        raise
    done = 0
    try:
        for fw in safe:
            fw.seed(seeds[fw.name])
            done += 1
    finally:
        # Also reached after an interrupt: the rest cannot fail, so the seeding completes.
        for fw in safe[done:]:
            fw.seed(seeds[fw.name])
        marks = {k: v for fw in live for k, v in _seeded_fingerprints(fw, seeds[fw.name]).items()}
        _set(seed=value, rank=rank, seeds=seeds, marks=marks)
        os.environ["PYTHONHASHSEED"] = str(value)
        os.environ[_environ.SEED_VARIABLE] = str(value)


#: (framework, seed) -> its fingerprints right after that seeding (fingerprints_by_seed)
_seeded: dict[tuple[Framework, int], dict[str, str]] = {}


def _seeded_fingerprints(fw: Framework, value: int) -> dict[str, str]:
    """``fw.fingerprints()`` right after ``fw.seed(value)``, read once per seed where it may be.

    A cell re-run under the same seed then reads no state (NumPy's costs 25 µs).
    """
    if not fw.fingerprints_by_seed:
        return fw.fingerprints()
    key = (fw, value)
    if key not in _seeded:
        if len(_seeded) >= 256:  # a sweep over many seeds: keep it small
            _seeded.clear()
        _seeded[key] = fw.fingerprints()
    return _seeded[key]


def _apply_to(
    live: tuple[Framework, ...] | list[Framework], settings: Settings, notes: tuple[str, ...]
) -> tuple[str, ...]:
    """Switch ``live`` to ``settings``, all or nothing; return ``notes`` with the warnings
    that raised (each shown once more, as it happened)."""
    flags = settings.as_dict()
    saved = [(fw, fw.read_settings()) for fw in live]
    env = {name: os.environ.get(name) for name in _environ.WRITTEN}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for fw in live:
                fw.apply_settings(flags)
    except BaseException:
        for fw, before in saved:
            fw.restore_settings(before)
        _restore_env(env)
        raise
    for w in caught:
        message = str(w.message)
        if message not in notes:
            notes = (*notes, message)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return notes


def _restore_env(env: Mapping[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _use(chosen: Profile, settings: Settings, overrides: dict[str, Any]) -> None:
    notes = _apply_to(_frameworks.loaded(), settings, _session.notes)
    _set(profile=chosen.name, overrides=overrides, settings=settings, notes=notes)
    # For child processes (repro.seed_from_env), like REPRO_SEED.
    os.environ[_environ.PROFILE_VARIABLE] = chosen.name
    if overrides:
        os.environ[_environ.OVERRIDES_VARIABLE] = json.dumps(overrides)
    else:
        os.environ.pop(_environ.OVERRIDES_VARIABLE, None)


_KEEP: Any = object()


def apply(
    seed: Any = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    rank: int | None = None,
    config: Any = _KEEP,
) -> int | None:
    """The one way the session changes: check everything, then profile and seed, all or nothing.

    ``seed`` ``None`` keeps the seed; ``profile`` ``None`` with overrides adjusts the
    current profile; ``rank`` as for :func:`seed`; ``config`` (a checked config dict) is
    remembered for ``repro.check()`` once the rest has applied. Returns the session's seed.
    """
    with lock:
        value = None if seed is None else check_seed(seed)
        ranked = _ranks.resolve_rank(rank)
        chosen, settings, kept = resolve(
            profile, dict(overrides or {}), (_session.profile, _session.overrides)
        )
        before = snapshot() if chosen is not None and value is not None else None
        try:
            if chosen is not None and settings is not None:
                _use(chosen, settings, kept)
            if value is not None:
                _seed_all(value, ranked, rollback=before is None)
        except BaseException:
            if before is not None:
                before.restore(notify=False)
            raise
        if config is not _KEEP:
            _set(config=config)
        _watch()
        result = _session.seed
    _changed()
    return result


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
    with lock:
        _seed_all(value, _ranks.resolve_rank(rank))
        _watch()
    _changed()
    return value


def use_profile(name: str, **overrides: Any) -> Profile:
    """Switch the backend flags to profile ``name``, with optional flag ``overrides``.

    All or nothing: if a flag cannot be set, every flag is put back. Frameworks
    imported later get the same flags at their import. Returns the profile.
    """
    chosen = get_profile(name)
    apply(None, name, overrides)
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
    profile adjust the current profile. ``rank`` as for :func:`seed`. Returns the session's
    seed.
    """
    return apply(seed, profile, overrides, rank=rank)


@contextlib.contextmanager
def scope(seed: int | None = None, profile: str | None = None, **overrides: Any) -> Iterator[int]:
    """Run a block under a seed and profile, then restore everything it touched.

    Saves every RNG state, backend flag and environment variable repro may
    change, seeds with ``seed`` (the session's seed if ``None``, or a fresh one if
    there is none), applies ``profile``, and restores it all on exit, also after
    an exception or ``KeyboardInterrupt``. CUDA generators are saved only if
    CUDA is already initialised: entering a scope never starts a GPU. Yields the seed.
    """
    with lock:
        chosen, settings, kept = resolve(profile, overrides, (_session.profile, _session.overrides))
        value, _ = effective_seed(seed)
        saved = snapshot()
        try:
            if chosen is not None and settings is not None:
                _use(chosen, settings, kept)
            _seed_all(value, _ranks.resolve_rank(None, _session.rank), rollback=False)
            _watch()
        except BaseException:
            saved.restore(notify=False)
            raise
    _changed()
    try:
        yield value
    finally:
        saved.restore()


@dataclass(frozen=True)
class Snapshot:
    """Everything repro may change, saved: the session, each framework's RNG state and flags,
    and repro's environment variables. :meth:`restore` puts it all back."""

    session: Session
    states: tuple[tuple[Framework, Any, dict[str, Any]], ...]
    env: Mapping[str, str | None]

    def restore(self, *, notify: bool = True) -> None:
        """Put back what was saved; a framework imported since is left as if imported under it.

        Every part is attempted; a ``RuntimeError`` afterwards lists what could not be restored.
        The :func:`history` (a verify verdict, the change count) is not the session's: it stays.
        """
        global _session
        errors: list[BaseException] = []
        with lock:
            before = {fw.name for fw, _, _ in self.states}
            for fw, state, flags in self.states:
                try:
                    fw.set_state(state)
                    fw.restore_settings(flags)
                except Exception as exc:
                    errors.append(exc)
            outer = self.session
            for fw in _frameworks.loaded():
                if fw.name not in before:  # imported inside the scope
                    try:
                        outer = _sync(fw, outer, undo=True)
                    except Exception as exc:
                        errors.append(exc)
            _restore_env(self.env)
            _session = outer
        if notify:
            _changed()
        if errors:
            raise RuntimeError(f"repro: could not restore everything: {errors!r}") from errors[0]


def snapshot() -> Snapshot:
    """Save everything repro may change (see :class:`Snapshot`); never starts a GPU."""
    with lock:
        states = tuple((fw, fw.get_state(), fw.read_settings()) for fw in _frameworks.loaded())
        env = {name: os.environ.get(name) for name in _environ.WRITTEN}
        return Snapshot(_session, states, env)


def reset() -> None:
    """Forget the session's seed, profile and config, and the last verdict (RNG states and
    flags stay as they are)."""
    global _session
    with lock:
        _session = Session()
        _history.last_verify = None
    _changed()
