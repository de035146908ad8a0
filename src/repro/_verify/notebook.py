"""``repro verify NOTEBOOK``: run a notebook in fresh kernels and find the first cell that differs.

The host side. Each run executes the notebook top to bottom with nbclient in a
new kernel. After every code cell, one silent request (no output, no execution
count) asks the kernel for digests of each user variable and fingerprints of
each RNG stream (:func:`repro._verify.recorder.kernel_record`, evaluated as a
user expression); the cell's outputs are digested here, after removing what
legitimately varies. Runs are compared cell by cell: a cell differs if its
outputs differ, or a variable or RNG stream that it created or changed differs.
The first such cell is named by its position as JupyterLab counts it (markdown
cells included); later cells that differ are listed as downstream of it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro._shown import redact
from repro._verify.digest import ADDRESS, digest
from repro._verify.recorder import ENVIRONMENT_EXPRESSION, KERNEL_EXPRESSION
from repro._verify.report import compare

__all__ = [
    "IGNORED",
    "CellRecord",
    "NotebookReport",
    "Run",
    "VerifyError",
    "compare_environments",
    "compare_runs",
    "load_recording",
    "normalize_outputs",
    "run_notebook",
    "save_recording",
    "verify_notebook",
]

#: What output digests ignore, as it varies between identical runs:
#: (label, pattern, replacement).
IGNORED: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("object addresses (at 0x...)", ADDRESS, "at 0x…"),
    (
        "repro export timestamps",
        re.compile(r"(# exported |['\"]captured['\"]: ['\"])\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
        r"\1<time>",
    ),
)

FORMAT = "repro-verify/2"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# --- outputs -------------------------------------------------------------------


def normalize_outputs(outputs: list[dict[str, Any]], ignored: Counter[str]) -> list[Any]:
    """The outputs without what varies between identical runs; counts each thing removed."""
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        item: dict[str, Any] = {"type": kind}
        if kind == "stream":
            item["name"] = out.get("name")
            item["text"] = _normalize_text(out.get("text", ""), ignored)
        elif kind in ("execute_result", "display_data"):
            if kind == "execute_result":
                ignored["execution counts"] += 1
            data = {}
            for mime, value in out.get("data", {}).items():
                if mime == "application/vnd.jupyter.widget-view+json":
                    ignored["widget model ids"] += 1
                    value = {k: v for k, v in value.items() if k != "model_id"}
                elif isinstance(value, str):
                    value = _normalize_text(value, ignored)
                elif isinstance(value, list):
                    value = _normalize_text("".join(value), ignored)
                data[mime] = value
            item["data"] = data
        elif kind == "error":
            item["error"] = f"{out.get('ename')}: {_normalize_text(out.get('evalue', ''), ignored)}"
        kept.append(item)
    return kept


def _normalize_text(text: str, ignored: Counter[str]) -> str:
    for label, pattern, replacement in IGNORED:
        text, n = pattern.subn(replacement, text)
        if n:
            ignored[label] += n
    return text


# --- running --------------------------------------------------------------------


@dataclass
class CellRecord:
    """What one code cell left behind in one run."""

    position: int  # 1-based, counting every cell (as JupyterLab's status bar does)
    cell_id: str | None
    outputs: str  # digest of the normalised outputs
    outputs_text: str  # the normalised text outputs, short, for the report
    variables: dict[str, dict[str, Any]]
    rng: dict[str, str]
    changed: list[str]  # variables created or changed by this cell

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Run:
    """One execution of the notebook."""

    cells: list[CellRecord]
    hash_seed: str
    environment: dict[str, Any] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)
    error: str | None = None


class VerifyError(Exception):
    """The notebook could not be run to the end (a cell raised, no such kernel...)."""


def _expression(client: Any, expression: str) -> Any:
    """Evaluate ``expression`` in the kernel with a silent execute; return its JSON value."""
    msg_id = client.kc.execute(
        "", silent=True, store_history=False, user_expressions={"repro": expression}
    )
    reply = client.wait_for_reply(msg_id)
    result = reply["content"].get("user_expressions", {}).get("repro", {})
    if result.get("status") != "ok":
        raise VerifyError(
            f"could not read the kernel's state: {result.get('ename')}: {result.get('evalue')} "
            "(is repro installed in the kernel's environment?)"
        )
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))


def _short_text(outputs: list[Any]) -> str:
    parts = []
    for item in outputs:
        if "text" in item:
            parts.append(item["text"])
        elif "data" in item and isinstance(item["data"].get("text/plain"), str):
            parts.append(item["data"]["text/plain"])
        elif "error" in item:
            parts.append(item["error"])
    text = redact("".join(parts).strip())
    return text if len(text) <= 200 else text[:197] + "..."


def run_notebook(
    path: Path,
    *,
    kernel: str = "python3",
    timeout: float = 600,
    hash_seed: str = "0",
    progress: Callable[[int, int], None] | None = None,
) -> Run:
    """Execute the notebook at ``path`` once in a fresh kernel; digest after every code cell.

    The kernel gets ``PYTHONHASHSEED=hash_seed`` and starts in the notebook's folder.
    A cell that raises ends the run: :class:`VerifyError` with the error.
    """
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=timeout,
        resources={"metadata": {"path": str(Path(path).resolve().parent)}},
        record_timing=False,
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    run = Run([], hash_seed)
    previous: dict[str, str] = {}
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    done = 0
    try:
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    client.execute_cell(cell, index)
                except nbclient.exceptions.CellExecutionError as exc:
                    error = _ANSI.sub("", str(exc))  # colours make no sense in JSON or a log
                    raise VerifyError(f"cell {index + 1} raised:\n{error}") from None
                state = _expression(client, KERNEL_EXPRESSION)
                outputs = normalize_outputs(cell.get("outputs", []), run.ignored)
                now = {k: v["digest"] for k, v in state["variables"].items()}
                changed = [k for k, fp in now.items() if previous.get(k) != fp]
                changed += [f"del {k}" for k in previous if k not in now]
                previous = now
                run.cells.append(
                    CellRecord(
                        index + 1,
                        cell.get("id"),
                        digest(json.dumps(outputs, sort_keys=True)),
                        _short_text(outputs),
                        state["variables"],
                        state["rng"],
                        changed,
                    )
                )
                done += 1
                if progress is not None:
                    progress(done, code_cells)
            run.environment = _expression(client, ENVIRONMENT_EXPRESSION)
    except NoSuchKernel as exc:
        raise VerifyError(f"no kernel named {exc.args[0] if exc.args else kernel!r}") from None
    except TimeoutError as exc:
        raise VerifyError(f"a cell ran longer than --timeout {timeout:g} s: {exc}") from None
    except (nbclient.exceptions.DeadKernelError, RuntimeError) as exc:
        # The kernel died, or never answered: nothing can be decided about the notebook.
        raise VerifyError(f"the kernel {kernel!r} failed: {exc}") from None
    return run


# --- comparing --------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One thing that differs in a cell: a variable, the outputs, or an RNG stream."""

    kind: str  # "variable" | "outputs" | "rng"
    name: str
    first: str
    second: str
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == "outputs":
            return f"outputs: {self.first!r} → {self.second!r}"
        if self.kind == "rng":
            return f"RNG {self.name}: state {self.first} → {self.second}"
        return f"{self.name}: {self.detail or f'{self.first} → {self.second}'}"


