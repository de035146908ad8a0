"""Changes from another thread (a panel callback, a user's thread) apply whole, never half.

One thread switches between two complete setups while another reads ``repro.state()``:
every state read must be one of the two, with its seed, profile, backend flags and
fresh streams together. Python switches threads every few microseconds here
(``sys.setswitchinterval``), so without the session's lock a half-applied change
(profile switched, seed not yet) is seen within a few hundred reads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.reliability import record

import repro

#: How long each test hammers the session (a bound, not a wait: it ends early on a failure).
SECONDS = 1.5


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Switch threads as often as Python allows, so interleavings show up quickly."""
    import torch  # imported before the threads start: an import is not what is tested

    del torch
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _flags(st: repro.State) -> dict[str, Any]:
    return {key: st.settings[key] for key in repro.Settings().as_dict() if key in st.settings}


def _whole(st: repro.State) -> str | None:
    """Why ``st`` is half applied (None if it is whole): seed, profile, flags, streams agree."""
    if st.profile is None or st.seed is None:
        return f"seed {st.seed} with profile {st.profile}"
    expected = repro.get_profile(st.profile).settings.as_dict()
    wrong = {k: v for k, v in _flags(st).items() if expected[k] != v}
    if wrong:
        return f"profile {st.profile} with flags {wrong}"
    for source in st.sources:
        if source.imported and source.seed != st.seed:
            return f"seed {st.seed} but {source.stream} seeded with {source.seed}"
    return None


def _hammer(write: Callable[[int], None], check: Callable[[repro.State], str | None]) -> dict:
    """Run ``write(i)`` in a thread while this one reads and checks states; return the counts."""
    stop = threading.Event()
    writes = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                write(writes[0])
                writes[0] += 1
        except BaseException as exc:  # reported by the reader's thread
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    reads, bad = 0, []
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline and not bad and not errors:
            why = check(repro.state())
            reads += 1
            if why is not None:
                bad.append(why)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, f"the writer thread failed: {errors[0]!r}"
    assert not bad, f"after {reads} reads and {writes[0]} writes, a half-applied state: {bad[0]}"
    assert reads > 50 and writes[0] > 50, (reads, writes[0])
    return {"reads": reads, "writes": writes[0]}


def test_setup_from_another_thread_applies_whole() -> None:
    repro.setup(1, "debug")
    setups = [(1, "debug"), (2, "production"), (3, "final"), (4, "search")]

    def write(i: int) -> None:
        repro.setup(*setups[i % len(setups)])

    def check(st: repro.State) -> str | None:
        if (st.seed, st.profile) not in setups:
            return f"seed {st.seed} with profile {st.profile}"
        return _whole(st)

    counts = _hammer(write, check)
    record("concurrency-setup", state_reads=counts["reads"], changes=counts["writes"])


def test_scope_in_another_thread_restores_whole() -> None:
    repro.setup(5, "final")

    def write(i: int) -> None:
        with repro.scope(6 + i % 2, "production" if i % 2 else "debug"):
            pass

    counts = _hammer(write, _whole)
    record("concurrency-scope", state_reads=counts["reads"], changes=counts["writes"])


def test_panel_callbacks_while_a_cell_changes_state(shell: Any) -> None:
    # The panel's buttons, clicked from another thread, while "cells" reseed and switch.
    p = repro.panel()
    names = ["debug", "final", "search", "production"]
    try:
        repro.setup(1, "debug")
        errors: list[str] = []

        def click(i: int) -> None:
            if i % 2:
                p.profile_buttons.value = names[i % len(names)]
            else:
                p.seed_text.value = str(100 + i % 7)
                p.apply_button.click()
            if "repro-error" in p.status.value:
                errors.append(p.status.value)

        cells = 0

        def check(st: repro.State) -> str | None:
            nonlocal cells
            # The "cell": a full setup through the magic, then the state checked.
            shell.run_line_magic("repro", f"{cells % 5} -p {names[cells % 4]} -q")
            cells += 1
            return _whole(st) or (errors[0] if errors else None)

        counts = _hammer(click, check)
    finally:
        p.close()
    record("concurrency-panel", state_reads=counts["reads"], panel_clicks=counts["writes"])
