"""repro's own cost, each figure against a baseline measured in the same run: one table.

    python benchmarks/run.py [--quick] [--rounds N] [--json FILE] [--timer {wall,cpu}]
                             [--python PATH]

Every figure alternates repro and its baseline in rounds (the order flips each
round), so that a busy machine favours neither, and reports the medians of the
rounds with their spread (± half the interquartile range). Figures that a
fresh process decides (``%load_ext``, ``repro.environment()``'s first call,
memory) run each round in new subprocesses.

Exit code 1 if a target is missed; with ``--quick`` (few rounds, for a CI smoke
run) the table is printed and the exit code is 0 whatever it says.

Fresh processes write bytecode, as users' interpreters do (``PYTHONDONTWRITEBYTECODE``
is dropped for them), and one unmeasured process of each kind runs first (not with
``--quick``), so that no figure measures compiling. ``--python PATH`` measures everything
under another interpreter (another venv), with this checkout's repro first on its path;
the header names the interpreter, IPython's version and how many distributions it has.

The environments of the README's tables: the test one (the project with its ``test``
extra, about 160 distributions) and a large one (over 300), a data-science stack::

    python -m venv /tmp/vlarge
    # torch: its CPU wheel (torch-2.13.0+cpu-...whl, or --index-url .../whl/cpu)
    python -m uv pip install --python /tmp/vlarge/bin/python torch -e ".[test,lab]" \\
        pandas scipy scikit-learn statsmodels seaborn plotly bokeh altair dask distributed \\
        polars pyarrow sympy networkx numba scikit-image opencv-python-headless xgboost \\
        lightgbm tensorboard transformers datasets tokenizers sentencepiece accelerate \\
        torchmetrics lightning optuna mlflow-skinny wandb jupytext nbconvert ipyparallel \\
        jupyter papermill black isort mypy pylint flake8 sphinx sqlalchemy requests httpx \\
        fastapi uvicorn pydantic rich typer click tqdm joblib h5py tables xarray netcdf4 \\
        zarr numexpr bottleneck openpyxl xlrd pillow imageio scrapy beautifulsoup4 lxml \\
        spacy nltk gensim            # 356 distributions with CPU torch 2.13.0
    python benchmarks/run.py --python /tmp/vlarge/bin/python
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# --- numbers and their text ---------------------------------------------------------


def median_spread(samples: list[float]) -> tuple[float, float]:
    """The median and half the interquartile range (0 for fewer than 2 samples)."""
    middle = statistics.median(samples)
    if len(samples) < 2:
        return middle, 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return middle, (q3 - q1) / 2


def seconds_text(value: float, spread: float | None = None, sign: bool = False) -> str:
    """``451 µs ±12`` / ``+38.2 ms ±4.1``: the unit chosen by the value."""
    scale, unit = (1e3, "ms") if abs(value) >= 1e-3 else (1e6, "µs")
    digits = 1 if abs(value) * scale < 100 else 0
    text = f"{value * scale:{'+' if sign else ''}.{digits}f} {unit}"
    if spread is not None:
        text += f" ±{spread * scale:.{digits}f}"
    return text


#: The clock: wall time, or CPU time (``--timer cpu``), which leaves out the time other
#: processes hold the CPU on a shared machine (fresh processes: see :func:`_child`).
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
_clock = CLOCKS["wall"]


def clock() -> float:
    """Seconds on the chosen clock."""
    return _clock()


@dataclass
class Row:
    """One line of the table; ``data`` holds the numbers behind it (seconds, bytes, samples)."""

    figure: str
    repro: str
    baseline: str
    ratio: str
    target: str
    met: bool | str | None  # None: no target; a string: why it was not measured
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def found(cls, found: dict[str, Any]) -> Row:
        """A row from a part's measurement (bench_fingerprint, bench_verify): its columns by
        name, the rest of its numbers as data."""
        columns = ("figure", "repro", "baseline", "ratio", "target")
        return cls(
            *(str(found[c]) for c in columns),
            found["met"],
            {k: v for k, v in found.items() if k not in cls.__dataclass_fields__},
        )


def interleaved(cases: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each case once per round, the order reversed every other round; one sample per call."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            samples[name].append(cases[name]())
    return samples


def per_call(function: Callable[[], Any], number: int) -> Callable[[], float]:
    """A case for :func:`interleaved`: seconds per call over ``number`` calls."""

    def case() -> float:
        start = clock()
        for _ in range(number):
            function()
        return (clock() - start) / number

    return case


def ratio_row(
    figure: str, ours: list[float], theirs: list[float], limit: float | None, target: str
) -> Row:
    """A row judged by the ratio of the medians (repro / baseline <= limit; no limit: no target)."""
    (m, s), (bm, bs) = median_spread(ours), median_spread(theirs)
    ratio = m / bm
    return Row(
        figure,
        seconds_text(m, s),
        seconds_text(bm, bs),
        f"{ratio:.2f}×",
        target,
        None if limit is None else ratio <= limit,
        {"repro_s": ours, "baseline_s": theirs, "ratio": ratio},
    )


def added_row(
    figure: str, ours: list[float], theirs: list[float], limit: float | None, target: str
) -> Row:
    """A row judged by the time added: the median of the paired per-round differences."""
    (m, s), (bm, bs) = median_spread(ours), median_spread(theirs)
    added, added_spread = median_spread([a - b for a, b in zip(ours, theirs, strict=True)])
    return Row(
        figure,
        seconds_text(m, s),
        seconds_text(bm, bs),
        seconds_text(added, added_spread, sign=True),
        target,
        None if limit is None else added <= limit,
        {"repro_s": ours, "baseline_s": theirs, "added_s": added},
    )


# --- (1) and (9): a fresh IPython process, %load_ext repro then %repro 42 ------------

# A child's clock: wall time, or the CPU time of the process and the children it waited for.
_CHILD_CLOCK = r"""
import json, resource, sys, time

