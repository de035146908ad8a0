"""Which rank this process is, and which seed each stream gets on it: decided here, once.

The session (``seed``, ``setup``, ``scope``), the DataLoader helpers and the ``State`` all
ask :func:`resolve_rank`; none reads ``RANK`` or the process group itself.

Which stream is shared across ranks and which is per rank:

- **Shared:** torch's global generators (CPU and every CUDA device) get the seed itself on
  every rank, so a model built with the same code starts with the same weights everywhere
  (DDP broadcasts rank 0's weights anyway; code outside DDP, e.g. a randomly initialised
  projection or dropout masks in a model-parallel part, relies on it too).
- **Per rank:** Python ``random`` and NumPy's global RNG (where data sampling and
  augmentation draw) get :func:`rank_seed` ``(seed, rank)``, and so does the DataLoader
  generator that ``repro.dataloader_kwargs()`` makes, from which torch derives each worker's
  torch seed and repro each worker's ``random`` and NumPy streams: every (rank, worker) pair
  has its own streams.

``rank_seed`` is ``numpy.random.SeedSequence(seed, spawn_key=(rank,))`` reduced to one
32-bit seed, so that rank ``r``'s data streams can be replayed in a single process with
``repro.seed(repro.rank_seed(seed, r))``. Without a rank (no process group, no ``RANK`` in
the environment, no ``rank=`` argument) nothing is derived: the guide's ``set_seed`` streams.

A leaf: it imports nothing of repro, and neither torch nor NumPy until asked.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "SHARED_ACROSS_RANKS",
    "env_rank",
    "process_group",
    "rank_seed",
    "resolve_rank",
    "shown_rank",
    "stream_seed",
]

#: Frameworks whose global generator gets the same seed on every rank (model initialisation).
SHARED_ACROSS_RANKS = frozenset({"torch"})


def process_group() -> tuple[int, int] | None:
    """``(rank, world_size)`` of the initialised default process group, else ``None``.

    Never imports torch: if ``torch.distributed`` was not imported, no group can exist.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist.get_rank(), dist.get_world_size()


def env_rank() -> int | None:
    """``RANK`` as torchrun (and ``repro.launch``) set it for each process, else ``None``."""
    raw = os.environ.get("RANK")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"the environment variable RANK must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"the environment variable RANK must be >= 0, got {value}")
    return value


def resolve_rank(rank: int | None = None, inherited: int | None = None) -> int | None:
    """This process's rank: ``rank`` if given, else the process group's, else ``RANK``, else
    ``inherited``.

    ``inherited`` is the rank the session's streams were derived for: a block that runs
    inside the session (``scope``, a DataLoader generator) keeps it, while a new seeding
    passes none, so ``repro.seed(7)`` after ``repro.seed(42, rank=1)`` is the guide's
    ``set_seed(7)`` again. A ``rank`` that contradicts an initialised process group is a
    ``ValueError``: seeding rank 1's streams on rank 0 would silently duplicate them.
    """
    group = process_group()
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f"rank must be an int >= 0 or None, got {type(rank).__name__} {rank!r}")
        if rank < 0:
            raise ValueError(f"rank must be an int >= 0 or None, got {rank}")
        if group is not None and group[0] != rank:
            raise ValueError(
                f"rank={rank} but this process is rank {group[0]} of its process group"
            )
        return rank
    if group is not None:
        return group[0]
    found = env_rank()
    return inherited if found is None else found


def shown_rank(seeded: int | None) -> tuple[int | None, int | None]:
    """``(rank, world_size)`` as the state shows them: the rank the streams were derived
    for (``seeded``), else the process group's; the world size only a group knows.

    Never raises (a ``State`` is always drawable): it reads no environment variable.
    """
    group = process_group()
    if seeded is not None:
        return seeded, None if group is None else group[1]
    return group or (None, None)


def rank_seed(seed: int, rank: int) -> int:
    """The 32-bit seed of rank ``rank``'s own streams: ``SeedSequence(seed, spawn_key=(rank,))``.

    Spawned, not ``seed + rank``, so rank 1 of seed 42 is not rank 0 of seed 43.
    """
    import numpy as np

    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)[0])


def stream_seed(seed: int, framework: str, rank: int | None) -> int:
    """The seed ``framework``'s global generator gets on ``rank`` (see the module's policy)."""
    if rank is None or framework in SHARED_ACROSS_RANKS:
        return seed
    return rank_seed(seed, rank)
