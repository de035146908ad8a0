"""What the live panel adds to every cell: ``python benchmarks/bench_panel.py``.

Runs the same cells in a real IPython ``InteractiveShell`` without a panel (the
baseline) and with panels open, alternating in rounds within one run so that
both see the same machine load, and prints the median per-cell time of each,
the overhead and the ratio. Three cases:

* a cell that changes nothing repro shows (``x = 1``): the panel takes a
  snapshot, finds it equal to the one it drew, and draws nothing (goal: < 1 ms);
* the same with three panels open (one snapshot is shared by all of them);
* a cell that draws a random number: the fingerprint moves, so the panel redraws.

Options: ``--rounds N`` (default 15), ``--cells N`` per round (default 200).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import numpy  # noqa: F401  (imported so that every built-in source of randomness is live)
import torch
from IPython.core.interactiveshell import InteractiveShell

import repro
from repro._panel import Panel


def per_cell(shell: InteractiveShell, code: str, cells: int) -> float:
    """Seconds per cell for ``cells`` runs of ``code``."""
    start = time.perf_counter()
    for _ in range(cells):
        shell.run_cell(code, store_history=False, silent=False)
    return (time.perf_counter() - start) / cells


def compare(
    shell: InteractiveShell,
    code: str,
    open_panels: Callable[[], list[Panel]],
    rounds: int,
    cells: int,
) -> tuple[float, float]:
    """Median per-cell seconds (baseline, with panels), in alternating rounds."""
    base, with_panels = [], []
    per_cell(shell, code, cells // 4)  # warm up IPython's caches
    for i in range(rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        for panels_on in order:
            panels = open_panels() if panels_on else []
            (with_panels if panels_on else base).append(per_cell(shell, code, cells))
            for p in panels:
                p.close()
    return statistics.median(base), statistics.median(with_panels)


def report(name: str, base: float, with_panels: float) -> None:
    """One line: baseline, with panels, overhead per cell and ratio."""
    print(
        f"{name:<36} base {base * 1e6:7.1f} µs/cell  with panel {with_panels * 1e6:7.1f} µs/cell"
        f"  overhead {(with_panels - base) * 1e6:+8.1f} µs/cell   ratio {with_panels / base:5.2f}x"
    )


def main() -> None:
    """Run the three cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cells", type=int, default=200)
    args = parser.parse_args()

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext repro", store_history=False)
    repro.setup(0, "final")
    random.seed()

    def one() -> list[Panel]:
        return [repro.panel()]

    def three() -> list[Panel]:
        return [repro.panel() for _ in range(3)]

    print(f"repro {repro.__version__}, torch {torch.__version__}: {args.rounds} rounds x "
          f"{args.cells} cells, medians of the rounds")  # fmt: skip
    report("unchanged cell, 1 panel", *compare(shell, "x = 1", one, args.rounds, args.cells))
    report("unchanged cell, 3 panels", *compare(shell, "x = 1", three, args.rounds, args.cells))
    moved = "import random; x = random.random()"
    report(
        "cell moves an RNG (redraw), 1 panel", *compare(shell, moved, one, args.rounds, args.cells)
    )

    # The check alone, without IPython around it: what post_run_cell adds when nothing changed.
    p = repro.panel()
    p.refresh()
    n = args.cells * args.rounds
    start = time.perf_counter()
    for _ in range(n):
        p.refresh()
    print(
        f"{'refresh() with nothing changed':<36} {(time.perf_counter() - start) / n * 1e6:8.1f} µs"
    )
    p.close()
    shell.run_cell("%unload_ext repro", store_history=False)


if __name__ == "__main__":
    main()
