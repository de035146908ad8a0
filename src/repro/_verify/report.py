"""What verify decides and how it says it: one text for a difference, at every scale.

:func:`compare` compares two values by digest first (one read of each array) and
describes a difference element by element only where the digests differ: which
output, dtype and shape, how many elements differ, the largest absolute
difference and the first differing index. :class:`VerifyReport` is the verdict
of the function and cell scales.
"""

from __future__ import annotations

import html
import math
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from repro._shown import redact
from repro._verify.digest import Leaf, describe, digest, leaves, strip_addresses
from repro._verify.trace import FirstOp, Trace, divergence

__all__ = [
    "DISPLAYED",
    "DISPLAYS",
    "PRINTED",
    "RAISED",
    "Difference",
    "Raised",
    "Runs",
    "VerifyReport",
    "compare",
    "compare_leaves",
    "compare_outputs",
    "numeric",
    "text_difference",
]

#: The output names of what a cell shows: its last expression's value, and what it printed.
DISPLAYED = "displayed result"
PRINTED = "printed output"
#: The output name of an exception a run raised instead of finishing.
RAISED = "raised"
#: The output name of what the cell showed with ``display()`` (rich outputs).
DISPLAYS = "display() outputs"


@dataclass(frozen=True)
class Difference:
    """How one output of a run differs from the same output of the first run."""

    #: the variable name, ``"displayed result"``, ``"printed output"``, ``"result"``, ``"args[0]"``
    output: str
    #: which run differs from run 1 (runs count from 1)
    run: int
    #: what differs: ``"values"``, ``"bits"`` (only signed zeros or NaN payloads),
    #: ``"text"`` (``first_index`` is the line and column), ``"summary"`` (a large array
    #: known by mean, min and max), ``"dtype/shape"``, ``"type"``, ``"missing"`` or ``"error"``
    what: str
    #: the first differing leaf inside the output (``".fc.weight"``, ``"['loss']"``), or ``""``
    where: str = ""
    #: how many leaves (arrays, numbers...) of the output differ
    leaves: int = 1
    #: the leaf's description in run 1 and in the differing run
    first: str = ""
    second: str = ""
    #: elements of the leaf that differ, out of ``total``; None for non-arrays
    differing: int | None = None
    total: int | None = None
    max_abs: float | None = None
    first_index: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        # The descriptions show the user's values: one read from a secret-looking
        # environment variable is shown as $NAME (also in the HTML and as_dict forms).
        object.__setattr__(self, "first", redact(self.first))
        object.__setattr__(self, "second", redact(self.second))

    def __str__(self) -> str:
        where = f"{self.output}{self.where}"
        if self.what == "values" and self.differing is not None:
            text = f"{where}: {self.first}: {self.differing} of {self.total} elements differ"
            if self.max_abs is not None:
                text += f", largest abs diff {self.max_abs:.6g}"
            if self.first_index is not None:
                text += f", first at {self.first_index}"
        elif self.what == "text" and self.first_index is not None:
            line, column = self.first_index
            text = f"{where}: line {line}, column {column}: {self.first} → {self.second}"
        elif self.what == "summary":
            text = f"{where}: {self.first}: values differ: {self.second}"
        elif self.what == "values":
            text = f"{where}: {self.first} → {self.second}"
        elif self.what == "bits":
            text = f"{where}: {self.first}: equal values, different bits (signed zeros or NaNs)"
        elif self.what == "missing":
            first, second = self.first or "absent", self.second or "absent"
            text = f"{where}: {first} in run 1, {second} in run {self.run}"
        elif self.what == "error":
            text = f"{where}: {self.first} in run 1, {self.second} in run {self.run}"
        else:
            text = f"{where}: {self.what} {self.first} in run 1, {self.second} in run {self.run}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The difference as JSON-ready data."""
        return {
            "output": self.output,
            "run": self.run,
            "what": self.what,
            "where": self.where,
            "leaves": self.leaves,
            "first": self.first,
            "second": self.second,
            "differing": self.differing,
            "total": self.total,
            "max_abs": self.max_abs,
            "first_index": None if self.first_index is None else list(self.first_index),
        }


