"""Fingerprint throughput against the machine's memory-copy bandwidth, measured side by side.

    python benchmarks/bench_fingerprint.py [--quick]

Hashes a 256 MB float32 torch tensor with ``repro._verify.digest.digest`` (what
``%%repro --verify`` and ``repro verify`` compare) and copies the same buffer with
``numpy.copyto`` into a preallocated array, in interleaved rounds; prints the median
throughput of each, their spread (min–max) and the ratio. Target: at least half the
copy bandwidth. On a CUDA machine a second row hashes a CUDA tensor of the same size
against a device-to-host copy into pinned memory. ``measure(quick)`` returns the rows
for ``benchmarks/run.py``. Exit status 0 (a report, not a test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from repro._verify.digest import digest

SIZE_BYTES = 256 * 2**20
TARGET = 0.5
TARGET_TEXT = "≥ 0.5× copy bandwidth"


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _interleaved(
    ours: Callable[[], object], baseline: Callable[[], object], rounds: int
) -> tuple[list[float], list[float]]:
    ours(), baseline()  # warm: pages touched, code paths loaded
    a, b = [], []
    for _ in range(rounds):
        b.append(_seconds(baseline))
        a.append(_seconds(ours))
    return a, b


def _row(figure: str, ours: list[float], baseline: list[float]) -> dict[str, object]:
    gb = SIZE_BYTES / 1e9
    rate = gb / statistics.median(ours)
    base = gb / statistics.median(baseline)
    ratio = rate / base
    return {
        "figure": figure,
        "repro": f"{rate:.1f} GB/s ({gb / max(ours):.1f}–{gb / min(ours):.1f})",
        "baseline": f"{base:.1f} GB/s ({gb / max(baseline):.1f}–{gb / min(baseline):.1f})",
        "ratio": f"{ratio:.2f}×",
        "target": TARGET_TEXT,
        "met": ratio >= TARGET,
    }


def measure(quick: bool = False) -> list[dict[str, object]]:
    """Rows ``{figure, repro, baseline, ratio, target, met}``: medians of interleaved rounds."""
    rounds = 3 if quick else 11
    tensor = torch.rand(SIZE_BYTES // 4, dtype=torch.float32)
    source = tensor.numpy()  # the same buffer
    target = np.empty_like(source)
    ours, base = _interleaved(lambda: digest(tensor), lambda: np.copyto(target, source), rounds)
    rows = [_row("(7) fingerprint of a 256 MB float32 tensor (CPU) vs numpy.copyto", ours, base)]
    if torch.cuda.is_available():
        device = tensor.cuda()
        pinned = torch.empty_like(tensor).pin_memory()

        def copy_to_host() -> None:
            pinned.copy_(device)
            torch.cuda.synchronize()

        ours, base = _interleaved(lambda: digest(device), copy_to_host, rounds)
        name = torch.cuda.get_device_name()
        rows.append(
            _row(
                f"(7) fingerprint of a 256 MB float32 CUDA tensor ({name}) vs D2H copy", ours, base
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 11")
    args = parser.parse_args(argv)
    rows = measure(args.quick)
    print(f"{'figure':<68}{'repro':>24}{'baseline':>24}{'ratio':>7}  target")
    for r in rows:
        met = "met" if r["met"] else "MISSED"
        print(
            f"{r['figure']:<68}{r['repro']:>24}{r['baseline']:>24}{r['ratio']:>7}  "
            f"{r['target']} ({met})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
