"""Explanations for deterministic mode: under a traceback it caused, and after a warn-only cell.

torch raises (or, with ``warn_only=True``, warns) with two messages this module
recognises by their exact wording in torch 2.x: an operation that "does not have
a deterministic implementation", and cuBLAS asking for ``CUBLAS_WORKSPACE_CONFIG``.
The original traceback is always shown first and unchanged; repro adds lines under it.
"""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

__all__ = [
    "after_cell",
    "explain",
    "listing_nondeterministic_ops",
    "nondeterministic_ops",
    "summarize_ops",
]

#: torch's words (torch/_prims_common alert_not_deterministic and ATen's Context.cpp).
NO_DETERMINISTIC = "does not have a deterministic implementation"
CUBLAS = "because it uses CuBLAS"
_OPERATION = re.compile(r"(\S+) does not have a deterministic implementation")

_WAYS_OUT_OP = (
    "  Ways out: %repro -p final (or --warn-only) makes such ops warn instead of raising, and\n"
    "  lists them after each %%repro cell; or wrap just this op in\n"
    "  torch.use_deterministic_algorithms(False) ... True again, accepting that it may vary."
)
_WAYS_OUT_CUBLAS = (
    "  cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when CUDA starts: restart the kernel with\n"
    "  CUBLAS_WORKSPACE_CONFIG=:4096:8 (or :16:8) set before CUDA starts (`repro kernel install`\n"
    "  makes a kernel that sets it; %repro -d sets it if CUDA has not started), or warn instead\n"
    "  of raising with %repro -p final (or --warn-only)."
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain(exc: BaseException | None) -> str | None:
    """A short explanation if ``exc`` (or an exception it wraps) is deterministic mode refusing
    an operation; ``None`` for any other error."""
    if exc is None:
        return None
    for error in _chain(exc):
        text = str(error)
        if NO_DETERMINISTIC in text:
            found = _OPERATION.search(text)
            op = found.group(1) if found else "this operation"
            return (
                f"repro: {op} has no deterministic implementation, and deterministic algorithms\n"
                "  are on (torch.use_deterministic_algorithms(True): the debug profile, or\n"
                f"  --algorithms raise), so torch refused to run it.\n{_WAYS_OUT_OP}"
            )
        if CUBLAS in text and "CUBLAS_WORKSPACE_CONFIG" in text:
            return (
                "repro: deterministic algorithms are on, and this matrix product runs on cuBLAS,\n"
                "  which repeats only with CUBLAS_WORKSPACE_CONFIG set; it was not set when CUDA\n"
                f"  started in this process.\n{_WAYS_OUT_CUBLAS}"
            )
    return None


def after_cell(result: Any) -> None:
    """After a cell (IPython's ``ExecutionResult``): print :func:`explain`'s lines under its
    traceback, on stderr; the extension calls it for every cell."""
    hint = explain(getattr(result, "error_in_exec", None))
    if hint:
        print(hint, file=sys.stderr)


def _operation(message: str) -> str | None:
    if NO_DETERMINISTIC in message:
        found = _OPERATION.search(message)
        return found.group(1) if found else "an operation"
    if CUBLAS in message:
        return "cuBLAS matmul (CUBLAS_WORKSPACE_CONFIG unset when CUDA started)"
    return None


@contextlib.contextmanager
def nondeterministic_ops() -> Iterator[Counter[str]]:
    """Collect torch's warn-only "no deterministic implementation" warnings raised inside the
    block (every occurrence) instead of showing them; other warnings show as usual, at once.

    Yields the count per operation; :func:`summarize_ops` turns it into the lines shown.
    """
    hits: Counter[str] = Counter()
    with warnings.catch_warnings():
        shown = warnings.showwarning
        # "always": count each occurrence, not only the first per line of code.
        warnings.filterwarnings("always", message=f".*{NO_DETERMINISTIC}")
        warnings.filterwarnings("always", message=f".*{CUBLAS}")

        def collect(message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
            op = _operation(str(message))
            if op is None:
                shown(message, category, filename, lineno, *rest)
            else:
                hits[op] += 1

        warnings.showwarning = collect
        yield hits


def summarize_ops(hits: Counter[str]) -> str | None:
    """The lines listing the nondeterministic operations a cell ran, or None if it ran none."""
    if not hits:
        return None
    n = len(hits)
    lines = [
        f"repro: {n} nondeterministic operation{'s' if n != 1 else ''} ran in this cell "
        "(deterministic algorithms warn only):"
    ]
    lines += [f"  {op}" + (f" ({count} times)" if count > 1 else "") for op, count in hits.items()]
    lines.append("  Their results may differ between runs: %%repro --verify checks this cell.")
    return "\n".join(lines)


@contextlib.contextmanager
def listing_nondeterministic_ops() -> Iterator[None]:
    """Run a ``%%repro`` cell: collect the warn-only ops, then print them once (also on error)."""
    with nondeterministic_ops() as hits:
        try:
            yield
        finally:
            summary = summarize_ops(hits)
            if summary:
                print(summary)
