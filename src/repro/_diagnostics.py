"""Explanations for deterministic mode: under a traceback it caused, and after a warn-only cell.

torch raises (or, with ``warn_only=True``, warns) with two messages this module
recognises by their exact wording in torch 2.x: an operation that "does not have
a deterministic implementation", and cuBLAS asking for ``CUBLAS_WORKSPACE_CONFIG``.
The original traceback is always shown first and unchanged; repro adds lines under it.
"""

from __future__ import annotations

import contextlib
import linecache
import os
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


def _module(frame: Any) -> str:
    return frame.f_globals.get("__name__", "") or ""


def _is_torch(module: str) -> bool:
    return module == "torch" or module.startswith("torch.")


#: Frames between the warning and the user's code that are neither torch nor the user's.
_PLUMBING = ("warnings", "contextlib", "repro")


def _public_name(frame: Any) -> str | None:
    """The name a user knows a torch frame's function by (``torch.nn.MaxUnpool1d``,
    ``torch.nn.functional.max_unpool1d``), or ``None`` for torch's private plumbing."""
    code = frame.f_code
    if code.co_name.startswith(("_", "<")):
        return None
    module = _module(frame)
    qualname = getattr(code, "co_qualname", code.co_name)  # Python >= 3.11
    if "." not in qualname and "self" in frame.f_locals:  # a method, on Python 3.10
        qualname = f"{type(frame.f_locals['self']).__name__}.{qualname}"
    if "<locals>" in qualname:
        return None
    cls, _, method = qualname.rpartition(".")
    if module.startswith("torch.nn.modules.") and cls:
        # A layer is called, not its forward: nn.MaxUnpool1d(2)(x, i).
        return f"torch.nn.{cls}" if method == "forward" else f"torch.nn.{qualname}"
    if module == "torch._tensor":
        return f"torch.{qualname}"
    return f"{module}.{qualname}"


def _called_where(frame: Any) -> tuple[str | None, str | None]:
    """From the stack at a torch warning: the torch call the user made, and the user's line.

    Walks out from ``frame``: the outermost public torch function passed on the way is what
    the user called; the first frame that is not torch's (nor warnings' or repro's) is theirs.
    """
    public = None
    while frame is not None:
        module = _module(frame)
        if _is_torch(module):
            public = _public_name(frame) or public
        elif module.split(".")[0] not in _PLUMBING:
            return public, _place(frame)
        frame = frame.f_back
    return public, None


def _place(frame: Any) -> str:
    """``line 5: y = unpool(x, i)`` in a cell, ``train.py:12 in step: ...`` in a file."""
    filename, lineno, name = frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
    where = (
        f"{os.path.basename(filename)}:{lineno}" if os.path.isfile(filename) else f"line {lineno}"
    )
    if name != "<module>":
        where += f" in {name}"
    text = linecache.getline(filename, lineno).strip()
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{where}: {text}" if text else where


def _label(op: str, frame: Any) -> str:
    """One line of the listing: what the user called (torch's own name for the kernel
    in brackets), and where."""
    public, place = _called_where(frame)
    short = public.rsplit(".", 1)[-1] if public else None
    what = f"{public} ({op})" if public and short != op else op
    return f"{what} at {place}" if place else what


@contextlib.contextmanager
def nondeterministic_ops() -> Iterator[Counter[str]]:
    """Collect torch's warn-only "no deterministic implementation" warnings raised inside the
    block (every occurrence) instead of showing them; other warnings show as usual, at once.

    Yields the count per operation and place, each named as the user called it
    (``torch.nn.MaxUnpool1d (max_unpooling2d_forward_out) at line 5: ...``); torch's own
    kernel name alone where no torch Python function was on the way (``put_``).
    :func:`summarize_ops` turns it into the lines shown.
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
                hits[_label(op, sys._getframe(1))] += 1

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
