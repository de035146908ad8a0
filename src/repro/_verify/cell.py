"""``%%repro --verify``: a notebook cell, run several times from the same start in its kernel."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import sys
import types
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from repro._verify.advice import causes_of
from repro._verify.digest import DigestError, digest, strip_addresses
from repro._verify.outputs import normalize_bundle, normalize_text, render_stream
from repro._verify.report import (
    DISPLAYED,
    DISPLAYS,
    PRINTED,
    RAISED,
    Raised,
    Runs,
    VerifyReport,
    numeric,
)
from repro._verify.start import (
    ArgumentError,
    Uncopyable,
    check_runs,
    check_settings,
    copy_all,
    resolve_seed,
)
from repro._verify.trace import FirstOp, check_trace, tracing_if

__all__ = ["verify_cell"]

#: Values shared, not copied, between runs: they hold code, not results.
_SHARED = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)


@dataclass(frozen=True)
class _Names:
    """The names a cell may read before binding them (its inputs), and the names it binds."""

    loads: tuple[str, ...]
    stores: tuple[str, ...]


def _names(shell: Any, line: str, cell: str) -> _Names:
    """The cell's names, from its code as the magic runs it (IPython's transforms)."""
    from repro._cell import parse

    _, tree, last = parse(shell, line, cell)
    statements = [*tree.body, *([last] if last is not None else [])]
    stores: dict[str, None] = {}
    for node in (n for statement in statements for n in ast.walk(statement)):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            stores[node.id] = None
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stores[node.name] = None
    return _Names(inputs(statements), tuple(stores))


def inputs(statements: list[ast.stmt]) -> tuple[str, ...]:
    """The names the statements may read before they bind them: the cell's inputs.

    ``loss = f(x); loss.backward()`` reads ``x`` only. Statements run in order;
    a name bound at the top level, or in both branches of an ``if``, is bound for
    what follows. A loop's body is taken to run at least once (a training loop
    does); code in a function or class body reads its names when called, so
    every name it reads counts.
    """
    reads: dict[str, None] = {}
    _block(statements, set(), reads)
    return tuple(reads)


def _block(statements: list[ast.stmt], bound: set[str], reads: dict[str, None]) -> set[str]:
    for statement in statements:
        bound = _statement(statement, bound, reads)
    return bound


def _statement(node: ast.stmt, bound: set[str], reads: dict[str, None]) -> set[str]:
    """Record what ``node`` reads before ``bound`` covers it; return what is bound after it."""
    if isinstance(node, ast.If):
        _expression_reads(node.test, bound, reads)
        then = _block(node.body, set(bound), reads)
        other = _block(node.orelse, set(bound), reads)
        return bound | (then & other)
    if isinstance(node, ast.For | ast.AsyncFor):
        _expression_reads(node.iter, bound, reads)
        inside = bound | _targets(node.target)
        after = _block(node.body, inside, reads)
        _block(node.orelse, set(after), reads)
        return after
    if isinstance(node, ast.While):
        _expression_reads(node.test, bound, reads)
        after = _block(node.body, set(bound), reads)
        _block(node.orelse, set(after), reads)
        return after
    if isinstance(node, ast.With | ast.AsyncWith):
        for item in node.items:
            _expression_reads(item.context_expr, bound, reads)
            if item.optional_vars is not None:
                bound = bound | _targets(item.optional_vars)
        return _block(node.body, set(bound), reads)
    if isinstance(node, ast.Try):
        after = _block(node.body, set(bound), reads)
        for handler in node.handlers:
            _block(handler.body, set(bound) | ({handler.name} if handler.name else set()), reads)
        _block(node.orelse, set(after), reads)
        _block(node.finalbody, set(bound), reads)
        return after
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        _expression_reads(node, bound, reads)  # decorators, defaults, and the body when called
        return bound | {node.name}
    if (
        isinstance(node, ast.AugAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id not in bound
    ):
        reads[node.target.id] = None  # ``x += 1`` reads x, and may change it in place
    _expression_reads(node, bound, reads)
    return (
        bound
        | {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        | {
            (alias.asname or alias.name).partition(".")[0]
            for n in ast.walk(node)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for alias in n.names
        }
    )


def _expression_reads(node: ast.AST, bound: set[str], reads: dict[str, None]) -> None:
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in bound:
            reads[n.id] = None


def _targets(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


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
def _figures(close: bool) -> Iterator[dict[str, Any]]:
    """The pyplot figures the block opens, by their pixels (``figure 1``, ``figure 2``...),
    filled when it ends. With ``close`` they are closed then: an extra run's figures are not
    shown, and the next run draws on a figure of its own, as it would in a cell of its own
    (the inline backend closes a cell's figures once shown)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    before = set(pyplot.get_fignums()) if pyplot is not None else set()
    found: dict[str, Any] = {}
    try:
        yield found
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")  # the cell may have imported it
        if pyplot is not None:
            from matplotlib._pylab_helpers import Gcf

            new = [m for m in Gcf.get_all_fig_managers() if m.num not in before]
            for i, manager in enumerate(sorted(new, key=lambda m: m.num), 1):
                found[f"figure {i}"] = _pixels(manager.canvas.figure)
                if close:
                    pyplot.close(manager.canvas.figure)


def _pixels(figure: Any) -> Any:
    """A figure drawn as Agg draws it: an array of RGBA pixels (height, width, 4)."""
    import numpy as np

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="rgba", dpi=figure.dpi)
    except Exception as exc:  # a figure that cannot be drawn: compared by what it raised
        return Raised(f"{type(exc).__name__}: {strip_addresses(str(exc))}")
    pixels = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    try:
        width, height = figure.canvas.get_width_height(physical=True)
    except TypeError:  # matplotlib before 3.5: no physical=, and no HiDPI scaling either
        width, height = figure.canvas.get_width_height()
    return pixels.reshape(height, width, 4) if pixels.size == width * height * 4 else pixels


