"""``repro verify NOTEBOOK``: run a notebook in fresh kernels and find the first cell that differs.

The host side (the comparison and the report: :mod:`repro._verify.notebook_report`).
Each run executes the notebook top to bottom with nbclient in a
new kernel (over IPC, its stderr kept aside), the runs in parallel up to
``jobs`` at a time. After every code cell, one silent request (no output, no
execution count) asks the kernel for digests of each user variable and
fingerprints of each RNG stream (:mod:`repro._verify.recorder`); the cell's
outputs are normalised here as a person sees them (:mod:`repro._verify.outputs`).
Runs are compared cell by cell: a cell differs if what it shows differs, or a
variable or RNG stream that it created or changed differs. The first such cell
is named by its position (markdown cells included), its execution count and its
id; later cells that differ are listed as downstream of it. The report ends
with the cause of the difference and its fix (:mod:`repro._verify.advice`).

Runs differ in hash seed by default (run *i* gets *i* − 1), as stock kernels
do, unless the kernel pins it; a difference is then checked again with the
hash seed pinned, and named as str hashing if it goes away.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import re
import secrets
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro._shown import redact
from repro._verify.digest import digest
from repro._verify.notebook_report import (
    SKIP_TAGS,
    CellRecord,
    NotebookReport,
    Run,
    causes,
    compare_environments,
    compare_runs,
    label,
    later_causes,
    rich_outputs,
)
from repro._verify.outputs import normalize_outputs
from repro._verify.recorder import (
    ENVIRONMENT_EXPRESSION,
    TRACE_EXPRESSION,
    record_expression,
    trace_next_expression,
)
from repro._verify.trace import MAX_SAVED_OPS, MAX_SAVED_TOTAL, first_op, from_data

__all__ = [
    "FORMAT",
    "CellRecord",
    "NotebookReport",
    "Run",
    "VerifyError",
    "compare_environments",
    "compare_runs",
    "earliest_difference",
    "kernel_hash_seed",
    "load_recording",
    "notebook_kernel",
    "run_notebook",
    "save_recording",
    "verify_notebook",
]

#: The recording format; 3 when digests came to compare masked arrays, pandas indexes and
#: columns, and fitted scikit-learn searches without their durations (2's digests differ);
#: 4 when scikit-learn's trees, structured arrays, markup in variables, threads and
#: ``%timeit -o`` results came to be digested as they are now; 5 when a Styler's uuid, a tqdm
#: widget bar's text, logging's timestamps and markup printed as text came to be.
FORMAT = "repro-verify/5"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# --- one run ----------------------------------------------------------------------


class VerifyError(Exception):
    """The notebook could not be run to the end (a cell raised, no such kernel...)."""

    def __init__(self, line: str, details: str = "") -> None:
        super().__init__(line)
        self.line, self.details = line, details


def _tags(cell: Any) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return [str(t) for t in tags] if isinstance(tags, list) else []


async def _expression(client: Any, expression: str) -> Any:
    """Evaluate ``expression`` in the kernel with a silent execute; return its JSON value."""
    import ast

    msg_id = client.kc.execute(
        "", silent=True, store_history=False, user_expressions={"repro": expression}
    )
    reply = await client.async_wait_for_reply(msg_id)
    result = reply["content"].get("user_expressions", {}).get("repro", {})
    if result.get("status") != "ok":
        raise VerifyError(
            f"could not read the kernel's state: {result.get('ename')}: {result.get('evalue')} "
            "(is repro installed in the kernel's environment?)"
        )
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))


def _error_line(label: str, exc: Any) -> str:
    """``cell 3 (In [2]) raised ZeroDivisionError: division by zero (line 2)``."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = _ANSI.sub("", str(getattr(exc, "evalue", "") or "")).strip()
    traceback = _ANSI.sub("", str(getattr(exc, "traceback", "") or ""))
    where = re.search(r"Cell In\[\d+\], line (\d+)", traceback) or re.search(
        r"^-+> ?(\d+)", traceback, re.M
    )
    first = evalue.splitlines()[0] if evalue else ""
    text = f"{label} raised {ename}" + (f": {first}" if first else "")
    return text + (f" (line {where.group(1)})" if where else "")