def clock():
    if sys.argv[2] == "wall":
        return time.perf_counter()
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime
"""

_IPYTHON_CHILD = (
    _CHILD_CLOCK
    + r"""
from IPython.core.interactiveshell import InteractiveShell

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))

shell = InteractiveShell.instance()
shell.run_cell("x = 1", store_history=False)
before, start = rss(), clock()
if sys.argv[1] == "repro":
    shell.run_cell("%load_ext repro", store_history=False)
    shell.run_cell("%repro 42", store_history=False)
cells = clock() - start
print(json.dumps({"cells_s": cells, "rss_before": before, "rss_added": rss() - before,
                  "torch": "torch" in sys.modules, "numpy": "numpy" in sys.modules}))
"""
)


def _child(code: str, kind: str) -> tuple[float, dict[str, Any]]:
    """Run ``code`` in a fresh interpreter: (its seconds, the JSON its last line printed).

    Its seconds are wall time, or with ``--timer cpu`` the CPU time (user + system) it used.
    """
    timer = "wall" if _clock is CLOCKS["wall"] else "cpu"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", code, kind, timer],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {done.stderr.strip()[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall if timer == "wall" else cpu, json.loads(done.stdout.strip().splitlines()[-1])


#: Whether fresh-process figures start with an unmeasured process of each kind (not in a
#: ``--quick`` smoke run, whose numbers are not read).
_warm = True


def warm_up(code: str, kinds: tuple[str, ...]) -> None:
    """One unmeasured process of each kind: it writes the bytecode of what it imports, as
    a user's first run does, so that the measured ones compile nothing."""
    for kind in kinds if _warm else ():
        _child(code, kind)


