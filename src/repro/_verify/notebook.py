"""``repro verify NOTEBOOK``: run a notebook in fresh kernels and find the first cell that differs.

The host side. Each run executes the notebook top to bottom with nbclient in a
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
import dataclasses
import json
import os
import re
import secrets
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro._shown import redact
from repro._verify import advice
from repro._verify.advice import Cause
from repro._verify.digest import digest
from repro._verify.outputs import normalize_outputs
from repro._verify.recorder import (
    ENVIRONMENT_EXPRESSION,
    TRACE_EXPRESSION,
    record_expression,
    trace_next_expression,
)
from repro._verify.report import SHOWN, Difference, compare, text_difference
from repro._verify.trace import MAX_SAVED_OPS, MAX_SAVED_TOTAL, FirstOp, first_op, from_data

__all__ = [
    "FORMAT",
    "SKIP_TAGS",
    "CellRecord",
    "NotebookReport",
    "Run",
    "VerifyError",
    "compare_environments",
    "compare_runs",
    "load_recording",
    "run_notebook",
    "save_recording",
    "verify_notebook",
]

FORMAT = "repro-verify/2"

#: Cell tags: the cell runs and nothing of it is compared.
IGNORE_TAGS = ("repro-ignore",)
#: Cell tags: its variables are compared, what it prints and displays is not (nbval's too).
IGNORE_OUTPUT_TAGS = ("repro-ignore-output", "nbval-ignore-output")
#: Cell tags: the cell does not run (nbval's too).
SKIP_TAGS = ("repro-skip", "nbval-skip")

#: Text kept per stream in a recording (the digest covers all of it).
_RECORDED_TEXT = 20_000

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# --- one run ----------------------------------------------------------------------


@dataclass
class CellRecord:
    """What one code cell left behind in one run."""

    position: int  # 1-based, counting every cell (markdown too)
    cell_id: str | None
    execution_count: int | None  # In [N] in this run
    code: str  # digest of the source: how --against knows an edited cell
    tags: list[str]
    outputs: str  # digest of what the cell showed (normalised)
    streams: dict[str, str]  # stream name → the text a person sees
    displayed: str  # the displays' text/plain, joined
    variables: dict[str, dict[str, Any]]
    rng: dict[str, str]
    changed: list[str]  # variables created or changed by this cell ("del x" if deleted)
    #: with --trace: the cell's torch ops as data (repro._verify.trace.to_data), or None
    trace: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (a recording), long texts cut."""
        data = dict(self.__dict__)
        data["streams"] = {k: v[:_RECORDED_TEXT] for k, v in self.streams.items()}
        return data

    @property
    def label(self) -> str:
        """``cell 5 (In [3], id 1a2b)``: how a person finds the cell."""
        return _label(self.position, self.execution_count, self.cell_id)