def notebook_kernel(path: Path) -> str:
    """The kernel the notebook names (its kernelspec), if installed here; else ``python3``."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    nb = nbformat.read(path, as_version=4)
    name = nb.metadata.get("kernelspec", {}).get("name")
    if name and name in KernelSpecManager().find_kernel_specs():
        return str(name)
    return "python3"


def kernel_hash_seed(kernel: str) -> str | None:
    """The PYTHONHASHSEED the kernelspec ``kernel`` pins, or None; VerifyError if no such kernel."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise VerifyError(f"no kernel named {kernel!r} (see jupyter kernelspec list)") from None
    value = (spec.env or {}).get("PYTHONHASHSEED")
    return None if value is None or value == "random" else str(value)


async def _run_notebook(
    path: Path,
    *,
    kernel: str,
    timeout: float,
    hash_seed: str | None,
    ignore: tuple[str, ...],
    progress: Callable[[int, int], None] | None,
    environment: bool = True,
    record: bool = True,
    trace: Callable[[int], int] | None = None,
    stop_after: int | None = None,
    concurrent: bool = False,
) -> Run:
    import nbclient
    import nbformat
    from jupyter_client.manager import AsyncKernelManager

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    if hash_seed is None:
        env.pop("PYTHONHASHSEED", None)
    else:
        env["PYTHONHASHSEED"] = hash_seed
    if concurrent:
        # Kernels side by side on few cores: OpenMP's idle threads (torch's intra-op pool)
        # spin by default and starve the other kernel; two such runs on 2 cores took 10×
        # as long as one. Passive waiting keeps every thread (results that depend on the
        # thread count still show) and gives the cores back. A value the user set stands.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run = Run([], hash_seed)
    previous: dict[str, str] = {}
    code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    expression = record_expression(ignore)
    with (
        tempfile.TemporaryDirectory(prefix="repro-verify-") as folder,
        open(Path(folder) / "stderr", "w+b") as stderr,
    ):
        # IPC: no TCP port, and no "running over TCP without encryption" warning.
        km = AsyncKernelManager(kernel_name=kernel, transport="ipc", ip=str(Path(folder) / "k"))
        client = nbclient.NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            resources={"metadata": {"path": str(Path(path).resolve().parent)}},
            record_timing=False,
            shutdown_kernel="graceful",
        )
        count = 0
        try:
            # cleanup_kc: the client shuts down a kernel whose manager it was handed, too
            # (nbclient only cleans up managers it made itself; without it every run leaked).
            async with client.async_setup_kernel(env=env, stderr=stderr, cleanup_kc=True):
                for done, (index, cell) in enumerate(code_cells, 1):
                    tags = _tags(cell)
                    if any(tag in SKIP_TAGS for tag in tags):
                        continue
                    count += 1
                    where = label(index + 1, count, cell.get("id"))
                    limit = trace(index + 1) if trace is not None else 0
                    if limit:  # its torch ops, at most `limit` of them (--trace)
                        await _expression(client, trace_next_expression(limit))
                    try:
                        await client.async_execute_cell(cell, index)
                    except nbclient.exceptions.CellExecutionError as exc:
                        raise VerifyError(_error_line(where, exc), _kernel_stderr(stderr)) from None
                    state = (
                        await _expression(client, expression)
                        if record
                        else {"variables": {}, "rng": {}}
                    )
                    shown = normalize_outputs(cell.get("outputs", []), run.ignored)
                    now = {k: v["digest"] for k, v in state["variables"].items()}
                    changed = [k for k, fp in now.items() if previous.get(k) != fp]
                    changed += [f"del {k}" for k in previous if k not in now]
                    previous = now
                    run.cells.append(
                        CellRecord(
                            index + 1,
                            cell.get("id"),
                            count,
                            digest(cell.source),
                            tags,
                            shown.digest,
                            {k: redact(v) for k, v in shown.streams.items()},
                            redact(
                                "".join(
                                    d["text/plain"]
                                    for d in shown.displays
                                    if isinstance(d.get("text/plain"), str)
                                )
                                + (shown.error or "")
                            ),
                            state["variables"],
                            state["rng"],
                            changed,
                            await _expression(client, TRACE_EXPRESSION) if limit else None,
                            rich_outputs(shown.displays),
                        )
                    )
                    if progress is not None:
                        progress(done, len(code_cells))
                    if stop_after is not None and index + 1 >= stop_after:
                        return run  # a traced re-run: nothing after its cell is needed
                if environment:  # for a recording: versions, threads, git (a few subprocesses)
                    run.environment = await _expression(client, ENVIRONMENT_EXPRESSION)
        except VerifyError:
            raise
        except TimeoutError as exc:
            raise VerifyError(f"a cell ran longer than --timeout {timeout:g} s: {exc}") from None
        except (nbclient.exceptions.DeadKernelError, RuntimeError) as exc:
            # The kernel died, or never answered: nothing can be decided about the notebook.
            raise VerifyError(
                f"the kernel {kernel!r} failed: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                _kernel_stderr(stderr),
            ) from None
        finally:
            # A run cancelled (another one failed) while nbclient shut its kernel down leaves
            # nbclient's exit hook registered, which then fails with a traceback when Python
            # exits, and maybe the kernel running: unregister it, and end the kernel here.
            atexit.unregister(client._cleanup_kernel)
            if km.has_kernel:
                with contextlib.suppress(Exception):
                    await km.shutdown_kernel(now=True)
    return run


