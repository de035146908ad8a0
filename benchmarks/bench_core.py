"""Core overheads, each against a baseline measured in the same run.

    python benchmarks/bench_core.py

Prints, per operation, repro's time, the baseline's time and the ratio:
- ``repro.seed(42)`` against the guide's ``set_seed(42)``;
- ``repro.scope()`` enter + exit against ``torch.random.fork_rng()``;
- a ``%%repro`` cell against the same plain cell in a real InteractiveShell;
- ``repro.state()`` against ``torch.get_rng_state()`` (one RNG read).
"""

from __future__ import annotations

import random
import timeit

import numpy as np
import torch
from IPython.core.interactiveshell import InteractiveShell

import repro


def per_call(fn, number: int) -> float:
    """Best of 5 repeats, seconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def guide_set_seed(seed: int = 42) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def in_scope() -> None:
    with repro.scope(1):
        pass


def in_fork_rng() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(1)


def main() -> None:
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext repro")
    shell.run_cell("import torch")
    rows = [
        (
            "repro.seed(42) vs guide set_seed(42)",
            per_call(lambda: repro.seed(42), 2000),
            per_call(guide_set_seed, 2000),
        ),
        (
            "repro.scope(1) vs torch.random.fork_rng()",
            per_call(in_scope, 500),
            per_call(in_fork_rng, 500),
        ),
        (
            "%%repro 1 cell vs plain cell",
            per_call(
                lambda: shell.run_cell("%%repro 1\nx = torch.rand(8)", store_history=False), 200
            ),
            per_call(lambda: shell.run_cell("x = torch.rand(8)", store_history=False), 200),
        ),
        (
            "repro.state() vs torch.get_rng_state()",
            per_call(repro.state, 500),
            per_call(torch.get_rng_state, 500),
        ),
    ]
    print(f"{'operation':<45}{'repro':>12}{'baseline':>12}{'ratio':>8}")
    for name, ours, base in rows:
        print(f"{name:<45}{ours * 1e6:>10.1f}us{base * 1e6:>10.1f}us{ours / base:>8.2f}")


if __name__ == "__main__":
    main()
