"""What two runs of a notebook differ in: the records of each cell, matched, compared, explained.

The records come from the host (:mod:`repro._verify.notebook`) or a recording;
cells are matched by id, then by code (so ``--against`` survives a markdown
edit and says which code cells were added, removed or edited); variables are
compared leaf by leaf, outputs as text; the first differing cell is named and
its cause found (:mod:`repro._verify.advice`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from repro._verify import advice
from repro._verify.advice import Cause
from repro._verify.digest import digest
from repro._verify.report import SHOWN, Difference, compare, text_difference
from repro._verify.trace import FirstOp

__all__ = [
    "IGNORE_OUTPUT_TAGS",
    "IGNORE_TAGS",
    "SKIP_TAGS",
    "CellRecord",
    "NotebookReport",
    "Run",
    "causes",
    "compare_environments",
    "compare_runs",
    "label",
    "rich_outputs",
]

#: Cell tags: the cell runs and nothing of it is compared.
IGNORE_TAGS = ("repro-ignore",)
#: Cell tags: its variables are compared, what it prints and displays is not (nbval's too).
IGNORE_OUTPUT_TAGS = ("repro-ignore-output", "nbval-ignore-output")
#: Cell tags: the cell does not run (nbval's too).
SKIP_TAGS = ("repro-skip", "nbval-skip")

#: Text kept per stream in a recording (the digest covers all of it).
_RECORDED_TEXT = 20_000
#: The start of each textual rich output kept (HTML, SVG, JSON), to show where two differ.
_RICH_TEXT = 4_000


# --- the records ----------------------------------------------------------------------


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
    #: each display's rich outputs (every mime type but text/plain): ``{mime: {"digest",
    #: "size", "text"}}``, ``text`` (its start) for textual ones; how a difference is shown
    rich: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (a recording), long texts cut."""
        data = dict(self.__dict__)
        data["streams"] = {k: v[:_RECORDED_TEXT] for k, v in self.streams.items()}
        data["rich"] = [
            {
                mime: {k: (v[:_RICH_TEXT] if k == "text" else v) for k, v in entry.items()}
                for mime, entry in display.items()
            }
            for display in self.rich
        ]
        return data

    @property
    def label(self) -> str:
        """``cell 5 (In [3], id 1a2b)``: how a person finds the cell."""
        return label(self.position, self.execution_count, self.cell_id)


def label(position: int, count: int | None, cell_id: str | None) -> str:
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
    #: later differing cells whose own code points at a cause: position -> causes
    later_causes: dict[int, list[Cause]] = field(default_factory=dict)
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
        return label(self.first, self.first_count, self.first_id)

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
                for position, found in self.later_causes.items():
                    lines += [f"  cell {position} may also differ on its own: {c}" for c in found]
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
            "later_causes": {
                str(position): [
                    {"cause": c.name, "evidence": c.evidence, "fix": c.fix} for c in found
                ]
                for position, found in self.later_causes.items()
            },
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
    items += _rich_items(a.rich, b.rich)  # images and HTML: a figure can differ beside text
    if not items:  # a recording made before rich outputs were kept
        items.append(Difference("outputs", 2, "values", "", 1, a.outputs[:8], b.outputs[:8]))
    return items