def _kernel_stderr(stderr: Any) -> str:
    """The kernel's stderr so far (its last lines): shown only when a cell or the kernel failed."""
    stderr.flush()
    stderr.seek(0)
    lines = stderr.read().decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-20:])


def run_notebook(
    path: Path,
    *,
    kernel: str = "python3",
    timeout: float = 600,
    hash_seed: str | None = "0",
    ignore: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
    environment: bool = True,
    record: bool = True,
) -> Run:
    """Execute the notebook at ``path`` once in a fresh kernel; digests after every code cell
    (and the kernel's environment at the end, unless ``environment`` is false). Without
    ``record``, the same run without the digests (what the benchmark compares with).

    The kernel gets ``PYTHONHASHSEED=hash_seed`` (None: randomized) and starts in the
    notebook's folder. A cell that raises ends the run: :class:`VerifyError` with one line.
    """
    return asyncio.run(
        _run_notebook(
            Path(path),
            kernel=kernel,
            timeout=timeout,
            hash_seed=hash_seed,
            ignore=ignore,
            progress=progress,
            environment=environment,
            record=record,
        )
    )


def skipped_lines(path: Path) -> list[str]:
    """The cells tagged not to run, one line each."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [
        f"{label(i + 1, None, c.get('id'))}: tagged {tag}, not run"
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for tag in _tags(c)
        if tag in SKIP_TAGS
    ]


# --- recordings -----------------------------------------------------------------------


def save_recording(path: Path, notebook: Path, run: Run) -> None:
    """Write a run's per-cell digests and its environment as JSON."""
    data = {
        "format": FORMAT,
        "repro": _version(),
        "notebook": Path(notebook).name,
        "hash_seed": run.hash_seed,
        "environment": run.environment,
        "ignored": dict(run.ignored),
        "cells": [c.as_dict() for c in run.cells],
    }
    Path(path).write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


def load_recording(path: Path) -> Run:
    """Read a recording written by :func:`save_recording` (``ValueError`` if it is not one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read recording {path}: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("repro-verify/"):
        raise ValueError(f"{path} is not a repro verify recording (format {FORMAT})")
    if data["format"] != FORMAT:
        raise ValueError(
            f"{path} was recorded by repro {data.get('repro', '?')} in format {data['format']}; "
            f"this repro compares {FORMAT}: record it again with --save"
        )
    try:
        cells = [CellRecord(**c) for c in data["cells"]]
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{path} is not a repro verify recording: {exc}") from None
    seed = data.get("hash_seed")
    return Run(
        cells,
        None if seed is None else str(seed),
        data.get("environment") or {},
        Counter(data.get("ignored") or {}),
    )


def _version() -> str:
    """This repro's version, for a recording (read from the installed distribution)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyter-repro")
    except PackageNotFoundError:
        return "unknown"


# --- the whole verification ----------------------------------------------------------


