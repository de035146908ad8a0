"""Run the same code several times from the same start and say whether the results repeat.

Two scales live here: a function (:func:`verify`) and a notebook cell
(:func:`verify_cell`, what ``%%repro --verify`` calls). Both compare the outputs
of each run with the first run's, by fingerprint first (one read of each
array), and describe a difference element by element only where the
fingerprints differ: which output, dtype and shape, how many elements differ,
the largest absolute difference and the first differing index.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import html
import io
import math
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from repro._fingerprint import (
    FingerprintError,
    Leaf,
    describe,
    fingerprint,
    leaves,
    strip_addresses,
)
from repro._shown import redact

__all__ = [
    "DISPLAYED",
    "DISPLAYS",
    "PRINTED",
    "ArgumentError",
    "Difference",
    "VerifyReport",
    "compare",
    "verify",
    "verify_cell",
]

#: The output names of what a cell shows: its last expression's value, and what it printed.
DISPLAYED = "displayed result"
PRINTED = "printed output"
#: The output name of an exception a run raised instead of finishing.
RAISED = "raised"
#: The output name of what the cell showed with ``display()`` (rich outputs).
DISPLAYS = "display() outputs"

#: Values shared, not copied, between runs: they hold code, not results.
_SHARED = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)


@dataclass(frozen=True)
class Difference:
    """How one output of a run differs from the same output of the first run."""

    #: the variable name, ``"displayed result"``, ``"printed output"``, ``"result"``, ``"args[0]"``
    output: str
    #: which run differs from run 1 (runs count from 1)
    run: int
    #: what differs: ``"values"``, ``"bits"`` (only signed zeros or NaN payloads),
    #: ``"dtype/shape"``, ``"type"``, ``"missing"`` or ``"error"``
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
        if self.leaves > 1:
            text += f" (and {self.leaves - 1} more inside {self.output})"
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
        if not self.differences:
            return f"reproducible: {n} {noun} identical over {self.runs} runs"
        names = self.differing
        verb = "differs" if len(names) == 1 else "differ"
        return f"NOT reproducible: {len(names)} of {n} {noun} {verb}: {', '.join(names)}"

    def __bool__(self) -> bool:
        return self.reproducible is True

    def __str__(self) -> str:
        # The verdict comes last: under the details, where the eye lands after the output.
        # Each output once, as in the first run that differs (the data keeps every run).
        first = {d.output: d for d in reversed(self.differences)}
        lines = [f"  {d}" for d in self.differences if first[d.output] is d]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join([*lines, self.verdict])

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
        return (
            f"<div class='repro-verify'><b style='color:{color}'>{e(self.verdict)}</b>"
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
        }


# --- comparing values ------------------------------------------------------------


def compare(name: str, first: Any, second: Any, run: int = 2) -> Difference | None:
    """How ``second`` (from run ``run``) differs from ``first`` as output ``name``; None if equal.

    Equality is bitwise, decided by fingerprint; the details are computed only
    for a value whose fingerprint differs.
    """
    if fingerprint(first) == fingerprint(second):
        return None
    a = {leaf.path: leaf for leaf in leaves(first)}
    b = {leaf.path: leaf for leaf in leaves(second)}
    found: list[Difference] = []
    for path in dict.fromkeys([*a, *b]):
        if path not in a or path not in b:
            there = a.get(path) or b.get(path)
            assert there is not None
            desc = describe(there.value)
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
        elif fingerprint(a[path].value) != fingerprint(b[path].value):
            found.append(_leaf_difference(name, run, a[path], b[path]))
    if not found:  # the same leaves, but a set, a type or an order differs
        return Difference(name, run, "values", "", 1, describe(first), describe(second))
    head = found[0]
    return Difference(
        head.output,
        head.run,
        head.what,
        head.where,
        len(found),
        head.first,
        head.second,
        head.differing,
        head.total,
        head.max_abs,
        head.first_index,
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

    # NaN where both runs have NaN counts as equal: the fingerprints already said "bits differ".
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


# --- running ------------------------------------------------------------------


def _check_runs(runs: Any) -> int:
    if isinstance(runs, bool) or not isinstance(runs, int):
        raise TypeError(f"runs must be an integer >= 2, got {type(runs).__name__} {runs!r}")
    if runs < 2:
        raise ValueError(f"runs must be an integer >= 2 (a comparison needs two runs), got {runs}")
    return runs


def _resolve_seed(seed: Any) -> int:
    from repro._session import effective_seed

    return effective_seed(seed)[0]


def _check_settings(profile: str | None, overrides: dict[str, Any]) -> None:
    """Raise as ``repro.scope(seed, profile, **overrides)`` would, before anything runs."""
    from repro._profiles import resolve
    from repro._session import current

    resolve(profile, overrides, (current().profile, current().overrides))


def _copy_all(values: dict[str, Any]) -> dict[str, Any]:
    """One deep copy of ``values`` (shared references kept: an optimizer keeps its model's
    parameters); raises ``_Uncopyable`` naming the first value that cannot be copied."""
    try:
        return copy.deepcopy(values)
    except Exception:
        for name, value in values.items():
            try:
                copy.deepcopy(value)
            except Exception as exc:
                raise _Uncopyable(
                    f"{name} ({type(value).__name__}) cannot be copied: {exc}"
                ) from None
        raise


class ArgumentError(ValueError):
    """A bad argument to :func:`verify_cell`, found before anything ran."""


class _Uncopyable(Exception):
    """A value the runs would need to start from cannot be deep-copied."""


def _compare_runs(reference: dict[str, Any], other: dict[str, Any], run: int) -> list[Difference]:
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
        diff = compare(name, reference[name], other[name], run)
        if diff is not None:
            found.append(diff)
    return found


@dataclass(frozen=True)
class _Raised:
    """A run that raised instead of returning (compared like a value)."""

    text: str

    def __repr__(self) -> str:
        return f"raised {self.text}"


def verify(
    fn: Callable[..., Any], *args: Any, runs: int = 2, seed: int | None = None, **kwargs: Any
) -> VerifyReport:
    """Call ``fn(*args, **kwargs)`` ``runs`` times from the same start and compare the results.

    Each call runs inside ``repro.scope(seed)`` (the session's seed if ``None``,
    else a fresh one, the same for every run) on a fresh deep copy of the
    arguments, so your arguments are never changed and a function that trains
    a model it is given starts each run from the same weights. Compared: the
    return value, and every argument the function mutated. If every run raises,
    the first run's exception propagates.
    """
    import repro
    from repro._session import record_verdict

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    runs = _check_runs(runs)
    value = _resolve_seed(seed)
    named = {f"args[{i}]": a for i, a in enumerate(args)}
    named.update({f"kwargs[{k!r}]": v for k, v in kwargs.items()})
    before = {name: fingerprint(v) for name, v in named.items()}
    reference: dict[str, Any] | None = None
    differences: list[Difference] = []
    errors: list[BaseException] = []
    names: dict[str, None] = {}
    for run in range(1, runs + 1):
        try:
            copies = _copy_all(named)
        except _Uncopyable as exc:
            report = VerifyReport(runs, value, (), unverifiable=str(exc))
            record_verdict(report.verdict)
            return report
        call_args = [copies[f"args[{i}]"] for i in range(len(args))]
        call_kwargs = {k: copies[f"kwargs[{k!r}]"] for k in kwargs}
        with repro.scope(value):
            try:
                result: Any = fn(*call_args, **call_kwargs)
            except Exception as exc:
                errors.append(exc)
                result = _Raised(f"{type(exc).__name__}: {strip_addresses(str(exc))}")
        outputs = {"result": result}
        outputs.update(
            {name: copies[name] for name in copies if fingerprint(copies[name]) != before[name]}
        )
        names.update(dict.fromkeys(outputs))
        if reference is None:
            reference = outputs
        else:
            differences += _compare_runs(reference, outputs, run)
    if len(errors) == runs:
        raise errors[0]
    report = VerifyReport(runs, value, tuple(names), tuple(differences))
    record_verdict(report.verdict)
    return report


# --- a cell -------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledCell:
    body: Any
    last: Any | None
    loads: tuple[str, ...]
    stores: tuple[str, ...]


def _compile_cell(shell: Any, line: str, cell: str) -> _CompiledCell:
    """The cell as the magic runs it (IPython's transforms), split before its last expression."""
    from repro._cell import parse

    filename, tree, last = parse(shell, line, cell)
    loads: dict[str, None] = {}
    stores: dict[str, None] = {}
    nodes = [*ast.walk(tree), *(ast.walk(last) if last is not None else ())]
    for node in nodes:
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores)[node.id] = None
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stores[node.name] = None
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            loads[node.target.id] = None  # ``x += 1`` reads x, and may change it in place
    body = shell.compile(tree, filename, "exec")
    last_code = None
    if last is not None:
        expression = ast.Expression(body=last.value)
        ast.copy_location(expression, last)
        last_code = shell.compile(expression, filename, "eval")
    return _CompiledCell(body, last_code, tuple(loads), tuple(stores))


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, comprehensions
            names |= _code_names(const)
    return names


