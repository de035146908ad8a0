"""Beyond one process: ``repro.launch`` and the environment hand-over, above the session.

``launch`` starts ranks that each apply this session's seed and profile with their own
streams (the policy is :mod:`repro._ranks`'); ``seed_from_env`` applies what a parent
exported (``REPRO_SEED``, ``REPRO_PROFILE``, ``REPRO_OVERRIDES``) in a process torchrun or
a script started.

Importing this module imports neither torch nor cloudpickle.
"""

from __future__ import annotations

import gc
import json
import linecache
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from repro import _environ
from repro._profiles import get_profile, register_profile
from repro._seed import parse_seed
from repro._session import current, setup
from repro._warning import ReproWarning

__all__ = ["LaunchError", "launch", "seed_from_env"]


class LaunchError(RuntimeError):
    """A rank started by :func:`launch` raised or died: ``rank`` says which, ``traceback`` how."""

    def __init__(self, rank: int, traceback: str, exitcode: int | None = None) -> None:
        self.rank = rank
        self.traceback = traceback
        self.exitcode = exitcode
        super().__init__(f"rank {rank} failed:\n{traceback}")

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it: the rank's traceback, none of the parent's plumbing."""
        return [*self.traceback.rstrip().splitlines(), f"LaunchError: rank {self.rank} failed"]


# --- the environment hand-over ----------------------------------------------------


def _env_seed(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    return parse_seed(raw, f"the environment variable {name}", random=False)


def seed_from_env() -> int | None:
    """Apply the seed and profile a parent process exported; return the seed, or ``None``.

    Reads ``REPRO_SEED`` (else Lightning's ``PL_GLOBAL_SEED``, so a Lightning script
    and a repro notebook agree), ``REPRO_PROFILE`` and ``REPRO_OVERRIDES`` (a JSON
    object of flag overrides), which ``repro.seed`` and ``repro.use_profile`` set. The
    rank comes from the process group or ``RANK`` (torchrun sets it), so each rank gets
    its own data streams. Nothing set: nothing changes. Importing repro never does this.
    """
    seed = _env_seed(_environ.SEED_VARIABLE)
    if seed is None:
        seed = _env_seed(_environ.LIGHTNING_SEED_VARIABLE)
    profile = os.environ.get(_environ.PROFILE_VARIABLE) or None
    raw = os.environ.get(_environ.OVERRIDES_VARIABLE) or "{}"
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(
            f"the environment variable REPRO_OVERRIDES must be a JSON object, got {raw!r}"
        ) from None
    if not isinstance(overrides, dict):
        raise ValueError(
            f"the environment variable REPRO_OVERRIDES must be a JSON object, got {raw!r}"
        )
    if profile is None:
        overrides = {}  # overrides alone mean nothing without the profile they adjust
    if seed is None and profile is None:
        return None
    setup(seed, profile, **overrides)
    return seed


# --- launch -----------------------------------------------------------------------


def _free_port() -> int:
    # Bound and released: a small race with another process taking it, as with torchrun's own.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_rank(
    rank: int,
    payload: bytes,
    world_size: int,
    backend: str,
    port: int,
    results: str,
    session: tuple[int | None, Any, dict[str, Any]],
) -> None:
    """One rank's life: torchrun's environment, the process group, the session, then ``fn``."""
    import cloudpickle
    import torch.distributed as dist

    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    try:
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        seed, profile, overrides = session
        if profile is not None:
            # The parent's profile as it is there: one registered in a notebook cell too.
            register_profile(
                profile.name, profile.meant_for, profile.trade, **profile.settings.as_dict()
            )
        if seed is not None or profile is not None:
            setup(seed, profile and profile.name, rank=rank, **overrides)
        fn, args, kwargs, cells = cloudpickle.loads(payload)
        _restore_cell_code(cells)
        value = fn(rank, *args, **kwargs)
        with open(os.path.join(results, f"rank-{rank}.pkl"), "wb") as f:
            f.write(cloudpickle.dumps(value))
    except BaseException as exc:
        _write_error(results, rank, exc)
        raise
    # A DistributedDataParallel sits in reference cycles that hold its process group and
    # tensors; left to interpreter shutdown, gloo's threads free them without a usable
    # interpreter and abort ("terminate called without an active exception": 2 of 16 runs
    # here; torch PR 179291 describes it). Free them now, then leave together.
    gc.collect()
    if dist.is_initialized():  # fn may have destroyed it itself, as scripts often do
        dist.barrier()
        dist.destroy_process_group()


def _write_error(results: str, rank: int, exc: BaseException) -> None:
    """Record when and how ``fn`` failed on this rank, its traceback starting at ``fn``.

    When one rank fails, the others usually fail a moment later in a collective (gloo:
    "Connection reset by peer"); the parent reports the rank that failed first.
    """
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # this module's frames are repro's plumbing, not the user's code
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    record = {"time": time.time(), "traceback": text}
    with open(os.path.join(results, f"error-{rank}.json"), "w") as f:
        json.dump(record, f)


class _CellCode(NamedTuple):
    """What a rank needs to show the lines of functions defined in notebook cells."""

    #: each cell's "file name" (as IPython registered it) -> its lines
    sources: dict[str, list[str]]
    #: each function defined in a cell, with its file name: cloudpickle (3.1 and later) sends
    #: every function's code as "<dynamic-code>", so the rank puts the name back
    functions: list[tuple[types.FunctionType, str]]


def _cell_code(fn: Any) -> _CellCode:
    """The functions ``fn`` runs that were defined in notebook cells, and those cells' lines.

    A function defined in a cell lives in a "file" that IPython registered in ``linecache``
    (as it does for every cell) and that is not on disk: a spawned rank has no such entry,
    and its traceback would name the line without showing it. ``fn`` itself, what it wraps,
    and the cell functions they name (a helper from another cell) are searched.
    """
    code = _CellCode({}, [])
    seen: set[int] = set()
    todo: list[Any] = [fn]
    while todo:
        obj = todo.pop()
        obj = getattr(obj, "__func__", obj)  # a bound method
        obj = getattr(obj, "func", obj)  # functools.partial
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if not isinstance(obj, types.FunctionType):
            call = vars(type(obj)).get("__call__")  # a callable object
            if isinstance(call, types.FunctionType):
                todo.append(call)
            continue
        filename = obj.__code__.co_filename
        if filename not in code.sources and not os.path.exists(filename):
            lines = linecache.getlines(filename)
            if lines:
                code.sources[filename] = lines
        if filename not in code.sources:
            continue  # a library's function: its file is on disk, and its callees are its own
        code.functions.append((obj, filename))
        names = set(_names(obj.__code__))
        todo.extend(
            value
            for name, value in obj.__globals__.items()
            if name in names and isinstance(value, types.FunctionType)
        )
    return code


def _names(code: types.CodeType) -> Iterator[str]:
    """The global names ``code`` and the code nested in it use."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    """``code``, and the code nested in it, as compiled from ``filename``."""
    consts = tuple(
        _renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def _restore_cell_code(cells: _CellCode) -> None:
    """Give this rank the parent's cells (see :func:`_cell_code`): their lines in ``linecache``,
    under the names the functions' code carries again.

    An entry without a modification time is never checked against the disk, as IPython's own.
    """
    for filename, lines in cells.sources.items():
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    for function, filename in cells.functions:
        function.__code__ = _renamed(function.__code__, filename)


def launch(
    fn: Callable[..., Any],
    *args: Any,
    nprocs: int = 2,
    backend: str = "gloo",
    start_method: str = "spawn",
    **kwargs: Any,
) -> list[Any]:
    """Run ``fn(rank, *args, **kwargs)`` in ``nprocs`` processes; return each rank's value.

    The processes are started by ``torch.multiprocessing`` (``spawn`` by default) with
    torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT`` on a free local port), the default process group initialised with
    ``backend``, and this session's seed and profile applied with each rank's streams;
    ``OMP_NUM_THREADS=1`` unless it is set, as torchrun does.
    ``fn``, its arguments and its return values travel by value (cloudpickle), so a
    function defined in a notebook cell works. A rank that raises is a
    :class:`LaunchError` here with that rank's traceback, from ``fn`` down, with the source
    lines of functions defined in cells; the other ranks are stopped.
    """
    __tracebackhide__ = True  # IPython shows the LaunchError without repro's frames
    import cloudpickle
    import torch.multiprocessing as mp

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"nprocs must be an int >= 1, got {nprocs!r}")
    if start_method not in ("spawn", "forkserver", "fork"):
        raise ValueError(
            f"start_method must be 'spawn', 'forkserver' or 'fork', got {start_method!r}"
        )
    if start_method == "fork" and _cuda_initialized():
        raise ValueError(
            "start_method='fork' after CUDA was initialised in this process: a forked child "
            "cannot use CUDA. Use start_method='spawn' (the default) or fork before any CUDA call"
        )
    session = current()
    if session.seed is None:
        warnings.warn(
            "repro: launch() without a session seed: the ranks are not seeded and will not "
            "repeat (run %repro SEED or repro.seed(SEED) first)",
            ReproWarning,
            stacklevel=2,
        )
    # One pickle: the functions in the cell code are the very objects fn reaches there too.
    payload = cloudpickle.dumps((fn, args, kwargs, _cell_code(fn)))
    results = tempfile.mkdtemp(prefix="repro-launch-")
    profile = None if session.profile is None else get_profile(session.profile)
    state = (session.seed, profile, dict(session.overrides))
    # As torchrun does: one OpenMP thread per process unless told otherwise, or N ranks
    # each start one thread per core and spin against each other.
    threads = {} if "OMP_NUM_THREADS" in os.environ or nprocs == 1 else {"OMP_NUM_THREADS": "1"}
    try:
        os.environ.update(threads)  # the children copy the environment when they start
        try:
            context = mp.start_processes(
                _run_rank,
                args=(payload, nprocs, backend, _free_port(), results, state),
                nprocs=nprocs,
                join=False,
                start_method=start_method,
            )
        finally:
            for name in threads:
                os.environ.pop(name, None)
        _join(context, results)
        return [_read_result(results, rank) for rank in range(nprocs)]
    finally:
        shutil.rmtree(results, ignore_errors=True)


def _join(context: Any, results: str) -> None:
    """Wait for every rank; on an error or ``KeyboardInterrupt`` stop them all and raise."""
    __tracebackhide__ = True
    import torch.multiprocessing as mp

    # torch logs "Terminating process <pid> via signal SIGTERM" for each rank it stops after
    # an error: noise in a notebook, where the LaunchError already says what happened.
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)
    try:
        while not context.join(timeout=0.2):
            pass
    except mp.ProcessRaisedException as exc:
        raise _first_error(results, len(context.processes)) or LaunchError(
            exc.error_index, str(exc).strip()
        ) from None
    except mp.ProcessExitedException as exc:
        raise _first_error(results, len(context.processes)) or LaunchError(
            exc.error_index, str(exc).strip(), exc.exit_code
        ) from None
    finally:
        spawn_log.setLevel(level)
        # After an error torch has stopped the others; after Ctrl-C nobody has: do it here.
        for process in context.processes:
            if process.is_alive():
                process.terminate()
        for process in context.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


def _first_error(results: str, nprocs: int) -> LaunchError | None:
    """The error of the rank whose ``fn`` failed first, if any rank recorded one."""
    errors = []
    for rank in range(nprocs):
        try:
            with open(os.path.join(results, f"error-{rank}.json")) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        errors.append((record["time"], rank, record["traceback"]))
    if not errors:
        return None
    _, rank, text = min(errors)
    return LaunchError(rank, text)


def _read_result(results: str, rank: int) -> Any:
    import cloudpickle

    with open(os.path.join(results, f"rank-{rank}.pkl"), "rb") as f:
        return cloudpickle.loads(f.read())


def _cuda_initialized() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()