class _Progress:
    """One line on stderr for all runs: ``run 1 ████░░ 4/6 · run 2 ███░░░ 3/6``."""

    def __init__(self, runs: int, stream: Any) -> None:
        self.done = [0] * runs
        self.total = 0
        self.stream = stream

    def callback(self, run: int) -> Callable[[int, int], None]:
        def show(done: int, total: int) -> None:
            self.done[run], self.total = done, total
            parts = []
            for i, d in enumerate(self.done):
                filled = 12 * d // max(total, 1)
                parts.append(f"run {i + 1} {'█' * filled}{'░' * (12 - filled)} {d}/{total}")
            self.stream.write("\r" + " · ".join(parts) + " cells")
            self.stream.flush()

        return show

    def close(self) -> None:
        if self.total:
            self.stream.write("\n")
            self.stream.flush()


def default_jobs(runs: int) -> int:
    """As many runs at once as there are cores (at least one)."""
    return max(1, min(runs, os.cpu_count() or 1))


def verify_notebook(
    notebook: Path,
    *,
    runs: int = 2,
    kernel: str | None = None,
    timeout: float = 600,
    hash_seed: int | str | None = None,
    jobs: int | None = None,
    save: Path | None = None,
    against: Path | None = None,
    ignore: tuple[str, ...] = (),
    progress: bool = False,
    trace: bool = False,
) -> NotebookReport:
    """Run ``notebook`` ``runs`` times (once with ``against``) in fresh kernels and compare.

    ``kernel``: by default the one the notebook names, if installed (else ``python3``).
    ``hash_seed``: None (the default) gives run *i* the hash seed *i* − 1, as stock kernels
    differ in hash seed, unless the kernelspec pins PYTHONHASHSEED; a number pins it for
    every run; ``"random"`` draws one per run. ``jobs``: runs at once (default: one per
    core). ``ignore``: variable names never compared. ``save`` writes the first run as a
    recording; ``against`` compares one run with such a recording, matching cells by id,
    then by code. Errors that stop a run (a cell raised, no such kernel) are in the
    report's ``error`` (one line) and ``details`` (the kernel's stderr), exit code 2.

    ``trace``: when a cell differs, run the notebook again up to that cell, tracing its
    torch ops, and name the first op that differs in ``report.first_op``. With ``save``,
    the first run traces every cell and the recording keeps their ops (bounded: see
    :data:`repro._verify.trace.MAX_SAVED_OPS`), so that ``against`` can name the op.
    """
    path = Path(notebook)
    name = path.name
    ignore = tuple(ignore)
    try:
        kernel = kernel or notebook_kernel(path)
        pinned_by_kernel = kernel_hash_seed(kernel)
    except VerifyError as exc:
        return NotebookReport(name, runs, error=exc.line)
    recorded = load_recording(against) if against is not None else None
    total = 1 if recorded is not None else runs
    if pinned_by_kernel is not None:
        seeds: list[str | None] = [pinned_by_kernel] * total
    elif hash_seed is None:
        seeds = [str(i) for i in range(total)]
    elif hash_seed == "random":
        seeds = [str(secrets.randbits(32)) for _ in range(total)]
    else:
        seeds = [str(hash_seed)] * total
    keep = _trace_budget() if trace and save is not None else None

    def run_all(at_once: int) -> list[Run]:
        bar = _Progress(total, sys.stderr) if progress else None
        try:
            return asyncio.run(
                _run_all(
                    path,
                    seeds,
                    kernel,
                    timeout,
                    ignore,
                    at_once,
                    bar,
                    environment=save is not None or against is not None,
                    trace_first=keep,
                )
            )
        finally:
            if bar is not None:
                bar.close()

    at_once = min(jobs or default_jobs(total), total)
    folder = path.resolve().parent
    before = folder_files(folder) if at_once > 1 else None
    failed: VerifyError | None = None
    try:
        done = run_all(at_once)
    except VerifyError as exc:
        failed, done = exc, []
    written = files_written(before, folder_files(folder)) if before is not None else []
    side_note = None
    compared = earliest_difference(name, done, runs, ignore) if written and failed is None else None
    if written and (compared is None or compared[0].first is not None):
        # Runs side by side share the notebook's folder: one can read a file the other is
        # half-way through writing (np.savez then np.load, torch.save then torch.load). Once
        # more, one after the other, as a person runs a notebook twice.
        shown = ", ".join(written[:5]) + (f" and {len(written) - 5} more" if written[5:] else "")
        side_note = (
            f"the runs wrote to the notebook's folder ({shown}) and side by side could read "
            "each other's files: verify ran them again one after the other"
        )
        if progress:
            print(f"repro verify: {side_note}", file=sys.stderr, flush=True)
        at_once, failed, compared = 1, None, None
        try:
            done = run_all(1)
        except VerifyError as exc:
            failed = exc
    if failed is not None:
        report = NotebookReport(name, total, error=failed.line, details=failed.details)
        report.notes += [side_note] if side_note else []
        return report
    if save is not None:
        save_recording(save, path, done[0])
    source = _sources(path)
    if recorded is not None:
        report = compare_runs(name, recorded, done[0], 1, ignore)
        report.against = Path(against).name if against is not None else None
        report.environment = compare_environments(recorded.environment, done[0].environment)
        report.causes = causes(
            report, recorded, done[0], source.get(report.first, ""), None, _before(source, report)
        )
        report.later_causes = later_causes(report, source)
        report.ignored = skipped_lines(path) + report.ignored
        if trace and report.first is not None:
            cell = _recorded_cell(recorded, report)
            recorded_trace = cell.trace if cell is not None else None
            if recorded_trace is None:
                report.trace_note = (
                    f"the recording has no trace of cell {report.first}: it was made without "
                    f"--trace, or past its bound of {MAX_SAVED_TOTAL:,} ops"
                )
            else:
                _trace_first_cell(
                    path, report, recorded_trace, [done[0].hash_seed], kernel, timeout
                )
        return report
    report, other = compared or earliest_difference(name, done, runs, ignore)
    report.runs = runs
    report.hash_seeds = [run.hash_seed for run in done]
    hashing = None
    if report.first is not None and done[0].hash_seed != other.hash_seed:
        # Once more with run 1's hash seed: a difference that goes away was str hashing's.
        # Both seeds again: a difference that is chance's (a coin flip, a rounded timing) can
        # match run 1 once by luck; str hashing's gives back run 1 AND run 2, each from its seed.
        try:
            again = asyncio.run(
                _run_all(
                    path,
                    [done[0].hash_seed, other.hash_seed],
                    kernel,
                    timeout,
                    ignore,
                    at_once if side_note else jobs or default_jobs(2),
                    None,
                )
            )
        except VerifyError:
            again = None
        if again is not None:
            pinned = compare_runs(name, done[0], again[0], runs, ignore)
            back = compare_runs(name, other, again[1], runs, ignore)
            hashing = all(r.first is None or r.first > report.first for r in (pinned, back))
            report.notes.append(
                f"run again with each run's hash seed ({done[0].hash_seed}, {other.hash_seed}), "
                f"cell {report.first} "
                + ("gave each run's result back" if hashing else "still differed")
            )
    if side_note is not None:
        report.notes.insert(0, side_note)
    if pinned_by_kernel is not None:
        report.notes.append(f"the kernel {kernel!r} pins PYTHONHASHSEED={pinned_by_kernel}")
    report.causes = causes(
        report, done[0], other, source.get(report.first, ""), hashing, _before(source, report)
    )
    report.later_causes = later_causes(report, source)
    report.ignored = skipped_lines(path) + report.ignored
    if trace and report.first is not None:
        cell = next((c for c in done[0].cells if c.position == report.first), None)
        kept = cell.trace if cell is not None else None
        seeds = [other.hash_seed] if kept else [done[0].hash_seed, other.hash_seed]
        _trace_first_cell(path, report, kept, seeds, kernel, timeout)
    return report


