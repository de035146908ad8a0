"""The session: every change checks all its arguments, then applies all or nothing."""

from __future__ import annotations

import json
import os

import pytest
import torch
from tests.helpers import refusing_framework, streams, torch_flags

import repro
from repro import _session, frameworks


class _Interrupted(type(refusing_framework("nothing"))):  # type: ignore[misc]
    """An adapter that cannot fail, interrupted (Ctrl-C) once when ``interrupt`` is set."""

    name, label = "interrupted", "interrupted"
    seed_may_fail = False

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.interrupt = False

    def seed(self, seed: int) -> None:
        self.calls.append(seed)
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt


def test_seed_is_all_or_nothing_when_a_framework_refuses_its_seed() -> None:
    assert json  # the refusing adapter's module is imported, so it is live
    repro.seed(1)
    before, expected = repro.state(), streams(3)
    repro.seed(1)
    frameworks.register(refusing_framework("seed"))
    try:
        with pytest.raises(RuntimeError, match="refuses its seed"):
            repro.seed(2)
    finally:
        frameworks.unregister("refusing")
    assert repro.state() == before
    assert streams(3) == expected  # Python and NumPy were not left at seed 2


def test_an_interrupt_while_seeding_completes_the_seeding() -> None:
    # Frameworks that cannot fail are not saved before seeding: an interrupt among them
    # must leave every generator and the session at the new seed, not half of them.
    interrupted = frameworks.register(_Interrupted())
    try:
        repro.seed(1)
        interrupted.interrupt = True
        with pytest.raises(KeyboardInterrupt):
            repro.seed(2)
    finally:
        frameworks.unregister("interrupted")
    assert interrupted.calls == [1, 2, 2]
    assert repro.state().seed == 2
    expected = streams(3)
    repro.seed(2)
    assert streams(3) == expected


def test_effective_seed_is_the_given_then_the_sessions_then_a_drawn_one() -> None:
    value, drawn = _session.effective_seed(None)
    assert drawn and 0 <= value < 2**32
    repro.seed(12)
    assert _session.effective_seed(None) == (12, False)
    assert _session.effective_seed(5) == (5, False)
    with pytest.raises(ValueError, match="0 <= seed < 2\\*\\*32"):
        _session.effective_seed(-3)


def test_setup_is_all_or_nothing_when_seeding_fails_after_the_profile() -> None:
    assert json  # the refusing adapter's module is imported, so it is live
    repro.setup(1, "production")
    before, flags, expected = repro.state(), torch_flags(), streams(3)
    repro.setup(1, "production")
    frameworks.register(refusing_framework("seed"))
    try:
        with pytest.raises(RuntimeError, match="refuses its seed"):
            repro.setup(2, "debug")
    finally:
        frameworks.unregister("refusing")
    assert repro.state() == before  # the profile switched first is rolled back too
    assert torch_flags() == flags
    assert streams(3) == expected  # and no generator was left reseeded


def test_use_profile_overrides_start_from_the_named_profile() -> None:
    repro.use_profile("debug", deterministic_algorithms="off")
    repro.use_profile("final")
    st = repro.state()
    assert (st.profile, dict(st.overrides)) == ("final", {})
    assert st.settings["deterministic_algorithms"] == "warn"


def test_overrides_alone_adjust_the_current_profile() -> None:
    repro.use_profile("debug", cudnn_benchmark=True)
    repro.setup(deterministic_algorithms="warn")
    st = repro.state()
    assert st.profile == "debug"
    assert dict(st.overrides) == {"cudnn_benchmark": True, "deterministic_algorithms": "warn"}
    assert torch.backends.cudnn.benchmark and torch.is_deterministic_algorithms_warn_only_enabled()


def test_subscribers_hear_every_change_until_they_unsubscribe() -> None:
    heard: list[int | None] = []
    unsubscribe = _session.subscribe(lambda: heard.append(repro.state().seed))
    repro.seed(1)
    repro.use_profile("search")
    with repro.scope(2):
        pass
    unsubscribe()
    repro.seed(3)
    assert heard == [1, 1, 2, 1]


def test_snapshot_restores_rng_flags_env_and_session() -> None:
    repro.setup(4, "final")
    saved, before, expected, flags = _session.snapshot(), repro.state(), streams(2), torch_flags()
    repro.setup(5, "production")
    streams(4)
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    saved.restore()
    assert repro.state() == before
    assert torch_flags() == flags
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert streams(2) == expected


def test_the_session_is_a_value_and_history_outlives_a_scope() -> None:
    import dataclasses

    repro.setup(4, "final", cudnn_benchmark=False)
    before = _session.current()
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.seed = 5  # type: ignore[misc]
    changes = _session.history().generation
    with repro.scope(9, "production"):
        inside = _session.current()
        _session.record_verdict("NOT reproducible: run 2 differs")
    assert inside.seed == 9 and before.seed == 4  # a change replaced the value, never edited it
    assert _session.current() == before  # the settings are back, every field of them
    # What happened is not rolled back: the verdict and the count of changes stay.
    assert repro.state().last_verify == "NOT reproducible: run 2 differs"
    assert _session.history().generation > changes


def test_reset_forgets_seed_and_profile_but_not_the_generators() -> None:
    repro.setup(6, "debug")
    expected = streams(2)
    repro.seed(6)
    _session.reset()
    st = repro.state()
    assert (st.seed, st.profile) == (None, None)
    assert streams(2) == expected
    assert torch.are_deterministic_algorithms_enabled()  # flags stay: reset only forgets


def test_a_config_is_remembered_only_when_it_applied() -> None:
    config = {"seed": 8, "profile": "debug"}
    repro.apply_config(config, quiet=True)
    assert _session.current().config == config
    with pytest.raises(ValueError):
        repro.apply_config({"seed": 9, "profile": "nope"}, quiet=True)
    assert _session.current().config == config
    assert repro.state().seed == 8