@contextlib.contextmanager
def _tee_stdout() -> Iterator[_Tee]:
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield tee
    finally:
        sys.stdout = tee.stream


def _named_digest(name: str, value: Any) -> str:
    try:
        return digest(value)
    except DigestError as exc:
        raise DigestError(f"{name}: {exc}") from None


def _cell_outputs(
    compiled: _Names,
    ns: dict[str, Any],
    before: dict[str, str],
    shown: Any,
    printed: str,
    displays: list[dict[str, Any]],
) -> dict[str, Any]:
    outputs = {n: ns[n] for n in compiled.stores if n in ns and _is_result(ns[n])}
    outputs.update({n: ns[n] for n in before if n in ns and _named_digest(n, ns[n]) != before[n]})
    for name, value in outputs.items():
        _named_digest(name, value)  # readable, or the cell cannot be verified
    if shown is not None:
        outputs[DISPLAYED] = shown
    ignored: Counter[str] = Counter()  # said by the notebook scale; here, the same rules
    if printed:
        outputs[PRINTED] = normalize_text(render_stream(printed), ignored)
    if displays:
        outputs[DISPLAYS] = [normalize_bundle(data, ignored) for data in displays]
    return outputs


@contextlib.contextmanager
def _recording_displays(shell: Any, tee: _Tee) -> Iterator[list[dict[str, Any]]]:
    """Record what ``display()`` publishes while still showing it (the ordinary run); a
    terminal's publisher and displayhook print it, which ``tee`` must not count as printed
    output."""
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

    hook = sys.displayhook

    def displayhook(value: Any) -> Any:
        tee.paused = True
        try:
            return hook(value)
        finally:
            tee.paused = False

    publisher.publish = publish
    sys.displayhook = displayhook
    try:
        yield shown
    finally:
        sys.displayhook = hook
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
    trace: bool = False,
) -> VerifyReport:
    """Run ``cell`` ``runs`` times from the same start in ``shell``; leave it as after one run.

    The extra runs go first, each in a scratch namespace: a shallow copy of the
    user namespace in which every value the cell reads (found in its AST) is a
    deep copy, under ``scope(seed, profile)``, with their printed output
    and displays captured. The last run is the ordinary one, in the user
    namespace, with ``%%repro``'s semantics (restored afterwards, or kept with
    ``keep``); it shows its output and sets ``Out`` as usual. Compared: every
    variable the cell creates, rebinds or mutates, the displayed result, the
    printed output and each pyplot figure it opens, by its pixels (an extra run's
    figures are closed, so that each run draws on its own). A value that cannot be
    deep-copied makes the report say "cannot verify" and the cell runs once, normally.
    With ``trace``, every run's torch ops are recorded and ``report.first_op`` names
    the first that differed.
    """
    __tracebackhide__ = True
    from repro._session import record_verdict

    overrides = overrides or {}
    try:
        check_trace(trace)
        runs = check_runs(runs)
        seed = resolve_seed(seed)
        check_settings(profile, overrides)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(str(exc)) from None
    report = _verify_cell(shell, line, cell, runs, seed, profile, overrides, keep, trace)
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
    trace: bool,
) -> VerifyReport:
    __tracebackhide__ = True
    from IPython.utils.capture import capture_output

    from repro._cell import run as run_cell
    from repro._diagnostics import listing_nondeterministic_ops, nondeterministic_ops
    from repro._session import record_verdict, scope, setup

    compiled = _names(shell, line, cell)
    ns = shell.user_ns
    reached, functions = _reached_names(ns, compiled.loads)
    inputs = {n: ns[n] for n in reached if n in ns and _is_result(ns[n])}
    notes = []
    compared = Runs()
    unverifiable = None
    try:
        before = {n: _named_digest(n, v) for n, v in inputs.items()}
        for run in range(1, runs):
            scratch = {**ns, **copy_all(inputs)}
            _rebind(functions, ns, scratch)
            # Warn-only ops are listed once, for the ordinary run: the extra runs' are dropped.
            with (
                capture_output(display=True) as captured,
                nondeterministic_ops(),
                scope(seed, profile, **overrides),
                tracing_if(trace) as recorded,
                _figures(close=True) as figures,
            ):
                raised = None
                try:
                    shown = run_cell(shell, line, cell, scratch)
                except Exception as exc:
                    text = f"{type(exc).__name__}: {strip_addresses(str(exc))}"
                    shown, raised = None, Raised(text)
            displays = [output.data for output in captured.outputs]
            outputs = _cell_outputs(compiled, scratch, before, shown, captured.stdout, displays)
            outputs.update(figures)
            if raised is not None:
                outputs[RAISED] = raised
            del scratch
            compared.add(outputs, recorded, run)
            del outputs, recorded  # only the first run's outputs are kept: one extra copy
    except (Uncopyable, DigestError) as exc:
        unverifiable, compared.reference = str(exc), None
    reference = compared.reference
    # The ordinary run, last: the namespace, RNG states and display are as after one run.
    if keep:
        setup(seed, profile, **overrides)
        context: Any = contextlib.nullcontext()
    else:
        context = scope(seed, profile, **overrides)
    with (
        context,
        listing_nondeterministic_ops(),
        _tee_stdout() as tee,
        _recording_displays(shell, tee) as displays,
        tracing_if(trace and reference is not None) as recorded,
        _figures(close=False) as figures,
    ):
        try:
            shown = run_cell(shell, line, cell)
        except Exception as exc:
            if reference is not None and RAISED not in reference:
                # The verdict cannot be returned past the error: say it above the traceback.
                said = f"NOT reproducible: run {runs} raised {type(exc).__name__}, run 1 did not"
                record_verdict(said)
                print(said, file=sys.stderr)
            raise
    if reference is None:
        return VerifyReport(runs, seed, (), unverifiable=unverifiable or "no run to compare")
    try:
        outputs = _cell_outputs(compiled, ns, before, shown, "".join(tee.parts), displays)
        outputs.update(figures)
        compared.add(outputs, recorded, runs)
    except DigestError as exc:
        return VerifyReport(runs, seed, (), unverifiable=str(exc))
    if functions:
        notes.append(
            f"{', '.join(functions)} ran on copies of the globals they use; their closures, "
            "and methods of your classes, are shared between the runs"
        )
    names = tuple(dict.fromkeys([*reference, *outputs]))
    differences = compared.differences
    causes = causes_of(cell, numeric(differences)) if differences else []
    return VerifyReport(
        runs,
        seed,
        names,
        tuple(differences),
        notes=tuple(notes),
        advice=tuple(str(cause) for cause in causes),
        first_op=_cell_lines(shell, compared.first_op),
        trace_note=compared.trace_note,
    )


def _cell_lines(shell: Any, op: FirstOp | None) -> FirstOp | None:
    """``op`` with a cell's file named as IPython's tracebacks name it: ``Cell In[5], line 4``."""
    name = getattr(shell.compile, "format_code_name", None)  # IPython >= 8
    if op is None or name is None:
        return op

    def shown(line: str | None) -> str | None:
        if line is None:
            return None
        filename, _, lineno = line.rpartition(":")
        label = name(filename)
        return f"{label[0]} {label[1]}, line {lineno}" if label is not None else line

    return dataclasses.replace(op, line=shown(op.line), called_from=shown(op.called_from))