@dataclass(frozen=True)
class VerifyReport:
    """The verdict on running the same code several times; ``bool(report)``: it repeated."""

    runs: int
    seed: int | None
    #: the outputs compared, in order
    outputs: tuple[str, ...]
    differences: tuple[Difference, ...] = ()
    #: why the code could not be verified (then no verdict on its outputs), or None
    unverifiable: str | None = None
    #: what was not compared or was normalised, said so the verdict is read rightly
    notes: tuple[str, ...] = field(default=())
    #: what to do about each cause of a difference, one line each
    advice: tuple[str, ...] = field(default=())
    #: with ``trace=True``: the first torch op whose output differed, and why (None if none)
    first_op: FirstOp | None = None
    #: with ``trace=True``: why no op could be named (no torch, every op agreed), or None
    trace_note: str | None = None

    @property
    def reproducible(self) -> bool | None:
        """True if every output repeated bit for bit, False if one differed, None if undecided."""
        if self.unverifiable is not None:
            return None
        return not self.differences

    @property
    def differing(self) -> tuple[str, ...]:
        """The outputs that differ, in order, each once."""
        return tuple(dict.fromkeys(d.output for d in self.differences))

    @property
    def verdict(self) -> str:
        """One line: ``reproducible: 5 outputs identical over 2 runs`` or what differs."""
        if self.unverifiable is not None:
            return f"cannot verify: {self.unverifiable}"
        n = len(self.outputs)
        noun = "output" if n == 1 else "outputs"
        if not self.differences and n == 0:
            return (
                f"reproducible, with nothing to compare: over {self.runs} runs the cell left "
                "no variable, output or figure"
            )
        if not self.differences:
            return f"reproducible: {n} {noun} identical over {self.runs} runs"
        names = self.differing
        verb = "differs" if len(names) == 1 else "differ"
        return f"NOT reproducible: {len(names)} of {n} {noun} {verb}: {', '.join(names)}"

    def __bool__(self) -> bool:
        return self.reproducible is True

    def __str__(self) -> str:
        # The verdict comes last: under the details, where the eye lands after the output.
        # Each output as in the first run that differs (the data keeps every run), at most
        # SHOWN leaves of it.
        first_run = {d.output: d.run for d in reversed(self.differences)}
        lines = []
        for name in self.differing:
            shown = [d for d in self.differences if d.output == name and d.run == first_run[name]]
            lines += [f"  {d}" for d in shown[:SHOWN]]
            more = shown[0].leaves - min(len(shown), SHOWN)
            if more > 0:
                lines.append(f"  (and {more} more inside {name})")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  cause: {line}" for line in self.advice]
        # Why it diverged leads: the first op is the answer, the outputs its consequences.
        lead = [str(self.first_op)] if self.first_op is not None else []
        if self.trace_note is not None:
            lead.append(f"trace: {self.trace_note}")
        return "\n".join([*lead, *lines, self.verdict])

    def __repr__(self) -> str:
        return f"<VerifyReport {self.verdict}>"

    def _repr_html_(self) -> str:
        e = html.escape
        color = {True: "#1a7f37", False: "#cf222e", None: "#9a6700"}[self.reproducible]
        rows = "".join(
            f"<tr><td><code>{e(d.output + d.where)}</code></td><td>{e(d.what)}</td>"
            f"<td>{e(d.first)}</td><td>{'' if d.differing is None else d.differing}"
            f"{'' if d.total is None else f' / {d.total}'}</td>"
            f"<td>{'' if d.max_abs is None else f'{d.max_abs:.6g}'}</td>"
            f"<td>{'' if d.first_index is None else e(str(d.first_index))}</td></tr>"
            for d in self.differences
        )
        table = (
            "<table><tr><th>output</th><th>what</th><th>kind</th><th>elements differing</th>"
            f"<th>largest abs diff</th><th>first index</th></tr>{rows}</table>"
            if rows
            else ""
        )
        notes = "".join(f"<div><small>{e(n)}</small></div>" for n in self.notes)
        notes += "".join(f"<div><small>cause: {e(a)}</small></div>" for a in self.advice)
        lead = self.first_op._repr_html_() if self.first_op is not None else ""
        if self.trace_note is not None:
            lead += f"<div><small>trace: {e(self.trace_note)}</small></div>"
        return (
            f"<div class='repro-verify'>{lead}<b style='color:{color}'>{e(self.verdict)}</b>"
            f"{table}{notes}</div>"
        )

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "verdict": self.verdict,
            "reproducible": self.reproducible,
            "runs": self.runs,
            "seed": self.seed,
            "outputs": list(self.outputs),
            "differences": [d.as_dict() for d in self.differences],
            "unverifiable": self.unverifiable,
            "notes": list(self.notes),
            "advice": list(self.advice),
            "first_op": None if self.first_op is None else self.first_op.as_dict(),
            "trace_note": self.trace_note,
        }