def fresh_ipython(rounds: int) -> list[Row]:
    """Figures 1 (time added, no torch or NumPy imported) and 9 (resident memory added)."""
    warm_up(_IPYTHON_CHILD, ("repro", "plain"))
    times: dict[str, list[float]] = {"repro": [], "plain": []}
    reports: dict[str, list[dict[str, Any]]] = {"repro": [], "plain": []}

    def case(kind: str) -> Callable[[], float]:
        def run() -> float:
            seconds, report = _child(_IPYTHON_CHILD, kind)
            times[kind].append(seconds)
            reports[kind].append(report)
            return seconds

        return run

    interleaved({"repro": case("repro"), "plain": case("plain")}, rounds)
    time_row = added_row(
        "(1) fresh IPython process: %load_ext repro + %repro 42",
        times["repro"],
        times["plain"],
        0.040,
        "≤ +40 ms",
    )
    cells = median_spread([r["cells_s"] for r in reports["repro"]])
    cells_row = Row(
        "    … the two cells alone, timed inside the process",
        seconds_text(*cells),
        "",
        "",
        "–",
        None,
        {"cells_s": [r["cells_s"] for r in reports["repro"]]},
    )
    imported = sorted(
        {name for r in reports["repro"] for name in ("torch", "numpy") if r[name]}
        - {name for r in reports["plain"] for name in ("torch", "numpy") if r[name]}
    )
    import_row = Row(
        "(1) … imports neither torch nor NumPy",
        "imports " + ", ".join(imported) if imported else "neither",
        "neither" if not any(r["torch"] or r["numpy"] for r in reports["plain"]) else "some",
        "",
        "neither",
        not imported,
        {"imported": imported},
    )
    added, added_spread = median_spread([r["rss_added"] for r in reports["repro"]])
    base = statistics.median([r["rss_before"] for r in reports["repro"]])
    memory_row = Row(
        "(9) resident memory: import repro + %load_ext repro",
        f"+{added / 2**20:.1f} MiB ±{added_spread / 2**20:.1f}",
        f"{base / 2**20:.1f} MiB (IPython shell)",
        f"+{added / base:.0%}",
        "≤ +3 MiB",
        added <= 3 * 2**20,
        {"rss_added_bytes": added, "rss_before_bytes": base},
    )
    return [time_row, cells_row, import_row, memory_row]


# --- (6): repro.environment()'s first call in a fresh process with torch ------------

_ENVIRONMENT_CHILD = (
    _CHILD_CLOCK
    + r"""
import torch
if sys.argv[1] == "repro":
    import repro
    call = repro.environment
else:
    from torch.utils import collect_env
    call = collect_env.get_env_info
start = clock()
call()
first = clock() - start
start = clock()
call()
print(json.dumps({"first_s": first, "again_s": clock() - start}))
"""
)


def environment_first_call(rounds: int) -> list[Row]:
    """Figure 6: first (and repeated) call, each pair of processes interleaved."""
    warm_up(_ENVIRONMENT_CHILD, ("repro", "collect_env"))
    reports: dict[str, list[dict[str, Any]]] = {"repro": [], "collect_env": []}

    def case(kind: str) -> Callable[[], float]:
        def run() -> float:
            report = _child(_ENVIRONMENT_CHILD, kind)[1]
            reports[kind].append(report)
            return report["first_s"]

        return run

    samples = interleaved({"repro": case("repro"), "collect_env": case("collect_env")}, rounds)
    first, first_spread = median_spread(samples["repro"])
    theirs, theirs_spread = median_spread(samples["collect_env"])
    again = median_spread([r["again_s"] for r in reports["repro"]])
    again_theirs = median_spread([r["again_s"] for r in reports["collect_env"]])
    return [
        Row(
            "(6) repro.environment() first call, torch imported",
            seconds_text(first, first_spread),
            seconds_text(theirs, theirs_spread) + " (collect_env)",
            f"{first / theirs:.2f}×",
            "≤ 25 ms",
            first <= 0.025,
            {"repro_s": samples["repro"], "baseline_s": samples["collect_env"]},
        ),
        Row(
            "    repro.environment() repeated call",
            seconds_text(*again),
            seconds_text(*again_theirs) + " (collect_env)",
            f"{again[0] / again_theirs[0]:.2f}×",
            "–",
            None,
        ),
    ]