#: At most this many entries of the notebook's folder are looked at for files the runs wrote.
_FOLDER_ENTRIES = 20_000


def folder_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file under ``folder`` (hidden entries and ``__pycache__`` left out, at most
    :data:`_FOLDER_ENTRIES` entries): its path relative to ``folder`` -> (mtime ns, size)."""
    found: dict[str, tuple[int, int]] = {}
    pending, seen = [folder], 0
    while pending and seen < _FOLDER_ENTRIES:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file():
                    stat = entry.stat()
                    found[os.path.relpath(entry.path, folder)] = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                continue
    return found


def files_written(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> list[str]:
    """The files created, changed or removed between two :func:`folder_files`, sorted."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


def earliest_difference(
    name: str, done: list[Run], runs: int, ignore: tuple[str, ...] = ()
) -> tuple[NotebookReport, Run]:
    """Run 1 compared with every other run: the comparison whose first differing cell comes
    first, and that run (run 1 itself when all agree). With more than two runs, two of them
    can agree on a cell by chance (a draw with few possible values) where a third does not:
    the cell where the notebook first differs is the earliest over all of them."""
    report, other = compare_runs(name, done[0], done[0], runs, ignore), done[0]
    for run in done[1:]:
        found = compare_runs(name, done[0], run, runs, ignore)
        if found.first is not None and (report.first is None or found.first < report.first):
            report, other = found, run
    return report, other