# --- comparing values ------------------------------------------------------------


def compare(name: str, first: Any, second: Any, run: int = 2) -> Difference | None:
    """How ``second`` (from run ``run``) differs from ``first`` as output ``name``; None if equal.

    The first difference, with ``leaves`` saying how many leaves differ in all
    (:func:`compare_leaves` gives each of them).
    """
    found = compare_leaves(name, first, second, run)
    return found[0] if found else None


def compare_leaves(
    name: str, first: Any, second: Any, run: int = 2, limit: int = 10
) -> list[Difference]:
    """Each leaf of output ``name`` that differs (``model.0.weight``...), at most ``limit``.

    Equality is bitwise, decided by digest; the details are computed only for a
    value whose digest differs. A short container is described by its values.
    """
    if digest(first) == digest(second):
        return []
    by_value = _by_value(name, run, first, second)
    if by_value is not None:
        return [by_value]
    a = {leaf.path: leaf for leaf in leaves(first)}
    b = {leaf.path: leaf for leaf in leaves(second)}
    found: list[Difference] = []
    count = 0
    for path in dict.fromkeys([*a, *b]):
        if path not in a or path not in b:
            there = a.get(path) or b.get(path)
            assert there is not None
            desc = describe(there.value)
            count += 1
            if len(found) < limit:
                found.append(
                    Difference(
                        name,
                        run,
                        "missing",
                        _clean(path),
                        first=desc if path in a else "",
                        second=desc if path in b else "",
                    )
                )
        elif digest(a[path].value) != digest(b[path].value):
            count += 1
            if len(found) < limit:
                found.append(_leaf_difference(name, run, a[path], b[path]))
    if not found:  # the same leaves, but a set, a type or an order differs
        return [Difference(name, run, "values", "", 1, describe(first), describe(second))]
    return [replace(d, leaves=count) for d in found]


#: Leaves of one output shown in a report's text (the data keeps up to ten).
SHOWN = 3

#: Containers whose text is at most this long are shown by value: ``[1, 2] → [2, 1]``.
SHORT = 80


def _by_value(name: str, run: int, first: Any, second: Any) -> Difference | None:
    kinds = (list, tuple, dict, set, frozenset)
    if not (isinstance(first, kinds) and isinstance(second, kinds)):
        return None
    if any(isinstance(leaf.value, _array_types()) for v in (first, second) for leaf in leaves(v)):
        return None
    x, y = strip_addresses(repr(first)), strip_addresses(repr(second))
    if len(x) > SHORT or len(y) > SHORT or x == y:
        return None
    return Difference(name, run, "values", "", 1, x, y)


def _array_types() -> tuple[type, ...]:
    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    return tuple(
        t for t in (getattr(np, "ndarray", None), getattr(torch, "Tensor", None)) if t is not None
    )


#: Characters of context shown on each side of the first differing character of two texts.
EXCERPT = 24


def text_difference(
    name: str, first: str, second: str, run: int = 2, where: str = ""
) -> Difference:
    """Where two texts first differ: line and column (from 1), and a short excerpt of each
    around that point (never two identical prefixes)."""
    index = next(
        (i for i, (x, y) in enumerate(zip(first, second, strict=False)) if x != y),
        min(len(first), len(second)),
    )
    line = first.count("\n", 0, index) + 1
    start_of_line = first.rfind("\n", 0, index) + 1
    column = index - start_of_line + 1
    start = max(start_of_line, index - EXCERPT)
    return Difference(
        name,
        run,
        "text",
        where,
        1,
        _excerpt(first, start, index, start_of_line),
        _excerpt(second, start, index, start_of_line),
        first_index=(line, column),
    )


def _excerpt(text: str, start: int, index: int, start_of_line: int) -> str:
    if index >= len(text) and start >= len(text):
        return "(end of text)"
    end = index + EXCERPT
    piece = text[start:end]
    return (
        ("…" if start > start_of_line else "")
        + repr(piece)
        + ("…" if end < len(text) else "")
        + (" (end of text)" if end >= len(text) and index >= len(text) else "")
    )


def _clean(path: str) -> str:
    return path.replace("#len", "").replace("#type", "")