def _label(position: int, count: int | None, cell_id: str | None) -> str:
    extra = [f"In [{count}]"] if count is not None else []
    extra += [f"id {cell_id}"] if cell_id else []
    return f"cell {position}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class Run:
    """One execution of the notebook."""

    cells: list[CellRecord]
    hash_seed: str | None  # the kernel's PYTHONHASHSEED, None if randomized
    environment: dict[str, Any] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)


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
    trace: Callable[[int], int] | None = None,
    stop_after: int | None = None,
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
            async with client.async_setup_kernel(env=env, stderr=stderr):
                for done, (index, cell) in enumerate(code_cells, 1):
                    tags = _tags(cell)
                    if any(tag in SKIP_TAGS for tag in tags):
                        continue
                    count += 1
                    label = _label(index + 1, count, cell.get("id"))
                    limit = trace(index + 1) if trace is not None else 0
                    if limit:  # its torch ops, at most `limit` of them (--trace)
                        await _expression(client, trace_next_expression(limit))
                    try:
                        await client.async_execute_cell(cell, index)
                    except nbclient.exceptions.CellExecutionError as exc:
                        raise VerifyError(_error_line(label, exc), _kernel_stderr(stderr)) from None
                    state = await _expression(client, expression)
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
                        )
                    )
                    if progress is not None:
                        progress(done, len(code_cells))
                    if stop_after is not None and index + 1 >= stop_after:
                        return run  # a traced re-run: nothing after its cell is needed
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
) -> Run:
    """Execute the notebook at ``path`` once in a fresh kernel; digests after every code cell.

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
        )
    )


# --- comparing --------------------------------------------------------------------


@dataclass
class NotebookReport:
    """The verdict on a notebook: the first differing cell, what differs, why, and the fix."""

    notebook: str
    runs: int
    #: the first differing cell: position (1-based, markdown counted), In [N], id
    first: int | None = None
    first_count: int | None = None
    first_id: str | None = None
    items: list[Difference] = field(default_factory=list)
    downstream: list[int] = field(default_factory=list)
    cells: int = 0
    #: what was not compared, and why, one line each
    ignored: list[str] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    #: with ``against``: code cells added, removed or edited since the recording
    changes: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    hash_seeds: list[str | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    #: the kernel's stderr when a cell or the kernel failed
    details: str = ""
    against: str | None = None
    #: with --trace: the first torch op of the first differing cell that differed, and why
    first_op: FirstOp | None = None
    #: with --trace: why no op could be named, or None
    trace_note: str | None = None

    @property
    def reproducible(self) -> bool | None:
        """True, False, or None when it could not be decided (a cell raised)."""
        if self.error is not None:
            return None
        return self.first is None

    @property
    def exit_code(self) -> int:
        """0 reproducible, 1 not, 2 undecided."""
        return {True: 0, False: 1, None: 2}[self.reproducible]

    @property
    def first_label(self) -> str | None:
        """``cell 5 (In [3], id 1a2b)``, or None."""
        if self.first is None:
            return None
        return _label(self.first, self.first_count, self.first_id)

    @property
    def verdict(self) -> str:
        """One line."""
        what = f"against {self.against}" if self.against else f"over {self.runs} runs"
        if self.error is not None:
            return f"cannot verify {self.notebook}: {self.error}"
        if self.first is None:
            return f"reproducible: {self.cells} code cells identical {what}"
        return f"NOT reproducible: {self.first_label} is the first that differs {what}"

    @property
    def advice(self) -> list[str]:
        """One line per cause: what to do."""
        return [str(cause) for cause in self.causes]

    def __str__(self) -> str:
        # Why it diverged leads: the first op is the answer, the cells its consequences.
        lines = [str(self.first_op)] if self.first_op is not None else []
        if self.trace_note is not None:
            lines.append(f"trace: {self.trace_note}")
        if self.error is not None and self.details:
            lines.append("the kernel's stderr:")
            lines += [f"  {line}" for line in self.details.splitlines()]
        if self.first is not None:
            lines.append(f"{self.first_label} differs:")
            for name in dict.fromkeys(item.output for item in self.items):
                mine = [item for item in self.items if item.output == name]
                lines += [f"  {item}" for item in mine[:SHOWN]]
                if len(mine) > SHOWN:
                    lines.append(f"  (and {len(mine) - SHOWN} more inside {name})")
            if self.downstream:
                cells = ", ".join(str(p) for p in self.downstream)
                lines.append(f"later cells that differ, downstream of cell {self.first}: {cells}")
        if self.changes:
            lines.append("the notebook changed since the recording:")
            lines += [f"  {line}" for line in self.changes]
        if self.environment:
            lines.append("the environments differ:")
            lines += [f"  {line}" for line in self.environment]
        if self.ignored:
            lines.append("ignored:")
            lines += [f"  {line}" for line in self.ignored]
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"cause: {line}" for line in self.advice]
        lines.append(self.verdict)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (``--json``)."""
        return {
            "notebook": self.notebook,
            "verdict": self.verdict,
            "reproducible": self.reproducible,
            "runs": self.runs,
            "against": self.against,
            "first_differing_cell": self.first,
            "first_differing_cell_execution_count": self.first_count,
            "first_differing_cell_id": self.first_id,
            "differences": [dict(item.as_dict(), text=str(item)) for item in self.items],
            "downstream_cells": self.downstream,
            "code_cells": self.cells,
            "ignored": self.ignored,
            "environment_differences": self.environment,
            "changes": self.changes,
            "causes": [
                {"cause": c.name, "evidence": c.evidence, "fix": c.fix} for c in self.causes
            ],
            "hash_seeds": self.hash_seeds,
            "notes": self.notes,
            "error": self.error,
            "details": self.details,
            "first_differing_op": None if self.first_op is None else self.first_op.as_dict(),
            "trace_note": self.trace_note,
        }