def _trace_budget() -> Callable[[int], int]:
    """How many ops each cell of a --save --trace run keeps: MAX_SAVED_OPS each, until the
    recording holds MAX_SAVED_TOTAL (later cells then keep none, and say so)."""
    left = [MAX_SAVED_TOTAL]

    def limit(position: int) -> int:
        kept = min(MAX_SAVED_OPS, left[0])
        left[0] -= kept
        return kept

    return limit


def _recorded_cell(recorded: Run, report: NotebookReport) -> CellRecord | None:
    for cell in recorded.cells:
        if report.first_id is not None and cell.cell_id == report.first_id:
            return cell
    return next((c for c in recorded.cells if c.position == report.first), None)


def _trace_first_cell(
    path: Path,
    report: NotebookReport,
    kept: dict[str, Any] | None,
    seeds: list[str | None],
    kernel: str,
    timeout: float,
) -> None:
    """Run the notebook again up to the first differing cell, tracing only that cell (twice
    without a kept trace, once with one), and name the first op that differs."""
    position = report.first
    assert position is not None

    async def traced(seed: str | None) -> dict[str, Any] | None:
        run = await _run_notebook(
            path,
            kernel=kernel,
            timeout=timeout,
            hash_seed=seed,
            ignore=(),
            progress=None,
            trace=lambda p: MAX_SAVED_OPS if p == position else 0,
            stop_after=position,
            concurrent=len(seeds) > 1,
        )
        cell = next((c for c in run.cells if c.position == position), None)
        return None if cell is None else cell.trace

    async def both() -> list[dict[str, Any] | None]:
        return list(await asyncio.gather(*(traced(seed) for seed in seeds)))

    try:
        found = asyncio.run(both())
    except VerifyError as exc:
        report.trace_note = f"the traced re-run of cell {position} failed: {exc.line}"
        return
    traces = [kept, *found] if kept is not None else found
    if any(t is None for t in traces):
        report.trace_note = f"cell {position} could not be traced"
        return
    a, b = traces
    assert a is not None and b is not None
    result = first_op(from_data(a), from_data(b))
    if isinstance(result, str):
        again = "" if report.against else " (or the difference did not recur when traced)"
        report.trace_note = f"cell {position}: {result}{again}"
        return
    files = set(a.get("cell_files", ())) | set(b.get("cell_files", ()))
    line = result.line
    if line is not None and line.rpartition(":")[0] in files:
        line = f"cell {position}, line {line.rpartition(':')[2]}"
    report.first_op = dataclasses.replace(result, line=line, cell=position, called_from=None)


def _before(source: dict[int | None, str], report: NotebookReport) -> str:
    """The code of the cells before the first differing one, in order."""
    first = report.first or 0
    return "\n".join(code for position, code in sorted(source.items()) if position < first)


def _sources(path: Path) -> dict[int | None, str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return {i + 1: c.source for i, c in enumerate(nb.cells) if c.cell_type == "code"}


async def _run_all(
    path: Path,
    seeds: list[str | None],
    kernel: str,
    timeout: float,
    ignore: tuple[str, ...],
    jobs: int,
    bar: _Progress | None,
    environment: bool = False,
    trace_first: Callable[[int], int] | None = None,
) -> list[Run]:
    """Each run in its own kernel, ``jobs`` at a time; the first error stops them all."""
    gate = asyncio.Semaphore(jobs)

    async def one(index: int, seed: str | None) -> Run:
        async with gate:
            return await _run_notebook(
                path,
                kernel=kernel,
                timeout=timeout,
                hash_seed=seed,
                ignore=ignore,
                progress=bar.callback(index) if bar is not None else None,
                environment=environment,
                trace=trace_first if index == 0 else None,
                concurrent=min(jobs, len(seeds)) > 1,
            )

    tasks = [asyncio.ensure_future(one(i, seed)) for i, seed in enumerate(seeds)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
