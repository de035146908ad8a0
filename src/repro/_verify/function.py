"""``repro.verify(fn, *args, runs=2, seed=None, **kwargs)``: a function, called several times from
the same start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from repro._verify.advice import causes_of
from repro._verify.digest import digest, strip_addresses
from repro._verify.report import Raised, Runs, VerifyReport, numeric
from repro._verify.start import Uncopyable, check_runs, copy_all, resolve_seed
from repro._verify.trace import check_trace, tracing_if

__all__ = ["verify"]


def verify(
    fn: Callable[..., Any],
    *args: Any,
    runs: int = 2,
    seed: int | None = None,
    trace: bool = False,
    **kwargs: Any,
) -> VerifyReport:
    """Call ``fn(*args, **kwargs)`` ``runs`` times from the same start and compare the results.

    Each call runs inside ``repro.scope(seed)`` (the session's seed if ``None``,
    else a fresh one, the same for every run) on a fresh deep copy of the
    arguments, so your arguments are never changed and a function that trains
    a model it is given starts each run from the same weights. Compared: the
    return value, and every argument the function mutated. If every run raises,
    the first run's exception propagates.

    With ``trace=True`` every run's torch ops are recorded, and when the runs
    differ ``report.first_op`` names the first op whose output differed, its
    line and its cause (or ``report.trace_note`` says why none can be named).
    """
    from repro._session import record_verdict, scope

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    runs = check_runs(runs)
    check_trace(trace)
    value = resolve_seed(seed)
    named = {f"args[{i}]": a for i, a in enumerate(args)}
    named.update({f"kwargs[{k!r}]": v for k, v in kwargs.items()})
    before = {name: digest(v) for name, v in named.items()}
    compared = Runs()
    errors: list[BaseException] = []
    names: dict[str, None] = {}
    for run in range(1, runs + 1):
        try:
            copies = copy_all(named)
        except Uncopyable as exc:
            report = VerifyReport(runs, value, (), unverifiable=str(exc))
            record_verdict(report.verdict)
            return report
        call_args = [copies[f"args[{i}]"] for i in range(len(args))]
        call_kwargs = {k: copies[f"kwargs[{k!r}]"] for k in kwargs}
        with scope(value), tracing_if(trace) as recorded:
            try:
                result: Any = fn(*call_args, **call_kwargs)
            except Exception as exc:
                errors.append(exc)
                result = Raised(f"{type(exc).__name__}: {strip_addresses(str(exc))}")
        outputs = {"result": result}
        outputs.update(
            {name: copies[name] for name in copies if digest(copies[name]) != before[name]}
        )
        names.update(dict.fromkeys(outputs))
        compared.add(outputs, recorded, run)
        del recorded  # only run 1's trace is kept, to compare each run with
    if len(errors) == runs:
        raise errors[0]
    differences = compared.differences
    causes = causes_of(_source(fn), numeric(differences)) if differences else []
    report = VerifyReport(
        runs,
        value,
        tuple(names),
        tuple(differences),
        advice=tuple(str(cause) for cause in causes),
        first_op=compared.first_op,
        trace_note=compared.trace_note,
    )
    record_verdict(report.verdict)
    return report


def _source(fn: Callable[..., Any]) -> str:
    """The function's code where Python can find it (a lambda typed at a prompt: none)."""
    import inspect

    try:
        return inspect.getsource(fn)
    except Exception:
        # (code exec'd under a file's name makes inspect tokenize that file: TokenError)
        return ""