def _entry_difference(name: str, where: str, a: dict[str, Any], b: dict[str, Any]) -> Difference:
    """One variable (or one leaf of it), as the kernels described it in two runs."""
    import numpy as np

    if (
        "values" in a
        and "values" in b
        and (a.get("dtype"), a.get("shape"))
        == (
            b.get("dtype"),
            b.get("shape"),
        )
    ):
        shape = tuple(a.get("shape") or np.shape(a["values"]))
        x = np.asarray(a["values"]).reshape(shape)
        y = np.asarray(b["values"]).reshape(shape)
        found = compare(name, x, y)
        if found is not None and found.differing is not None:
            return Difference(
                name,
                found.run,
                "values",
                where,
                1,
                a["kind"],
                b["kind"],
                found.differing,
                found.total,
                found.max_abs,
                found.first_index,
            )
    if "value" in a and "value" in b:
        x, y = a["value"], b["value"]
        if isinstance(x, str) and isinstance(y, str) and ("\n" in x + y or len(x + y) > 120):
            return text_difference(name, x, y, where=where)
        return Difference(name, 2, "values", where, 1, repr(x), repr(y))
    if "repr" in a and "repr" in b:
        return Difference(name, 2, "values", where, 1, a["repr"], b["repr"])
    if "summary" in a and "summary" in b and a["kind"] == b["kind"]:
        (m1, lo1, hi1), (m2, lo2, hi2) = a["summary"], b["summary"]
        return Difference(
            name,
            2,
            "summary",
            where,
            1,
            a["kind"],
            f"mean {m1:.6g} → {m2:.6g}, min {lo1:.6g} → {lo2:.6g}, max {hi1:.6g} → {hi2:.6g}",
        )
    if a["kind"] != b["kind"]:
        return Difference(name, 2, "type", where, 1, a["kind"], b["kind"])
    return Difference(
        name,
        2,
        "values",
        where,
        1,
        f"{a['kind']} (digest {a['digest'][:8]})",
        f"digest {b['digest'][:8]}",
    )