# --- (2) to (5): in this process, torch and NumPy imported --------------------------


def guide_set_seed(seed: int = 42) -> None:
    """The reference guide's ``set_seed``: the bare calls repro.seed is compared with."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def seed_and_scope(rounds: int, number: int) -> list[Row]:
    """Figures 2 (``repro.seed``) and 4 (``repro.scope``); ``repro.state()`` without a target."""
    import torch

    import repro

    def in_scope() -> None:
        with repro.scope(1):
            pass

    def in_fork_rng() -> None:
        with torch.random.fork_rng():
            torch.manual_seed(1)

    seeds = interleaved(
        {
            "repro": per_call(lambda: repro.seed(42), number),
            "guide": per_call(guide_set_seed, number),
        },
        rounds,
    )
    counter = iter(range(1, 2**31))

    def new_seed_repro() -> None:
        repro.seed(next(counter) % 2**32)

    def new_seed_guide() -> None:
        guide_set_seed(next(counter) % 2**32)

    new_seeds = interleaved(
        {
            "repro": per_call(new_seed_repro, number),
            "guide": per_call(new_seed_guide, number),
        },
        rounds,
    )
    new_seed_row = ratio_row(
        "    repro.seed(i) vs set_seed(i), a new seed each call",
        new_seeds["repro"],
        new_seeds["guide"],
        None,
        "–",
    )
    scopes = interleaved(
        {
            "repro": per_call(in_scope, max(1, number // 4)),
            "fork_rng": per_call(in_fork_rng, max(1, number // 4)),
        },
        rounds,
    )
    states = interleaved(
        {
            "repro": per_call(repro.state, max(1, number // 4)),
            "torch": per_call(torch.get_rng_state, max(1, number // 4)),
        },
        rounds,
    )
    state_row = ratio_row(
        "    repro.state() vs torch.get_rng_state()", states["repro"], states["torch"], None, "–"
    )
    return [
        ratio_row(
            "(2) repro.seed(42) vs the guide's set_seed(42)",
            seeds["repro"],
            seeds["guide"],
            1.2,
            "≤ 1.2×",
        ),
        new_seed_row,
        ratio_row(
            "(4) repro.scope(1) enter+exit vs fork_rng()",
            scopes["repro"],
            scopes["fork_rng"],
            2.0,
            "≤ 2×",
        ),
        state_row,
    ]


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    if "repro" not in shell.extension_manager.loaded:
        shell.run_cell("%load_ext repro", store_history=False)
    return shell


def cell_magic(rounds: int, cells: int) -> list[Row]:
    """Figure 3: a ``%%repro 42`` cell around ``x = 1`` (restore included) vs the plain cell."""
    shell = _shell()

    def run(code: str) -> Callable[[], None]:
        return lambda: shell.run_cell(code, store_history=False)

    run("x = 1")()  # warm IPython's caches
    run("%%repro 42\nx = 1")()
    samples = interleaved(
        {
            "repro": per_call(run("%%repro 42\nx = 1"), cells),
            "plain": per_call(run("x = 1"), cells),
        },
        rounds,
    )
    return [
        added_row(
            "(3) %%repro 42 cell around x = 1, vs the plain cell",
            samples["repro"],
            samples["plain"],
            0.0005,
            "≤ +0.5 ms",
        )
    ]


def open_panel(rounds: int, cells: int) -> list[Row]:
    """Figure 5: what an open panel adds to a cell that changes nothing (and to a redraw)."""
    import repro

    shell = _shell()
    repro.setup(0, "final")

    def case(code: str, panels: int) -> Callable[[], float]:
        def run() -> float:
            opened = [repro.panel() for _ in range(panels)]
            start = clock()
            for _ in range(cells):
                shell.run_cell(code, store_history=False)
            seconds = (clock() - start) / cells
            for p in opened:
                p.close()
            return seconds

        return run

    rows = []
    for figure, code, limit, target in (
        ("(5) open panel: a cell that changes nothing", "x = 1", 150e-6, "≤ +150 µs"),
        ("    open panel: a cell that draws (it redraws)", "x = random.random()", None, "–"),
    ):
        shell.run_cell("import random", store_history=False)
        case(code, 1)()  # warm up
        samples = interleaved({"panel": case(code, 1), "plain": case(code, 0)}, rounds)
        rows.append(added_row(figure, samples["panel"], samples["plain"], limit, target))
    return rows


# --- (7) and (8): parts kept in their own files ---------------------------------------


def fingerprint_bandwidth(quick: bool) -> list[Row]:
    """Figure 7, from bench_fingerprint.py when repro.verify's fingerprint is on this branch."""
    if importlib.util.find_spec("bench_fingerprint") is None:
        return [
            Row(
                "(7) fingerprint of a 256 MB float32 tensor vs numpy.copyto",
                "pending (repro.verify's fingerprint not on this branch)",
                "",
                "",
                "≥ 0.5× copy bandwidth",
                "pending",
            )
        ]
    module = importlib.import_module("bench_fingerprint")
    return [Row.found(found) for found in module.measure(quick)]