@dataclass
class NotebookReport:
    """The verdict on a notebook: the first differing cell, what differs, what was ignored."""

    notebook: str
    runs: int
    first: int | None = None  # position of the first differing cell
    first_id: str | None = None
    items: list[Item] = field(default_factory=list)
    downstream: list[int] = field(default_factory=list)
    cells: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    environment: list[str] = field(default_factory=list)
    error: str | None = None
    against: str | None = None

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
    def verdict(self) -> str:
        """One line."""
        what = f"against {self.against}" if self.against else f"over {self.runs} runs"
        if self.error is not None:
            return f"cannot verify {self.notebook}: {self.error.splitlines()[0]}"
        if self.first is None:
            return f"reproducible: {self.cells} code cells identical {what}"
        return f"NOT reproducible: cell {self.first} is the first that differs {what}"

    def __str__(self) -> str:
        lines = []
        if self.error is not None:
            lines.append(self.error)
        if self.first is not None:
            cell_id = f" (id {self.first_id})" if self.first_id else ""
            lines.append(f"cell {self.first}{cell_id} differs:")
            lines += [f"  {item}" for item in self.items]
            if self.downstream:
                cells = ", ".join(str(p) for p in self.downstream)
                lines.append(f"later cells that differ, downstream of cell {self.first}: {cells}")
        if self.environment:
            lines.append("the environments differ:")
            lines += [f"  {line}" for line in self.environment]
        if self.ignored:
            parts = ", ".join(f"{label} ({n})" for label, n in self.ignored.items())
            lines.append(f"ignored: {parts}")
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
            "first_differing_cell_id": self.first_id,
            "differences": [item.__dict__ for item in self.items],
            "downstream_cells": self.downstream,
            "code_cells": self.cells,
            "ignored": self.ignored,
            "environment_differences": self.environment,
            "error": self.error,
        }


