"""``repro.verify(fn, *args, runs=2, seed=None, **kwargs)``: a function, called several times from
the same start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from repro._verify.digest import digest, strip_addresses
from repro._verify.report import Difference, Raised, VerifyReport, compare_outputs
from repro._verify.start import Uncopyable, check_runs, copy_all, resolve_seed

__all__ = ["verify"]


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
    from repro._session import record_verdict, scope

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    runs = check_runs(runs)
    value = resolve_seed(seed)
    named = {f"args[{i}]": a for i, a in enumerate(args)}
    named.update({f"kwargs[{k!r}]": v for k, v in kwargs.items()})
    before = {name: digest(v) for name, v in named.items()}
    reference: dict[str, Any] | None = None
    differences: list[Difference] = []
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
        with scope(value):
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
        if reference is None:
            reference = outputs
        else:
            differences += compare_outputs(reference, outputs, run)
    if len(errors) == runs:
        raise errors[0]
    report = VerifyReport(runs, value, tuple(names), tuple(differences))
    record_verdict(report.verdict)
    return report