def _reached_names(ns: dict[str, Any], loads: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The names the cell reads, plus the globals that functions defined in this namespace
    (and the functions they call) read; and those functions, which the extra runs re-bind."""
    reached = dict.fromkeys(loads)
    functions: list[str] = []
    pending = list(loads)
    while pending:
        name = pending.pop()
        value = ns.get(name)
        if isinstance(value, types.FunctionType) and value.__globals__ is ns:
            functions.append(name)
            for found in sorted(_code_names(value.__code__) - set(reached)):
                reached[found] = None
                pending.append(found)
    return list(reached), functions


def _rebind(functions: list[str], ns: dict[str, Any], scratch: dict[str, Any]) -> None:
    """Put in ``scratch`` copies of ``functions`` whose globals are ``scratch``, so the globals
    they read and change in an extra run are that run's copies, not the kernel's."""
    for name in functions:
        f = ns[name]
        g = types.FunctionType(f.__code__, scratch, f.__name__, f.__defaults__, f.__closure__)
        g.__kwdefaults__, g.__qualname__ = f.__kwdefaults__, f.__qualname__
        g.__dict__.update(f.__dict__)
        scratch[name] = g


def _is_result(value: Any) -> bool:
    return not isinstance(value, _SHARED)


class _Tee(io.TextIOBase):
    """Write to the real stream and remember the text (the real run's printed output)."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.parts, self.paused = stream, [], False

    def write(self, text: str) -> int:
        if not self.paused:
            self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _tee_stdout() -> Iterator[_Tee]:
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield tee
    finally:
        sys.stdout = tee.stream


def _run_once(compiled: _CompiledCell, ns: dict[str, Any]) -> Any:
    exec(compiled.body, ns)
    return None if compiled.last is None else eval(compiled.last, ns)


def _named_fingerprint(name: str, value: Any) -> str:
    try:
        return fingerprint(value)
    except FingerprintError as exc:
        raise FingerprintError(f"{name}: {exc}") from None


def _cell_outputs(
    compiled: _CompiledCell,
    ns: dict[str, Any],
    before: dict[str, str],
    shown: Any,
    printed: str,
    displays: list[dict[str, Any]],
) -> dict[str, Any]:
    outputs = {n: ns[n] for n in compiled.stores if n in ns and _is_result(ns[n])}
    outputs.update(
        {n: ns[n] for n in before if n in ns and _named_fingerprint(n, ns[n]) != before[n]}
    )
    for name, value in outputs.items():
        _named_fingerprint(name, value)  # readable, or the cell cannot be verified
    if shown is not None:
        outputs[DISPLAYED] = shown
    if printed:
        outputs[PRINTED] = strip_addresses(printed)
    if displays:
        outputs[DISPLAYS] = [_normalized_bundle(data) for data in displays]
    return outputs


def _normalized_bundle(data: dict[str, Any]) -> dict[str, Any]:
    """A display's mime bundle without what differs between identical runs."""
    bundle = {}
    for mime, value in data.items():
        if mime == "application/vnd.jupyter.widget-view+json" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "model_id"}
        elif isinstance(value, str):
            value = strip_addresses(value)
        bundle[mime] = value
    return bundle


@contextlib.contextmanager
def _recording_displays(shell: Any, tee: _Tee) -> Iterator[list[dict[str, Any]]]:
    """Record what ``display()`` publishes while still showing it (the ordinary run); a
    terminal's publisher prints it, which ``tee`` must not count as printed output."""
    publisher = shell.display_pub
    original = publisher.publish
    patched_before = "publish" in vars(publisher)
    shown: list[dict[str, Any]] = []

    def publish(data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        shown.append(data)
        tee.paused = True
        try:
            return original(data, *args, **kwargs)
        finally:
            tee.paused = False

    publisher.publish = publish
    try:
        yield shown
    finally:
        if patched_before:
            publisher.publish = original
        else:
            del publisher.publish  # the class's method again


def verify_cell(
    shell: Any,
    line: str,
    cell: str,
    *,
    runs: int = 2,
    seed: int | None = None,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    keep: bool = False,
) -> VerifyReport:
    """Run ``cell`` ``runs`` times from the same start in ``shell``; leave it as after one run.

    The extra runs go first, each in a scratch namespace: a shallow copy of the
    user namespace in which every value the cell reads (found in its AST) is a
    deep copy, under ``repro.scope(seed, profile)``, with their printed output
    and displays captured. The last run is the ordinary one, in the user
    namespace, with ``%%repro``'s semantics (restored afterwards, or kept with
    ``keep``); it shows its output and sets ``Out`` as usual. Compared: every
    variable the cell creates, rebinds or mutates, the displayed result and
    the printed output. A value that cannot be deep-copied makes the report
    say "cannot verify" and the cell runs once, normally.
    """
    __tracebackhide__ = True
    from repro._session import record_verdict

    overrides = overrides or {}
    try:
        runs = _check_runs(runs)
        seed = _resolve_seed(seed)
        _check_settings(profile, overrides)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(str(exc)) from None
    report = _verify_cell(shell, line, cell, runs, seed, profile, overrides, keep)
    record_verdict(report.verdict)
    return report


def _verify_cell(
    shell: Any,
    line: str,
    cell: str,
    runs: int,
    seed: int,
    profile: str | None,
    overrides: dict[str, Any],
    keep: bool,
) -> VerifyReport:
    __tracebackhide__ = True
    from IPython.utils.capture import capture_output

    import repro
    from repro._diagnostics import listing_nondeterministic_ops, nondeterministic_ops
    from repro._session import record_verdict

    compiled = _compile_cell(shell, line, cell)
    ns = shell.user_ns
    reached, functions = _reached_names(ns, compiled.loads)
    inputs = {n: ns[n] for n in reached if n in ns and _is_result(ns[n])}
    notes = []
    reference: dict[str, Any] | None = None
    differences: list[Difference] = []
    unverifiable = None
    try:
        before = {n: _named_fingerprint(n, v) for n, v in inputs.items()}
        for run in range(1, runs):
            scratch = {**ns, **_copy_all(inputs)}
            _rebind(functions, ns, scratch)
            # Warn-only ops are listed once, for the ordinary run: the extra runs' are dropped.
            with (
                capture_output(display=True) as captured,
                nondeterministic_ops(),
                repro.scope(seed, profile, **overrides),
            ):
                raised = None
                try:
                    shown = _run_once(compiled, scratch)
                except Exception as exc:
                    text = f"{type(exc).__name__}: {strip_addresses(str(exc))}"
                    shown, raised = None, _Raised(text)
            displays = [output.data for output in captured.outputs]
            outputs = _cell_outputs(compiled, scratch, before, shown, captured.stdout, displays)
            if raised is not None:
                outputs[RAISED] = raised
            del scratch
            if reference is None:
                reference = outputs
            else:
                differences += _compare_runs(reference, outputs, run)
            del outputs  # only the first run's outputs are kept: one extra copy
    except (_Uncopyable, FingerprintError) as exc:
        unverifiable, reference = str(exc), None
    # The ordinary run, last: the namespace, RNG states and display are as after one run.
    if keep:
        repro.setup(seed, profile, **overrides)
        context: Any = contextlib.nullcontext()
    else:
        context = repro.scope(seed, profile, **overrides)
    with context, listing_nondeterministic_ops():
        with _tee_stdout() as tee, _recording_displays(shell, tee) as displays:
            try:
                shown = _run_once(compiled, ns)
            except Exception as exc:
                if reference is not None and RAISED not in reference:
                    # The verdict cannot be returned past the error: say it above the traceback.
                    line = (
                        f"NOT reproducible: run {runs} raised {type(exc).__name__}, run 1 did not"
                    )
                    record_verdict(line)
                    print(line, file=sys.stderr)
                _render_from_user_frame(shell, exc)
                raise
        if shown is not None:
            sys.displayhook(shown)
    if reference is None:
        return VerifyReport(runs, seed, (), unverifiable=unverifiable or "no run to compare")
    try:
        outputs = _cell_outputs(compiled, ns, before, shown, "".join(tee.parts), displays)
        differences += _compare_runs(reference, outputs, runs)
    except FingerprintError as exc:
        return VerifyReport(runs, seed, (), unverifiable=str(exc))
    if functions:
        notes.append(
            f"{', '.join(functions)} ran on copies of the globals they use; their closures, "
            "and methods of your classes, are shared between the runs"
        )
    names = tuple(dict.fromkeys([*reference, *outputs]))
    return VerifyReport(runs, seed, names, tuple(differences), notes=tuple(notes))


def _render_from_user_frame(shell: Any, exc: BaseException) -> None:
    """Show the traceback from the user's line on, as ``%%repro`` does for a plain run."""
    etype, value, tb = sys.exc_info()
    if tb is None:
        return
    stb = shell.InteractiveTB.structured_traceback(etype, value, tb.tb_next or tb, tb_offset=0)
    with contextlib.suppress(AttributeError):
        exc._render_traceback_ = lambda: stb  # type: ignore[attr-defined]