def _variable_differences(name: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    """A variable that differs: leaf by leaf (``model.0.weight``) where both runs sent leaves."""
    if "leaves" in a and "leaves" in b:
        x = {leaf["path"]: leaf for leaf in a["leaves"]}
        y = {leaf["path"]: leaf for leaf in b["leaves"]}
        found = []
        for path in dict.fromkeys([*x, *y]):
            if path not in x or path not in y:
                there = x.get(path) or y[path]
                found.append(
                    Difference(
                        name,
                        2,
                        "missing",
                        path,
                        first=there["kind"] if path in x else "",
                        second=there["kind"] if path in y else "",
                    )
                )
            elif x[path]["digest"] != y[path]["digest"]:
                found.append(_entry_difference(name, path, x[path], y[path]))
        if found:
            return found
    return [_entry_difference(name, "", a, b)]


def _cell_items(a: CellRecord, b: CellRecord, ignore: tuple[str, ...]) -> list[Difference]:
    items: list[Difference] = []
    for name in dict.fromkeys(n.removeprefix("del ") for n in [*a.changed, *b.changed]):
        if name in ignore:
            continue
        va, vb = a.variables.get(name), b.variables.get(name)
        if (va or {}).get("unreadable") or (vb or {}).get("unreadable"):
            continue  # listed among the report's ignored, never called identical silently
        if va is None or vb is None:
            if va is not vb:
                first = va["kind"] if va else ""
                second = vb["kind"] if vb else ""
                items.append(Difference(name, 2, "missing", first=first, second=second))
            continue
        if va["digest"] != vb["digest"]:
            items += _variable_differences(name, va, vb)
    if a.outputs != b.outputs and not any(t in IGNORE_OUTPUT_TAGS for t in a.tags + b.tags):
        items += _output_items(a, b)
    return items


def _output_items(a: CellRecord, b: CellRecord) -> list[Difference]:
    items = []
    for name in dict.fromkeys([*a.streams, *b.streams]):
        x, y = a.streams.get(name, ""), b.streams.get(name, "")
        if x != y:
            items.append(text_difference(name, x, y))
    if a.displayed != b.displayed:
        items.append(text_difference("displayed", a.displayed, b.displayed))
    if not items:  # rich outputs (images, HTML) only
        items.append(Difference("outputs", 2, "values", "", 1, a.outputs[:8], b.outputs[:8]))
    return items


def _rng_items(
    a: CellRecord, b: CellRecord, before_a: CellRecord | None, before_b: CellRecord | None
) -> list[Difference]:
    items = []
    for stream in dict.fromkeys([*a.rng, *b.rng]):
        fa, fb = a.rng.get(stream), b.rng.get(stream)
        if fa == fb:
            continue
        # This cell made the streams part only if they were equal before it. A stream that
        # differs from the start (never seeded) is not a result: the variables drawn from it are.
        was_a = before_a.rng.get(stream) if before_a else None
        was_b = before_b.rng.get(stream) if before_b else None
        if was_a is not None and was_a == was_b:
            items.append(
                Difference(
                    f"RNG {stream}",
                    2,
                    "values",
                    "",
                    1,
                    f"state {(fa or 'absent')[:8]}",
                    (fb or "absent")[:8],
                )
            )
    return items


def _match(
    first: list[CellRecord], second: list[CellRecord]
) -> tuple[list[tuple[CellRecord, CellRecord]], list[str]]:
    """Pairs of the same cell in two runs (by id, then by code, in order) and what changed."""
    pairs: dict[int, CellRecord] = {}
    used: set[int] = set()
    by_id = {c.cell_id: i for i, c in enumerate(second) if c.cell_id}
    for i, cell in enumerate(first):
        j = by_id.get(cell.cell_id) if cell.cell_id else None
        if j is not None and j not in used:
            pairs[i], _ = second[j], used.add(j)
    for i, cell in enumerate(first):
        if i in pairs:
            continue
        j = next((j for j, c in enumerate(second) if j not in used and c.code == cell.code), None)
        if j is not None:
            pairs[i], _ = second[j], used.add(j)
    changes = []
    for i, cell in enumerate(first):
        if i not in pairs:
            changes.append(f"removed: recorded {cell.label}")
        elif pairs[i].code != cell.code:
            changes.append(f"edited: {pairs[i].label} (recorded as {cell.label})")
    changes += [f"added: {c.label}" for j, c in enumerate(second) if j not in used]
    return [(first[i], pairs[i]) for i in sorted(pairs)], changes


def compare_runs(
    notebook: str, first: Run, second: Run, runs: int, ignore: tuple[str, ...] = ()
) -> NotebookReport:
    """Compare two runs cell by cell (``first`` may be a recording's run)."""
    report = NotebookReport(notebook, runs, cells=len(second.cells))
    report.hash_seeds = [first.hash_seed, second.hash_seed]
    report.ignored = _ignored_lines(first, second, ignore)
    pairs, report.changes = _match(first.cells, second.cells)
    previous_a: CellRecord | None = None
    previous_b: CellRecord | None = None
    for a, b in pairs:
        if any(tag in IGNORE_TAGS for tag in a.tags + b.tags):
            previous_a, previous_b = a, b
            continue
        items = _cell_items(a, b, ignore) + _rng_items(a, b, previous_a, previous_b)
        if items:
            if report.first is None:
                report.first, report.first_count, report.first_id = (
                    b.position,
                    b.execution_count,
                    b.cell_id,
                )
                report.items = items
            else:
                report.downstream.append(b.position)
        previous_a, previous_b = a, b
    return report


def _ignored_lines(first: Run, second: Run, ignore: tuple[str, ...]) -> list[str]:
    """What the comparison left out, and why, one line each."""
    lines = []
    for cell in second.cells:
        for tag in cell.tags:
            if tag in IGNORE_TAGS:
                lines.append(f"{cell.label}: tagged {tag}, nothing of it compared")
            elif tag in IGNORE_OUTPUT_TAGS:
                lines.append(f"{cell.label}: tagged {tag}, its outputs not compared")
    lines += [f"variable {name}: --ignore, never compared" for name in ignore]
    unreadable: dict[str, str] = {}
    for run in (first, second):
        for record in run.cells:
            for name, entry in record.variables.items():
                if entry.get("unreadable"):
                    unreadable.setdefault(name, entry["unreadable"])
    lines += [f"variable {n}: unreadable, not compared ({why})" for n, why in unreadable.items()]
    counts = first.ignored + second.ignored
    if counts:
        lines.append(
            "in outputs, as they vary between identical runs: "
            + ", ".join(f"{label} ({n})" for label, n in counts.items())
        )
    return lines


def skipped_lines(path: Path) -> list[str]:
    """The cells tagged not to run, one line each."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [
        f"{_label(i + 1, None, c.get('id'))}: tagged {tag}, not run"
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for tag in _tags(c)
        if tag in SKIP_TAGS
    ]


# --- causes -----------------------------------------------------------------------------


def _causes(
    report: NotebookReport, first: Run, second: Run, source: str, hashing: bool | None
) -> list[Cause]:
    """Why the first differing cell differs: what the runs showed, then what its code shows."""
    if report.first is None:
        return []
    found: list[Cause] = []
    if hashing:
        found.append(advice.HASHING)
    positions = [c.position for c in second.cells]
    index = positions.index(report.first)
    before_b = second.cells[index - 1] if index else None
    before_a = (
        next((c for c in first.cells if c.position == before_b.position), None)
        if (before_b)
        else None
    )
    first_b = second.cells[index]
    first_a = next((c for c in first.cells if c.position == first_b.position), None)
    if before_a is not None and before_b is not None and first_a is not None and not hashing:
        # A global stream that already differed before the cell, and that the cell drew from.
        streams = [
            s
            for s in before_b.rng
            if before_a.rng.get(s) != before_b.rng.get(s)
            and (
                first_b.rng.get(s) != before_b.rng.get(s)
                or first_a.rng.get(s) != before_a.rng.get(s)
            )
        ]
        if streams:
            found.append(advice.GLOBAL_STREAMS.with_evidence(", ".join(streams) + " unseeded"))
    elif index == 0 and not hashing and (draw := advice.global_draw(source)) is not None:
        found.append(draw)  # no state before the first cell to compare: its code says it
    found += [c for c in advice.causes_in_code(source) if c.name not in {f.name for f in found}]
    if not found and all(
        item.what in ("values", "summary") and item.max_abs is not None for item in report.items
    ):
        found.append(advice.NONDETERMINISTIC_OP)
    return found or [advice.UNKNOWN]


# --- environments and recordings -------------------------------------------------


def compare_environments(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """One line per environment fact that differs: versions, BLAS, flags, str hashing... (the
    same comparison as a config cell's, so the two never disagree on what matters)."""
    from repro._config import _differences

    return [line for line, _ in _differences(recorded, here)]


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
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a repro verify recording (format {FORMAT})")
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
    kernel: str = "python3",
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
    bar = _Progress(total, sys.stderr) if progress else None
    try:
        keep = _trace_budget() if trace and save is not None else None
        done = asyncio.run(
            _run_all(path, seeds, kernel, timeout, ignore, jobs or default_jobs(total), bar, keep)
        )
    except VerifyError as exc:
        return NotebookReport(name, total, error=exc.line, details=exc.details)
    finally:
        if bar is not None:
            bar.close()
    if save is not None:
        save_recording(save, path, done[0])
    source = _sources(path)
    if recorded is not None:
        report = compare_runs(name, recorded, done[0], 1, ignore)
        report.against = Path(against).name if against is not None else None
        report.environment = compare_environments(recorded.environment, done[0].environment)
        report.causes = _causes(report, recorded, done[0], source.get(report.first, ""), None)
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
    report = compare_runs(name, done[0], done[0], runs, ignore)
    other = done[0]
    for other in done[1:]:
        report = compare_runs(name, done[0], other, runs, ignore)
        if report.first is not None:
            break
    report.runs = runs
    report.hash_seeds = [run.hash_seed for run in done]
    hashing = None
    if report.first is not None and done[0].hash_seed != other.hash_seed:
        # Once more with run 1's hash seed: a difference that goes away was str hashing's.
        try:
            again = asyncio.run(
                _run_all(path, [done[0].hash_seed], kernel, timeout, ignore, 1, None)
            )[0]
        except VerifyError:
            again = None
        if again is not None:
            pinned = compare_runs(name, done[0], again, runs, ignore)
            hashing = pinned.first is None or pinned.first > report.first
            report.notes.append(
                f"run again with run 1's hash seed ({done[0].hash_seed}), cell {report.first} "
                + ("did not differ: the cause is str hashing" if hashing else "still differed")
            )
    if pinned_by_kernel is not None:
        report.notes.append(f"the kernel {kernel!r} pins PYTHONHASHSEED={pinned_by_kernel}")
    report.causes = _causes(report, done[0], other, source.get(report.first, ""), hashing)
    report.ignored = skipped_lines(path) + report.ignored
    if trace and report.first is not None:
        cell = next((c for c in done[0].cells if c.position == report.first), None)
        kept = cell.trace if cell is not None else None
        seeds = [other.hash_seed] if kept else [done[0].hash_seed, other.hash_seed]
        _trace_first_cell(path, report, kept, seeds, kernel, timeout)
    return report


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
                trace=trace_first if index == 0 else None,
            )

    tasks = [asyncio.ensure_future(one(i, seed)) for i, seed in enumerate(seeds)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
