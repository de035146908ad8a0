"""Profiles: every flag of every profile really switched, all or nothing, custom profiles."""

from __future__ import annotations

import os

import pytest
import torch
from tests.helpers import refusing_framework, torch_flags

import repro
from repro import frameworks

# The table, read straight from torch after switching.
EXPECTED = {
    "debug": dict(
        det=True, bench=False, algos=True, warn=False, tf32=False, cudnn_tf32=False, fill=True
    ),
    "final": dict(
        det=True, bench=False, algos=True, warn=True, tf32=False, cudnn_tf32=False, fill=True
    ),
    "search": dict(
        det=False, bench=False, algos=False, warn=False, tf32=False, cudnn_tf32=True, fill=True
    ),
    "production": dict(
        det=False, bench=True, algos=False, warn=False, tf32=True, cudnn_tf32=True, fill=False
    ),
}


def test_builtin_profiles_are_listed_in_order() -> None:
    assert [p.name for p in repro.profiles()][:4] == ["debug", "final", "search", "production"]
    assert all(p.meant_for and p.trade for p in repro.profiles())


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("start", ["debug", "production"])
def test_every_flag_of_every_profile(name: str, start: str) -> None:
    # Path independence: the same flags whichever profile ran before.
    repro.use_profile(start)
    repro.use_profile(name)
    assert torch_flags() == EXPECTED[name]
    assert repro.state().profile == name


def test_no_flag_changes_until_a_profile_is_chosen() -> None:
    torch.backends.cudnn.benchmark = True  # the user's own choice
    before = torch_flags()
    repro.seed(1)
    assert torch_flags() == before
    assert repro.state().profile is None


def test_deterministic_algorithms_set_cublas_workspace_if_unset() -> None:
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    repro.use_profile("search")
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    repro.use_profile("debug")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_user_cublas_workspace_is_kept() -> None:
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
    repro.use_profile("final")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_overrides_and_their_label() -> None:
    repro.use_profile("debug", deterministic_algorithms="warn")
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert repro.state().profile_label == "debug (deterministic_algorithms=warn)"


def test_unknown_profile_changes_nothing() -> None:
    repro.use_profile("production")
    before = torch_flags()
    with pytest.raises(ValueError, match="unknown profile 'nope'; choose one of: debug"):
        repro.use_profile("nope")
    with pytest.raises(TypeError, match="unknown setting"):
        repro.use_profile("debug", cudnn_bogus=True)
    with pytest.raises(ValueError, match="deterministic_algorithms must be one of"):
        repro.use_profile("debug", deterministic_algorithms="sometimes")
    with pytest.raises(TypeError, match="must be True or False"):
        repro.use_profile("debug", cudnn_benchmark="yes")
    assert torch_flags() == before
    assert repro.state().profile == "production"


def test_register_a_custom_profile() -> None:
    p = repro.register_profile(
        "fast-debug",
        "debugging a big model",
        "warns only",
        base="debug",
        deterministic_algorithms="warn",
    )
    assert p in repro.profiles()
    repro.use_profile("fast-debug")
    assert torch_flags() == {**EXPECTED["debug"], "warn": True}
    with pytest.raises(ValueError, match="profile name"):
        repro.register_profile("bad name!", "x")


def test_profile_is_all_or_nothing() -> None:
    import json  # noqa: F401  (the failing adapter's module must be imported to be live)

    repro.use_profile("production")
    before, env = torch_flags(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    frameworks.register(refusing_framework())
    try:
        with pytest.raises(RuntimeError, match="refuses"):
            repro.use_profile("debug")
    finally:
        frameworks.unregister("refusing")
    assert torch_flags() == before
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == env
    assert repro.state().profile == "production"


def test_state_warns_when_benchmark_overrides_deterministic() -> None:
    repro.use_profile("final", cudnn_benchmark=True)
    assert any("cudnn.benchmark=True overrides" in w for w in repro.state().warnings)
    repro.use_profile("final")
    assert not any("benchmark" in w for w in repro.state().warnings)