def verify_speed(quick: bool) -> list[Row]:
    """Figures 10 and 11, from bench_verify.py: repro verify against plain nbclient runs.

    Not in a quick run: each round starts eight kernels (about a minute on 2 cores).
    """
    from bench_verify import FIGURES, measure

    if quick:
        return [
            Row(figure, "not in --quick", "", "", target, "pending") for figure, target in FIGURES
        ]
    return [Row.found(found) for found in measure(quick)]


def profiles_per_step(quick: bool) -> list[Row]:
    """Figure 8 (no target): each profile's training step against ``search``, CPU."""
    import torch
    from bench_profiles import measure

    import repro

    with repro.scope():  # the profiles switch flags: leave the process as it was
        medians, repeats = measure(
            "cpu", rounds=1 if quick else 3, steps=6 if quick else 12, width=16, batch=8, size=32
        )
    base = medians["search"]
    threads = torch.get_num_threads()
    return [
        Row(
            f"(8) profile {name}: one training step (CPU, {threads} threads, wall)",
            seconds_text(median),
            seconds_text(base) + " (search)",
            f"{median / base:.2f}×",
            "–",
            None,
            {"step_s": median, "repeats_bit_for_bit": repeats[name]},
        )
        for name, median in medians.items()
    ]


# --- (12): a traced repro.verify (why it diverged) --------------------------------------