def _variable_detail(name: str, a: dict[str, Any], b: dict[str, Any]) -> str:
    """Element by element where both runs sent the values; else kinds (and values if scalar)."""

    if "values" in a and "values" in b and a.get("dtype") == b.get("dtype"):
        import numpy as np

        diff = compare(name, np.asarray(a["values"]), np.asarray(b["values"]))
        if diff is not None and diff.differing is not None:
            text = f"{a['kind']}: {diff.differing} of {diff.total} elements differ"
            if diff.max_abs is not None:
                text += f", largest abs diff {diff.max_abs:.6g}"
            if diff.first_index is not None:
                text += f", first at {diff.first_index}"
            return text
    if "value" in a and "value" in b:
        return f"{a['kind']}: {a['value']!r} → {b['value']!r}"
    if "summary" in a and "summary" in b and a["kind"] == b["kind"]:
        (m1, lo1, hi1), (m2, lo2, hi2) = a["summary"], b["summary"]
        return (
            f"{a['kind']}: values differ: mean {m1:.6g} → {m2:.6g}, "
            f"min {lo1:.6g} → {lo2:.6g}, max {hi1:.6g} → {hi2:.6g}"
        )
    if a["kind"] != b["kind"]:
        return f"{a['kind']} → {b['kind']}"
    return f"{a['kind']}: values differ (digests {a['digest'][:8]} → {b['digest'][:8]})"


def _cell_items(a: CellRecord, b: CellRecord) -> list[Item]:
    items: list[Item] = []
    for name in dict.fromkeys([*a.changed, *b.changed]):
        if name.startswith("del "):
            name = name[4:]
        va, vb = a.variables.get(name), b.variables.get(name)
        if (va or {}).get("unreadable") or (vb or {}).get("unreadable"):
            continue  # listed among the report's ignored, never called identical silently
        if va is None or vb is None:
            if va is not vb:
                items.append(
                    Item(
                        "variable",
                        name,
                        va["kind"] if va else "absent",
                        vb["kind"] if vb else "absent",
                        f"{va['kind'] if va else 'absent'} → {vb['kind'] if vb else 'absent'}",
                    )
                )
            continue
        if va["digest"] != vb["digest"]:
            items.append(
                Item("variable", name, va["kind"], vb["kind"], _variable_detail(name, va, vb))
            )
    if a.outputs != b.outputs:
        items.append(Item("outputs", "outputs", a.outputs_text, b.outputs_text))
    return items


def _rng_items(
    a: CellRecord, b: CellRecord, before_a: CellRecord | None, before_b: CellRecord | None
) -> list[Item]:
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
            items.append(Item("rng", stream, (fa or "absent")[:8], (fb or "absent")[:8]))
    return items


