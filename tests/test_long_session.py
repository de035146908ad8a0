"""A kernel that lives for days: 10,000 cells with the extension loaded and a panel open.

The cells mix what a session does (draws that move the RNGs and redraw the panel, a
reseed through ``%repro``, ``%%repro`` cells, cells that change nothing). Measured:
memory with tracemalloc over 1,000 cells in the middle of the run, after 1,000 traced
cells that fill the caches (tracing every allocation makes a cell about 4x slower, so
not over all 10,000), Python's allocated
blocks over the whole run, the event callbacks registered, and the time per cell in
the first and the last 1,000 cells. ``%reload_ext repro`` 100 times leaves one set of
hooks. The figures are recorded (tests/reliability.py) and printed.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
from typing import Any

import pytest
from tests.reliability import record

#: One cycle of twenty cells: mostly plain ones, as in a notebook (half of them move an RNG,
#: so the panel redraws), and each kind of repro cell once.
CELLS = [
    "_x = random.random()",
    "_n = sum(range(100))",
    "%repro 42 -q",
    "_y = np.random.rand(3)",
    "pass",
    "%%repro 1\n_y = np.random.rand()",
    "_z = torch.rand(1)",
    "_s = str(_x)",
    "_l = [random.random() for _ in range(10)]",
    "_d = {'a': 1}",
    "_x = random.random()",
    "_t = torch.ones(2) * 2",
    "_y = np.random.rand(3)",
    "_n = len(_s)",
    "%%repro 2 -p debug\n_w = torch.rand(2)",
    "_z = torch.rand(1)",
    "pass",
    "_x = random.random()",
    "_k = sorted(_d)",
    "_y = np.random.randint(10)",
]
TOTAL = 10_000
#: tracemalloc runs over these cells, and the growth is measured over the second half.
#: Some growth is not repro's and is bounded: CPython's type-attribute cache keeps the name
#: of each attribute looked up (IPython's traitlets build a new "_<trait>_validate" string
#: every cell), and the cache fills slowly up to its 4,096 entries. In plain Python here,
#: successive 1,000-cell windows grew by 90, 18, 7, 5, 3, 2 and 1 KB; under pytest, by up
#: to 72 KB. A State kept per cell would be about 2 MB per 1,000 cells.
TRACED = range(4_000, 6_000)
MEASURED = range(5_000, 6_000)
MAX_TRACED_GROWTH = 256 * 1024
MAX_BLOCK_GROWTH = 20_000


def _callbacks(shell: Any) -> dict[str, int]:
    return {event: len(callbacks) for event, callbacks in shell.events.callbacks.items()}


@pytest.mark.slow
def test_ten_thousand_cells_with_a_panel_open(shell: Any) -> None:
    assert shell.run_cell(
        "import random, numpy as np, torch, repro\n_panel = repro.panel()", store_history=False
    ).success
    panel = shell.user_ns["_panel"]
    times: list[float] = []
    traced_growth = blocks_start = blocks_end = 0
    callbacks_start: dict[str, int] = {}
    try:
        for i in range(TOTAL):
            if i == 1_000:
                gc.collect()
                blocks_start = sys.getallocatedblocks()
                callbacks_start = _callbacks(shell)
            if i == TRACED.start:
                tracemalloc.start()
            if i == MEASURED.start:
                gc.collect()
                traced_start = tracemalloc.get_traced_memory()[0]
            if i == TRACED.stop:
                gc.collect()
                traced_growth = tracemalloc.get_traced_memory()[0] - traced_start
                tracemalloc.stop()
            started = time.perf_counter()
            # store_history=False: IPython's own history and output cache stay out of it.
            result = shell.run_cell(CELLS[i % len(CELLS)], store_history=False)
            times.append(time.perf_counter() - started)
            assert result.success, f"cell {i} failed: {result.error_in_exec!r}"
        gc.collect()
        blocks_end = sys.getallocatedblocks()
        callbacks_end = _callbacks(shell)
        # The panel followed the kernel to the end: the %repro 42 of the last cycle.
        assert panel.seed_text.value == "42"
    finally:
        panel.close()
    first = statistics.median(times[:1000])
    last = statistics.median(times[-1000:])
    record(
        "long-session",
        cells_run=TOTAL,
        measured_cells=len(MEASURED),
        traced_growth_bytes=traced_growth,
        allocated_blocks_growth=blocks_end - blocks_start,
        first_1000_median_us=round(first * 1e6),
        last_1000_median_us=round(last * 1e6),
        callbacks=sum(callbacks_end.values()),
    )
    assert callbacks_end == callbacks_start, (callbacks_start, callbacks_end)
    assert traced_growth < MAX_TRACED_GROWTH, f"{traced_growth} bytes over {len(MEASURED)} cells"
    assert blocks_end - blocks_start < MAX_BLOCK_GROWTH, (blocks_start, blocks_end)
    # Flat: the last cells cost what the first did (a margin for a busy machine).
    assert last < 1.5 * first + 100e-6, (
        f"first 1000: {first * 1e6:.0f} µs, last: {last * 1e6:.0f} µs"
    )


def test_reload_ext_a_hundred_times_leaves_one_set_of_hooks(shell: Any) -> None:
    # One panel per load: whichever registers the hooks (the extension or its first
    # panel), a reload must replace them, not add a set.
    import repro

    panels = [repro.panel()]
    once = _callbacks(shell)
    magics_once = (
        dict(shell.magics_manager.magics["line"]),
        dict(shell.magics_manager.magics["cell"]),
    )
    try:
        for _ in range(100):
            assert shell.run_cell("%reload_ext repro", store_history=False).success
            panels.append(repro.panel())
        assert _callbacks(shell) == once
        assert shell.run_cell("%repro 3 -q", store_history=False).success
        # Only the newest panel follows the kernel; the unloaded ones say so and stay still.
        assert panels[-1].seed_text.value == "3"
        assert all(p.seed_text.value != "3" for p in panels[:-1])
        line, cell = magics_once
        assert set(shell.magics_manager.magics["line"]) == set(line)
        assert set(shell.magics_manager.magics["cell"]) == set(cell)
    finally:
        for p in panels:
            p.close()
    record("reload-ext", reloads=100, callbacks=sum(once.values()))
