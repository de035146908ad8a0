"""Shared fixtures: each test starts from a blank repro session; the process is restored after."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

import repro
from repro import _session
from repro._profiles import unregister_profile

# pytest-xdist runs one worker per core, and the notebook and kernel tests start kernels
# beside them: one OpenMP thread per process keeps torch's threads from spinning while
# their twin waits for a core (inherited by the workers, kernels and subprocesses).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# In CI the property-based tests draw the same inputs every run (derandomized), so a red CI
# means a change broke something, not that a new random draw found an old edge; here, each
# run draws new inputs.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _has_cuda() -> bool:
    # Asked only when GPU tests were collected: importing torch costs seconds, and with
    # pytest-xdist this file is also loaded by the controller, which runs no test.
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` cleanly where no CUDA device is present."""
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu and not _has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
        for item in gpu:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def blank_session() -> Iterator[_session.Session]:
    """A blank session for the test; RNG states, flags, env vars and profiles restored after it."""
    saved = _session.snapshot()
    registered = repro.profiles()
    _session.reset()
    try:
        yield _session.current()
    finally:
        saved.restore()
        names = {profile.name for profile in registered}
        for profile in repro.profiles():
            if profile.name not in names:
                unregister_profile(profile.name)
        for profile in registered:
            if profile not in repro.profiles():  # replaced or removed by the test
                repro.register_profile(
                    profile.name, profile.meant_for, profile.trade, **profile.settings.as_dict()
                )


@pytest.fixture
def shell() -> Iterator[object]:
    """A real IPython ``InteractiveShell`` with ``%load_ext repro`` done."""
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext repro", store_history=False)
    try:
        yield sh
    finally:
        sh.run_cell("%unload_ext repro", store_history=False)
