"""DataLoader workers with their own streams, identical from run to run; rng() Generators."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import repro
from repro._data import worker_seed_sequence


class Augmented(Dataset):
    """Each item draws from Python random and NumPy's global RNG, as augmentations do."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> tuple[int, int, float, float]:
        worker = torch.utils.data.get_worker_info()
        return index, worker.id if worker else -1, random.random(), float(np.random.rand())


def batches(**kwargs) -> list[tuple]:
    loader = DataLoader(Augmented(), batch_size=4, shuffle=True, num_workers=2, **kwargs)
    out = []
    for _ in range(2):  # two epochs
        for idx, wid, py, nump in loader:
            out.extend(zip(idx.tolist(), wid.tolist(), py.tolist(), nump.tolist(), strict=True))
    return out


@pytest.mark.slow
def test_two_runs_give_the_same_batches_and_workers_differ() -> None:
    repro.seed(42)
    first = batches(**repro.dataloader_kwargs())
    repro.seed(42)
    second = batches(**repro.dataloader_kwargs())
    assert first == second
    draws = [(py, nump) for _, _, py, nump in first]
    assert len(set(draws)) == len(draws)  # no worker repeats another's draws, nor across epochs
    assert {wid for _, wid, _, _ in first} == {0, 1}
    # A different seed gives other batches.
    assert batches(**repro.dataloader_kwargs(seed=43)) != first


@pytest.mark.slow
def test_shuffle_order_is_the_guides_generator() -> None:
    g = torch.Generator()
    g.manual_seed(42)
    guide = DataLoader(range(20), batch_size=5, shuffle=True, generator=g)
    ours = DataLoader(range(20), batch_size=5, shuffle=True, **repro.dataloader_kwargs(seed=42))
    assert [b.tolist() for b in guide] == [b.tolist() for b in ours]


def test_worker_seeds_do_not_collide_like_base_plus_id() -> None:
    # With seed = base + worker_id, worker 1 of base b equals worker 0 of base b + 1.
    a = worker_seed_sequence(1000, 1).generate_state(4)
    b = worker_seed_sequence(1001, 0).generate_state(4)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, worker_seed_sequence(1000, 1).generate_state(4))


def test_seed_worker_outside_a_worker_is_deterministic() -> None:
    torch.manual_seed(5)
    repro.seed_worker(0)
    first = (random.random(), np.random.rand())
    torch.manual_seed(5)
    repro.seed_worker(0)
    assert (random.random(), np.random.rand()) == first


def test_dataloader_kwargs_without_a_seed_warns() -> None:
    with pytest.warns(repro.ReproWarning, match="no session seed"):
        kwargs = repro.dataloader_kwargs()
    assert set(kwargs) == {"generator", "worker_init_fn"}


def test_dataloader_kwargs_rejects_bad_seed() -> None:
    with pytest.raises(ValueError, match="0 <= seed"):
        repro.dataloader_kwargs(seed=-3)


def test_rng_is_reproducible_and_independent_per_name() -> None:
    repro.seed(42)
    a1 = repro.rng("augment").random(4)
    b1 = repro.rng("init").random(4)
    plain = repro.rng().random(4)
    repro.seed(42)
    assert np.array_equal(repro.rng("augment").random(4), a1)
    assert not np.array_equal(a1, b1) and not np.array_equal(a1, plain)
    repro.seed(43)
    assert not np.array_equal(repro.rng("augment").random(4), a1)
    with pytest.raises(TypeError):
        repro.rng(5)  # type: ignore[arg-type]
