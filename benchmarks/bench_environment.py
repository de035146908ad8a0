"""How long ``repro.environment()`` takes, next to ``torch.utils.collect_env.get_env_info()``.

Both run in this one process, after ``import torch`` (collect_env needs it; environment()
then describes torch in full). Run from the repository, so the git part is measured too::

    python benchmarks/bench_environment.py [--repeat N]

Prints the median of each (and environment()'s first, cold call, and its one
subprocess, ``git status``, on its own) and the ratio; exits 1 if the ratio is below 10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(function: Callable[[], Any], repeat: int) -> list[float]:
    """Seconds per call, ``repeat`` calls."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> int:
    """Time both and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="calls of each (default 5)")
    args = parser.parse_args()

    import torch
    from torch.utils import collect_env

    import repro

    cold = timed(repro.environment, 1)[0]
    env_module = sys.modules["repro._capture"]  # loaded by the first call
    warm = timed(repro.environment, args.repeat)
    git_dirty = timed(lambda: env_module._dirty(Path.cwd()), args.repeat)
    collect = timed(collect_env.get_env_info, args.repeat)

    ours, theirs = statistics.median(warm), statistics.median(collect)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, repeat {args.repeat}")
    print(f"repro.environment()             first call {cold * 1e3:9.1f} ms")
    print(f"repro.environment()             median     {ours * 1e3:9.1f} ms")
    dirty = statistics.median(git_dirty)
    print(f"  of which git status (dirty)   median     {dirty * 1e3:9.1f} ms")
    print(f"collect_env.get_env_info()      median     {theirs * 1e3:9.1f} ms")
    print(f"ratio (collect_env / environment, medians): {theirs / ours:.0f}x")
    print(f"ratio with environment()'s cold first call: {theirs / cold:.0f}x")
    return 0 if theirs / ours >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