def _mlp_training(steps: int = 20) -> Any:
    """The function of issue 19's cost target: Linear 64→256, ReLU, Linear 10; batch 128; SGD."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def traced_verify(rounds: int) -> list[Row]:
    """Figure 12: ``repro.verify(train, trace=True)`` against ``repro.verify(train)``, 1 thread."""
    import torch

    import repro

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with repro.scope(0):

            def case(trace: bool) -> Callable[[], float]:
                def run() -> float:
                    start = clock()
                    assert repro.verify(_mlp_training, seed=0, trace=trace)
                    return clock() - start

                return run

            case(True)()  # warm: torch's first backward, the tracer's per-op tables
            samples = interleaved({"traced": case(True), "plain": case(False)}, max(rounds, 5))
    finally:
        torch.set_num_threads(threads)
    row = ratio_row(
        "(12) repro.verify(train, trace=True): 20-step MLP, 1 thread",
        samples["traced"],
        samples["plain"],
        3.0,
        "≤ 3× untraced",
    )
    row.data["load_average"] = os.getloadavg()
    return [row]


# --- the table ------------------------------------------------------------------------


def met_text(met: bool | str | None) -> str:
    """``yes`` / ``NO`` / ``–`` (no target) / why it was not measured."""
    if met is None:
        return "–"
    if isinstance(met, str):
        return met
    return "yes" if met else "NO"


def table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = ("figure", "repro", "baseline", "ratio", "target", "met")
    cells = [header] + [
        (r.figure, r.repro, r.baseline, r.ratio, r.target, met_text(r.met)) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def distributions() -> int:
    """How many distributions this interpreter has installed (by name, as pip lists them)."""
    from importlib.metadata import distributions as installed

    return len({(d.metadata["Name"] or "").lower().replace("_", "-") for d in installed()})


def machine(load_at_start: tuple[float, ...]) -> str:
    """Two lines: the CPU, cores and load (at the start, now); the interpreter, its
    distributions and library versions."""
    import IPython
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    start, end = load_at_start[0], os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores · load average {start:.1f} at the start, "
        f"{end:.1f} at the end\n"
        f"Python {platform.python_version()} ({sys.prefix}, {distributions()} distributions) · "
        f"IPython {IPython.__version__} · torch {torch.__version__} · NumPy {numpy.__version__}"
    )


def in_order(groups: list[list[Row]]) -> list[Row]:
    """The rows by figure number; an unnumbered row follows the numbered one before it."""
    keyed = []
    for group in groups:
        number = 0
        for row in group:
            if row.figure.startswith("("):
                number = int(row.figure[1 : row.figure.index(")")])
            keyed.append((number, row))
    return [row for _, row in sorted(keyed, key=lambda pair: pair[0])]


def main(argv: list[str] | None = None) -> int:
    """Measure every figure, print the table, write the JSON; 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds; always exits 0")
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 15, quick 3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    parser.add_argument(
        "--timer",
        choices=CLOCKS,
        default="wall",
        help="wall time (default), or CPU time (cpu: this thread's for the in-process figures, "
        "the process's and its children's for the fresh-process ones), for a machine shared "
        "with other work",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="measure under this interpreter (another venv) instead, this checkout's repro first",
    )
    args = parser.parse_args(argv)
    if args.python:
        return _under(args.python, argv if argv is not None else sys.argv[1:])
    global _clock, _warm
    _clock, _warm = CLOCKS[args.timer], not args.quick
    rounds = args.rounds or (3 if args.quick else 15)
    number = 50 if args.quick else 400  # calls per round for the fast in-process figures
    cells = 20 if args.quick else 100

    load_at_start = os.getloadavg()
    sys.path.insert(0, str(HERE))  # the parts: bench_profiles, bench_fingerprint
    # Processes first: this process imports torch and NumPy below, the children must not.
    groups = [fresh_ipython(max(rounds, 4)), environment_first_call(max(1, math.ceil(rounds / 2)))]

    import numpy  # noqa: F401  (imported so that every built-in source of randomness is live)
    import torch  # noqa: F401

    groups.append(seed_and_scope(rounds, number))
    groups.append(cell_magic(rounds, cells))
    groups.append(open_panel(rounds, cells))
    groups.append(fingerprint_bandwidth(args.quick))
    groups.append(profiles_per_step(args.quick))
    groups.append(verify_speed(args.quick))
    groups.append(traced_verify(rounds))
    rows = in_order(groups)
    print(machine(load_at_start))
    command = "python benchmarks/run.py" + " ".join([""] + (argv or sys.argv[1:]))
    print(
        f"{command} · {rounds} rounds, medians ± half the interquartile range · "
        f"{'wall' if args.timer == 'wall' else 'CPU'} time"
    )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1, default=str))
    missed = [r.figure.strip() for r in rows if r.met is False]
    if missed:
        print(f"missed: {'; '.join(missed)}", file=sys.stderr)
    return exit_code(rows, args.quick)


def _under(python: str, argv: list[str]) -> int:
    """Run this script under ``python`` with the same options (but ``--python``); its code."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--python":
            skip = True
        elif not arg.startswith("--python="):
            rest.append(arg)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return subprocess.run([python, str(Path(__file__).resolve()), *rest], env=env).returncode


def exit_code(rows: list[Row], quick: bool) -> int:
    """1 if a target is missed, except in a quick run, which only reports."""
    return 1 if not quick and any(r.met is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