def compare_runs(notebook: str, first: Run, second: Run, runs: int) -> NotebookReport:
    """Compare two runs cell by cell (``second`` may be a recording's run)."""
    report = NotebookReport(notebook, runs, cells=len(first.cells))
    ignored = first.ignored + second.ignored
    for run in (first, second):
        for record in run.cells:
            for name, entry in record.variables.items():
                if entry.get("unreadable"):
                    ignored[f"variable {name}, unreadable ({entry['unreadable']})"] = 1
    report.ignored = dict(ignored)
    if [c.position for c in first.cells] != [c.position for c in second.cells]:
        report.error = "the runs' code cells are at different positions: not the same notebook"
        return report
    by_position = {c.position: c for c in second.cells}
    previous_a: CellRecord | None = None
    previous_b: CellRecord | None = None
    for a in first.cells:
        b = by_position.get(a.position)
        if b is None:
            report.error = f"cell {a.position} is a code cell in one run and not in the other"
            return report
        items = _cell_items(a, b) + _rng_items(a, b, previous_a, previous_b)
        if items:
            if report.first is None:
                report.first, report.first_id, report.items = a.position, a.cell_id, items
            else:
                report.downstream.append(a.position)
        previous_a, previous_b = a, b
    return report


# --- environments and recordings -------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            label = index
            if isinstance(item, dict) and "library" in item:
                label = f"{item.get('package', '')}/{item['library']}"
            out.update(_flatten(item, f"{prefix}[{label}]"))
        return out
    return {prefix: value}


#: Keys that differ between any two captures and say nothing about the results.
_VOLATILE = ("captured",)


def compare_environments(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """One line per environment fact that differs: versions, BLAS, threads, GPU, hash seed..."""
    a, b = _flatten(recorded), _flatten(here)
    lines = []
    for key in dict.fromkeys([*a, *b]):
        if key in _VOLATILE or a.get(key) == b.get(key):
            continue
        lines.append(f"{key}: {a.get(key, 'absent')!r} recorded, {b.get(key, 'absent')!r} here")
    return lines


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
    cells = [CellRecord(**c) for c in data["cells"]]
    return Run(
        cells,
        str(data.get("hash_seed")),
        data.get("environment") or {},
        Counter(data.get("ignored") or {}),
    )


# --- the command ------------------------------------------------------------------


def _progress_bar(run: int, runs: int, stream: Any) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        bar = "█" * filled + "░" * (width - filled)
        end = "\n" if done == total else ""
        stream.write(f"\rrun {run}/{runs} {bar} {done}/{total} cells{end}")
        stream.flush()

    return show


def verify_notebook(
    notebook: Path,
    *,
    runs: int = 2,
    kernel: str = "python3",
    timeout: float = 600,
    hash_seed: str = "0",
    save: Path | None = None,
    against: Path | None = None,
    progress: bool = False,
) -> NotebookReport:
    """Run ``notebook`` ``runs`` times (once with ``against``) and compare; see the module doc.

    ``hash_seed`` is the kernels' ``PYTHONHASHSEED``: a number for every run, or
    ``"random"`` for a different one per run. Errors that stop a run (a cell
    raised, no such kernel) are in the report's ``error``, with exit code 2.
    """
    name = Path(notebook).name
    recorded = load_recording(against) if against is not None else None
    total = 1 if recorded is not None else runs
    done: list[Run] = []
    for index in range(1, total + 1):
        seed = str(secrets.randbits(32)) if hash_seed == "random" else hash_seed
        bar = _progress_bar(index, total, sys.stderr) if progress else None
        try:
            done.append(
                run_notebook(notebook, kernel=kernel, timeout=timeout, hash_seed=seed, progress=bar)
            )
        except VerifyError as exc:
            if progress:
                sys.stderr.write("\n")
            return NotebookReport(name, total, error=str(exc))
    if save is not None:
        save_recording(save, notebook, done[0])
    if recorded is not None:
        report = compare_runs(name, recorded, done[0], 1)
        report.against = Path(against).name if against is not None else None
        report.environment = compare_environments(recorded.environment, done[0].environment)
        hashing_shown = any(line.startswith("hashing.") for line in report.environment)
        if recorded.hash_seed != done[0].hash_seed and not hashing_shown:
            report.environment.append(
                f"PYTHONHASHSEED: {recorded.hash_seed} recorded, {done[0].hash_seed} here"
            )
        return report
    report = compare_runs(name, done[0], done[0], runs)
    for other in done[1:]:
        report = compare_runs(name, done[0], other, runs)
        if report.first is not None:
            break
    return report


def _version() -> str:
    """This repro's version, for a recording (read from the installed distribution)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyter-repro")
    except PackageNotFoundError:
        return "unknown"
