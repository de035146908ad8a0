"""repro.scope: seed and settings inside, everything restored after, also after errors."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from tests.helpers import streams, torch_flags

import repro


def _continue_without_scope(seed: int) -> list:
    repro.seed(seed)
    streams(3)
    return streams(3)


def _continue_around_scope(seed: int, body) -> list:
    repro.seed(seed)
    streams(3)
    body()
    return streams(3)


def test_scope_seeds_and_restores_rng_flags_env_and_session() -> None:
    expected = _continue_without_scope(5)
    repro.use_profile("production")
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    flags = torch_flags()
    inside = []

    def body() -> None:
        with repro.scope(42, "debug") as seed:
            assert seed == 42
            assert torch.are_deterministic_algorithms_enabled()
            assert os.environ["PYTHONHASHSEED"] == "42"
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
            assert repro.state().profile == "debug"
            inside.append(streams(2))

    assert _continue_around_scope(5, body) == expected
    assert torch_flags() == flags
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert os.environ["PYTHONHASHSEED"] == "5"
    st = repro.state()
    assert (st.seed, st.profile) == (5, "production")
    # The scope's streams are those of a plain seed(42).
    repro.seed(42)
    assert inside[0] == streams(2)


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_scope_restores_after_an_exception(error: type[BaseException]) -> None:
    expected = _continue_without_scope(9)
    flags = torch_flags()

    def body() -> None:
        with pytest.raises(error), repro.scope(1, "production"):
            torch.rand(10)
            raise error("boom")

    assert _continue_around_scope(9, body) == expected
    assert torch_flags() == flags
    assert repro.state().profile is None


def test_nested_scopes() -> None:
    repro.seed(3)
    with repro.scope(4, "final"):
        with repro.scope(5, "production"):
            assert torch.backends.cudnn.benchmark
        assert repro.state().seed == 4
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert repro.state().seed == 3
    assert not torch.are_deterministic_algorithms_enabled()


def test_scope_without_seed_uses_the_session_seed() -> None:
    repro.seed(11)
    with repro.scope() as seed:
        first = streams(2)
    with repro.scope() as again:
        assert streams(2) == first
    assert seed == again == 11


def test_bad_arguments_change_nothing() -> None:
    repro.seed(2)
    before = repro.state()
    with pytest.raises(ValueError), repro.scope(-5):
        pass
    with pytest.raises(ValueError), repro.scope(1, "nope"):
        pass
    assert repro.state() == before


def test_cuda_states_are_saved_only_when_cuda_is_initialised(monkeypatch) -> None:
    # MOCK: there is no GPU on this machine, so torch.cuda is faked to look initialised with
    # one device. The real behaviour is tested in test_gpu.py on a CUDA machine.
    fake = {"cuda0": torch.tensor([1, 2, 3], dtype=torch.uint8)}
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    # ... and the build to have CUDA, as one with an initialised GPU has.
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [fake["cuda0"].clone()])
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda i=0: fake["cuda0"].clone())

    def set_all(states: list) -> None:
        calls.append("set_all")
        fake["cuda0"] = states[0].clone()

    def seed_all(seed: int) -> None:
        calls.append(f"seed_all({seed})")
        fake["cuda0"] = torch.tensor([seed % 256, 0, 0], dtype=torch.uint8)

    monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seed_all)
    streams_before = {s.stream for s in repro.state().sources}
    assert "torch cuda:0" in streams_before
    with repro.scope(7):
        assert fake["cuda0"].tolist() == [7, 0, 0]
    assert fake["cuda0"].tolist() == [1, 2, 3]
    # Seeding queued seed 7 for CUDA; leaving restored the saved state, last.
    assert "seed_all(7)" in calls and calls[-1] == "set_all" and calls.count("set_all") == 1


def test_python_and_numpy_state_identical_after_scope() -> None:
    random.seed(1)
    np.random.seed(1)
    py, npst = random.getstate(), np.random.get_state()
    with repro.scope(99):
        random.random()
        np.random.rand(100)
    assert random.getstate() == py
    after = np.random.get_state()
    assert (after[1] == npst[1]).all() and after[2] == npst[2]