def _leaf_difference(name: str, run: int, a: Leaf, b: Leaf) -> Difference:
    where = _clean(a.path)
    x, y = a.value, b.value
    if a.path.endswith("#len"):
        return Difference(name, run, "dtype/shape", where, 1, f"length {x}", f"length {y}")
    xa, ya = _as_numpy(x), _as_numpy(y)
    if xa is None or ya is None:
        if type(x) is not type(y):
            return Difference(name, run, "type", where, 1, type(x).__name__, type(y).__name__)
        if isinstance(x, str) and ("\n" in x + y or len(x) > SHORT or len(y) > SHORT):
            return text_difference(name, x, y, run, where)
        return Difference(name, run, "values", where, 1, _short(x), _short(y))
    if xa.dtype != ya.dtype or xa.shape != ya.shape or type(x) is not type(y):
        return Difference(name, run, "dtype/shape", where, 1, describe(x), describe(y))
    return _array_difference(name, run, where, describe(x), xa, ya)


def _as_numpy(value: Any) -> Any:
    """A NumPy view or host copy of an array or tensor leaf (only for leaves that differ)."""
    np = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu().resolve_conj().resolve_neg()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        try:
            return t.numpy()
        except TypeError:  # dtypes NumPy does not have (float8...)
            return t.float().numpy()
    if np is not None and isinstance(value, np.ndarray | np.generic):
        return np.asarray(value)
    return None


def _array_difference(name: str, run: int, where: str, desc: str, a: Any, b: Any) -> Difference:
    import numpy as np

    # NaN where both runs have NaN counts as equal: the digests already said "bits differ".
    equal = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else a == b
    unequal = ~np.asarray(equal)
    count = int(unequal.sum())
    if count == 0:
        return Difference(name, run, "bits", where, 1, desc, desc)
    index = tuple(int(i) for i in np.argwhere(unequal)[0]) if a.ndim else None
    max_abs = None
    if a.dtype.kind in "iufc":
        with np.errstate(all="ignore"):
            gaps = np.abs(
                a[unequal].astype(np.complex128 if a.dtype.kind == "c" else np.float64)
                - b[unequal].astype(np.complex128 if a.dtype.kind == "c" else np.float64)
            )
        finite = gaps[~np.isnan(gaps)]
        max_abs = float(finite.max()) if finite.size else math.nan
    return Difference(name, run, "values", where, 1, desc, desc, count, int(a.size), max_abs, index)


def _short(value: Any) -> str:
    # Redacted by Difference itself, like every description it holds.
    text = strip_addresses(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def compare_outputs(reference: dict[str, Any], other: dict[str, Any], run: int) -> list[Difference]:
    """How run ``run``'s named outputs differ from the reference run's: each differing leaf
    (at most ten per output)."""
    found = []
    for name in dict.fromkeys([*reference, *other]):
        if name not in other or name not in reference:
            there = reference.get(name, other.get(name))
            found.append(
                Difference(
                    name,
                    run,
                    "missing",
                    first=describe(there) if name in reference else "",
                    second=describe(there) if name in other else "",
                )
            )
            continue
        found += compare_leaves(name, reference[name], other[name], run)
    return found


@dataclass
class Runs:
    """The runs of one verify, compared as they come: the first is the reference (its outputs
    and its trace); each later one is compared with it, and the first op that differed is
    named once, from the first run that differed."""

    reference: dict[str, Any] | None = None
    reference_trace: Trace | None = None
    differences: list[Difference] = field(default_factory=list)
    first_op: FirstOp | None = None
    trace_note: str | None = None

    def add(self, outputs: dict[str, Any], recorded: Trace | None, run: int) -> None:
        """Run ``run``'s outputs and trace: the reference if it is the first, else compared."""
        if self.reference is None:
            self.reference, self.reference_trace = outputs, recorded
            return
        found = compare_outputs(self.reference, outputs, run)
        self.differences += found
        if found and self.first_op is None and self.trace_note is None:
            self.first_op, self.trace_note = divergence(self.reference_trace, recorded)


def numeric(differences: Any) -> bool:
    """Whether every difference is of numbers (element counts known): what a nondeterministic
    op leaves, where a generator or the clock leave other kinds too."""
    found = list(differences)
    return bool(found) and all(d.max_abs is not None for d in found)


@dataclass(frozen=True)
class Raised:
    """A run that raised instead of returning (compared like a value)."""

    text: str

    def __repr__(self) -> str:
        return f"raised {self.text}"
