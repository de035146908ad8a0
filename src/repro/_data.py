"""DataLoader workers and NumPy Generators that repeat from run to run."""

from __future__ import annotations

import numbers
import random
import warnings
from typing import Any

import xxhash

from repro import _ranks
from repro._session import current, effective_seed
from repro._warning import ReproWarning

__all__ = ["dataloader_kwargs", "rng", "seed_worker", "worker_seed_sequence"]


def _session_seed(seed: int | None, what: str) -> int:
    value, drawn = effective_seed(seed)
    if drawn:
        warnings.warn(
            f"repro: {what} without a seed: no session seed is set (run %repro SEED or "
            f"repro.seed(SEED) first), so a fresh seed {value} was drawn and this will not repeat",
            ReproWarning,
            stacklevel=3,
        )
    return value


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            "repro.dataloader_kwargs() and repro.seed_worker are for PyTorch's DataLoader, "
            "and PyTorch is not installed (pip install torch)"
        ) from None
    return torch


def worker_seed_sequence(base_seed: int, worker_id: int) -> Any:
    """The ``numpy.random.SeedSequence`` of worker ``worker_id`` for a loader's ``base_seed``.

    Derived by spawning (``spawn_key=(worker_id,)``), not by adding the worker id,
    so no two workers' streams collide, whatever the base seed (cf. Lightning #20412).
    """
    import numpy as np

    return np.random.SeedSequence(entropy=base_seed, spawn_key=(worker_id,))


def seed_worker(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn``: seed this worker's Python ``random`` and NumPy global RNG.

    torch gives each worker ``base_seed + worker_id`` (``base_seed`` drawn from the
    loader's generator for every epoch); repro recovers ``base_seed`` and derives the
    worker's streams with ``SeedSequence``, so every worker has its own stream and
    the same loader generator gives the same streams on every run.

    Everything comes from the seed torch hands the worker, never from the parent's
    memory, so workers started with ``multiprocessing_context="spawn"`` get the same
    streams as with ``fork``; the rank is already in that seed (see ``dataloader_kwargs``).
    """
    import numpy as np

    torch = _torch()
    if isinstance(worker_id, bool) or not isinstance(worker_id, numbers.Integral):
        raise TypeError(f"worker_id must be an int, got {type(worker_id).__name__}")
    info = torch.utils.data.get_worker_info()
    base = (info.seed if info is not None else torch.initial_seed()) - worker_id
    if not 0 <= worker_id <= base:
        raise ValueError(f"worker_id must be a DataLoader worker's id (0, 1, ...), got {worker_id}")
    words = worker_seed_sequence(base, worker_id).generate_state(4)
    np.random.seed(words)
    random.seed(int.from_bytes(words.tobytes(), "little"))


def dataloader_kwargs(seed: int | None = None, *, rank: int | None = None) -> dict[str, Any]:
    """``{"generator": ..., "worker_init_fn": ...}`` to pass as ``DataLoader(ds, **kwargs)``.

    The generator is ``torch.Generator().manual_seed(seed)``, exactly the guide's,
    so shuffling order matches it; ``seed`` defaults to the session seed. On a rank
    (``rank``, else the process group's, ``RANK`` or the session's), it is seeded with
    ``repro.rank_seed(seed, rank)``: torch draws each epoch's worker base seed from it,
    so every (rank, worker) pair has its own streams, also with a ``DistributedSampler``
    (which shuffles with its own ``seed`` and ``set_epoch``, the same on every rank).
    """
    torch = _torch()
    value = _session_seed(seed, "dataloader_kwargs()")
    ranked = _ranks.resolve_rank(rank, current().rank)
    generator = torch.Generator()
    generator.manual_seed(value if ranked is None else _ranks.rank_seed(value, ranked))
    return {"generator": generator, "worker_init_fn": seed_worker}


def rng(name: str | None = None, seed: int | None = None) -> Any:
    """A ``numpy.random.Generator`` derived from the session seed, independent per ``name``.

    For code built on ``np.random.default_rng``, which no global seed reaches. The
    same name and seed give the same stream in every run; different names give
    independent streams.
    """
    import numpy as np

    if name is not None and not isinstance(name, str):
        raise TypeError(f"rng() name must be a str, got {type(name).__name__}")
    value = _session_seed(seed, "rng()")
    key = () if name is None else (xxhash.xxh32_intdigest(name.encode()),)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(value, spawn_key=key)))
