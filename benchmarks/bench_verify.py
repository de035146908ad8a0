"""``repro verify``'s cost, against plain nbclient runs of the same notebook, side by side.

    python benchmarks/bench_verify.py [--quick]

The notebook: a small seeded PyTorch fit (an autograd-tutorial-sized model and loop,
printing as it trains), written to a temporary folder. Two figures, each with its
baseline measured in the same round, the order flipping every round:

- (10) ``repro verify`` with 2 runs (parallel, one kernel per core) against two plain
  ``nbclient`` runs one after the other. Target: ≤ 0.8× on 2 cores.
- (11) one recorded run (``run_notebook``: digests of every variable after every cell,
  outputs normalised) against one plain ``nbclient`` run. Target: ≤ 1.10× (digests add
  at most 10 %).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CELLS = [
    "import math\nimport torch\ntorch.manual_seed(0)",
    "x = torch.linspace(-math.pi, math.pi, 2000).unsqueeze(1)\ny = torch.sin(x)",
    "model = torch.nn.Sequential(\n"
    "    torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),\n"
    "    torch.nn.Linear(64, 1),\n"
    ")\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.05)",
    "for step in range({steps}):\n"
    "    loss = ((model(x) - y) ** 2).mean()\n"
    "    opt.zero_grad()\n"
    "    loss.backward()\n"
    "    opt.step()\n"
    "    if step % 100 == 99:\n"
    "        print(f'step {{step + 1}}: loss {{loss.item():.6f}}')",
    "with torch.no_grad():\n    prediction = model(x)\nfloat((prediction - y).abs().max())",
    "weights = {name: p.detach().clone() for name, p in model.named_parameters()}\nlen(weights)",
]


def write_notebook(folder: Path, steps: int) -> Path:
    """The benchmark notebook in ``folder``."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell("# Fit sin(x): a seeded PyTorch loop")]
    cells += [new_code_cell(source.format(steps=steps)) for source in CELLS]
    path = folder / "fit.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    return path


def plain_run(path: Path) -> float:
    """One plain nbclient run, as a user's CI would run the notebook; seconds."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(
        nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return time.perf_counter() - start


def verify_run(path: Path) -> float:
    """``repro verify`` with 2 runs (hash seed pinned: no confirming third run); seconds."""
    from repro._verify.notebook import verify_notebook

    start = time.perf_counter()
    report = verify_notebook(path, runs=2, hash_seed=0)
    elapsed = time.perf_counter() - start
    assert report.reproducible, str(report)
    return elapsed


def recorded_run(path: Path) -> float:
    """One run with the digests after every cell; seconds."""
    from repro._verify.notebook import run_notebook

    start = time.perf_counter()
    run_notebook(path, hash_seed="0")
    return time.perf_counter() - start


def measure(quick: bool = False) -> list[dict[str, Any]]:
    """Both figures as dicts: figure, repro, baseline, ratio, target, met, and the samples."""
    import os

    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory() as folder:
        path = write_notebook(Path(folder), steps=300 if quick else 1500)
        plain_run(path)  # warm the disk cache and the imports
        pairs: dict[str, list[float]] = {"verify": [], "two plain": [], "recorded": [], "plain": []}
        for round_ in range(rounds):
            order = [
                ("verify", lambda: verify_run(path)),
                ("two plain", lambda: plain_run(path) + plain_run(path)),
                ("recorded", lambda: recorded_run(path)),
                ("plain", lambda: plain_run(path)),
            ]
            for name, case in order if round_ % 2 == 0 else order[::-1]:
                pairs[name].append(case())
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for figure, ours, theirs, limit, target in (
        (
            f"(10) repro verify, 2 runs ({cores} cores) vs 2 plain nbclient runs",
            "verify",
            "two plain",
            0.8,
            "≤ 0.8×",
        ),
        (
            "(11) one verify run (digests after each cell) vs one plain nbclient run",
            "recorded",
            "plain",
            1.10,
            "≤ 1.10×",
        ),
    ):
        m, b = statistics.median(pairs[ours]), statistics.median(pairs[theirs])
        rows.append(
            {
                "figure": figure,
                "repro": f"{m:.2f} s",
                "baseline": f"{b:.2f} s",
                "ratio": f"{m / b:.2f}×",
                "target": target,
                "met": m / b <= limit,
                "repro_s": pairs[ours],
                "baseline_s": pairs[theirs],
                "load_average": load,
            }
        )
    return rows


if __name__ == "__main__":
    for row in measure("--quick" in sys.argv):
        print(
            f"{row['figure']}: {row['repro']} vs {row['baseline']} = {row['ratio']} "
            f"(target {row['target']}, met: {row['met']}; load average {row['load_average']:.2f})"
        )