def rich_outputs(displays: Iterable[dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """Each display's outputs but text/plain, as :attr:`CellRecord.rich` keeps them."""
    kept = []
    for bundle in displays:
        entry = {}
        for mime, value in bundle.items():
            if mime == "text/plain":
                continue
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            binary = mime.startswith(("image/", "video/", "audio/")) and mime != "image/svg+xml"
            entry[mime] = {
                "digest": digest(text),
                # base64 holds 3 bytes in 4 characters
                "size": len(text) * 3 // 4 if binary else len(text),
                # all of it while the runs are compared (a difference 80,000 characters into
                # an estimator's HTML is shown by line and column); a recording keeps the start
                **({} if binary else {"text": text}),
            }
        kept.append(entry)
    return kept


def _rich_items(
    first: list[dict[str, dict[str, Any]]], second: list[dict[str, dict[str, Any]]]
) -> list[Difference]:
    """Which display and which of its mime types differ: a text by line and column, an image
    by its size (and digest, when the size is equal)."""
    items = []
    for i, (x, y) in enumerate(itertools.zip_longest(first, second), 1):
        if x is None or y is None:
            kinds = ", ".join(x or y or {}) or "text only"
            shown = f"a display ({kinds})"
            items.append(
                Difference(
                    f"display {i}",
                    2,
                    "missing",
                    first=shown if x else "",
                    second=shown if y else "",
                )
            )
            continue
        for mime in dict.fromkeys([*x, *y]):
            ex, ey = x.get(mime), y.get(mime)
            if ex is not None and ey is not None and ex["digest"] == ey["digest"]:
                continue
            name = f"display {i} {mime}"
            if ex is None or ey is None:
                items.append(
                    Difference(
                        name, 2, "missing", first=mime if ex else "", second=mime if ey else ""
                    )
                )
            elif "text" in ex and "text" in ey and ex["text"] != ey["text"]:
                items.append(text_difference(name, ex["text"], ey["text"]))
            else:
                unit = "characters" if "text" in ex else "bytes"
                sizes = ex["size"] != ey["size"]
                items.append(
                    Difference(
                        name,
                        2,
                        "values",
                        "",
                        1,
                        f"{ex['size']:,} {unit}"
                        + ("" if sizes else f", digest {ex['digest'][:8]}"),
                        f"{ey['size']:,} {unit}"
                        + ("" if sizes else f", digest {ey['digest'][:8]}"),
                    )
                )
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


def causes(
    report: NotebookReport,
    first: Run,
    second: Run,
    source: str,
    hashing: bool | None,
    earlier: str = "",
) -> list[Cause]:
    """Why the first differing cell differs: what the runs showed, then what its code shows
    (``source``), and a DataLoader with workers that an ``earlier`` cell built and it uses."""
    if report.first is None:
        return []
    found: list[Cause] = []
    if hashing:
        found.append(advice.HASHING)
    positions = [c.position for c in second.cells]
    index = positions.index(report.first)
    partner = {id(b): a for a, b in _match(first.cells, second.cells)[0]}
    first_b = second.cells[index]
    first_a = partner.get(id(first_b))
    before_b = second.cells[index - 1] if index else None
    before_a = partner.get(id(before_b)) if before_b is not None else None
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
    found += [c for c in advice.clues(source, earlier) if c.name not in {f.name for f in found}]
    timed = advice.timing_leaves(report.items)
    if timed is not None and timed.name not in {f.name for f in found}:
        found.append(timed)
    found = [_varying_fix(c, report, source, len(found)) for c in found]
    if hashing and any(c.name in _CHANCE for c in found):
        # A value drawn by chance (a generator from the OS, the clock, uninitialised memory)
        # can repeat each run's result from its hash seed by luck: the code's clue stands.
        found = [c for c in found if c.name != advice.HASHING.name]
    if not found and first_a is not None and not hashing:
        # A global stream first seen after this cell (the cell imported NumPy, or it is the
        # first cell) that differs: unseeded from the start, and nothing else in the code
        # explains the cell (scipy's `norm.rvs()`, an estimator without `random_state`).
        had = before_b.rng if before_b is not None else {}
        fresh = [
            s
            for s in first_b.rng
            if s not in had
            and first_a.rng.get(s) is not None
            and first_a.rng.get(s) != first_b.rng.get(s)
        ]
        if fresh:
            found.append(
                advice.GLOBAL_STREAMS.with_evidence(
                    ", ".join(fresh) + " unseeded, first used in this cell"
                )
            )
    if not found and all(
        item.what == "summary" or item.max_abs is not None for item in report.items
    ):
        found.append(advice.NONDETERMINISTIC_OP)
    if hashing is False and found and (made := _set_made(source, earlier)) is not None:
        # The hash-seed rerun could not tell: the causes above vary the cell anyway. A set
        # in the code may be a second source (its order, when it holds strings).
        found.append(
            advice.HASHING.with_evidence(
                f"{made}: its order follows the hash seed when it holds strings, which the "
                "cause above kept the rerun with each run's hash seed from telling"
            )
        )
    figures = [i.output for i in report.items if i.output.startswith("display ")]
    if found and figures and all(c.name == advice.VARYING.name for c in found):
        # The clock explains what the cell prints and holds, not the figure it draws.
        found.append(advice.UNKNOWN.with_evidence(f"{figures[0]} differs"))
    return found or [advice.UNKNOWN]


def later_causes(report: NotebookReport, source: dict[int | None, str]) -> dict[int, list[Cause]]:
    """The causes that later differing cells' own code points at (an unseeded generator, the
    clock, a function of an earlier cell that reads either), beyond those already named: a
    later cell can be a source of its own and not only downstream of the first, and fixing
    the first alone would leave it. ``source``: each code cell's code by position."""
    named = {(c.name, c.evidence) for c in report.causes}
    found: dict[int, list[Cause]] = {}
    for position in report.downstream:
        code = source.get(position, "")
        earlier = "\n".join(c for p, c in sorted(source.items()) if p is not None and p < position)
        clues = advice.clues(code, earlier)
        # Uninitialised memory is left out here: `np.empty` filled at once is the common case,
        # and a later cell that differs is most often downstream. One clue per cause.
        new = [
            clue
            for clue in clues
            if clue.name != advice.UNINITIALIZED.name and (clue.name, clue.evidence) not in named
        ]
        named |= {(c.name, c.evidence) for c in new}
        if new:
            found[position] = new
    return found


def _varying_fix(cause: Cause, report: NotebookReport, source: str, causes: int) -> Cause:
    """A value that varies by nature, with the fix for what of the cell differs: the variables
    that hold it (assigned on the clue's line, or leaves named as durations) by name, and the
    cell's outputs by the tag that leaves them out. Other differing variables are other
    causes' (a search fitted unseeded and timed), unless this is the only cause."""
    if cause.name != advice.VARYING.name:
        return cause
    shown = (*advice.OUTPUT_PREFIXES, "RNG ")
    names = list(dict.fromkeys(i.output for i in report.items if not i.output.startswith(shown)))
    timed = advice.assigned_from(source, cause)
    held = [
        n
        for n in names
        if n in timed
        or all(advice.timing_leaf(f"{i.output}{i.where}") for i in report.items if i.output == n)
    ]
    if not held and causes == 1:
        held = names
    figures = [i.output for i in report.items if i.output.startswith("display ")]
    # What it printed or displayed as text; a figure is not printed (the clock draws none).
    printed = any(i.output.startswith(("stdout", "stderr", "displayed")) for i in report.items)
    parts = []
    if held:
        parts.append("leave the variables out with " + " ".join(f"`--ignore {n}`" for n in held))
    if printed and figures:
        # The clock does not draw a figure: the tag would hide what else differs.
        parts.append(
            "print the timing from a cell of its own and tag that cell `repro-ignore-output` "
            f"(not this one: its {figures[0]} differs too, which the clock does not explain)"
        )
    elif printed:
        parts.append(
            "tag the cell `repro-ignore-output` (what it prints and shows; its variables are "
            "still compared)"
        )
    if not parts and figures:
        fix = (
            f"nothing to leave out for the clock: the cell's {figures[0]} differs, which the "
            "clock does not draw; find what the figure depends on"
        )
        return advice.Cause(cause.name, fix, cause.evidence)
    if not parts:
        return cause
    fix = " and ".join(parts)
    if not figures:
        fix += ", or tag it `repro-ignore` (nothing of it compared)"
    return advice.Cause(cause.name, fix, cause.evidence)


#: A set made in the code: ``set(`` or ``frozenset(``, else a comprehension ``{x for ...}``.
_SETS = (re.compile(r"\b(?:frozen)?set\("), re.compile(r"\{[^{}:]*\bfor\b[^{}:]*\}"))


def _set_made(source: str, earlier: str) -> str | None:
    """Where the cell, or a function of an earlier cell that it calls, makes a set: "`set(` in
    the cell", "`set(` in `name`, an earlier cell's"; else None."""
    places = [("the cell", source)] + [
        (f"`{name}`, {advice.EARLIER}", body)
        for name, body in advice.definitions_used(earlier, source)
    ]
    for pattern in _SETS:
        for place, code in places:
            if (match := pattern.search(code)) is not None:
                return f"`{match.group(0)}` in {place}"
    return None


#: Causes whose values vary by chance, which a hash-seed rerun can match by luck.
_CHANCE = frozenset(
    c.name
    for c in (
        advice.OS_SEEDED,
        advice.VARYING,
        advice.UNINITIALIZED,
        advice.GLOBAL_STREAMS,
        advice.THREADS,
        advice.BOOTSTRAP,
        advice.WORKERS,
    )
)


# --- environments ----------------------------------------------------------------


def compare_environments(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """One line per environment fact that differs: versions, BLAS, flags, str hashing... (the
    same comparison as a config cell's, so the two never disagree on what matters)."""
    from repro._config import _differences

    return [line for line, _ in _differences(recorded, here)]
