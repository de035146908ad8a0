"""verify's recorder: what runs inside a notebook's kernel, after each code cell.

The host (:mod:`repro._verify.notebook`) evaluates :data:`KERNEL_EXPRESSION` as a
silent user expression; it binds no name in the user's namespace.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from repro._shown import redact
from repro._verify.digest import describe, digest, leaves, strip_addresses

__all__ = [
    "ENVIRONMENT_EXPRESSION",
    "KERNEL_EXPRESSION",
    "SMALL",
    "TRACE_EXPRESSION",
    "kernel_record",
    "record_expression",
    "trace_next_cell",
    "trace_next_expression",
    "traced_cell",
]

#: Evaluated in the kernel after each code cell (binds no name in the user's namespace).
KERNEL_EXPRESSION = "__import__('repro._verify.recorder', fromlist=['_']).kernel_record()"
ENVIRONMENT_EXPRESSION = (
    "__import__('json').dumps(__import__('repro._capture', fromlist=['_']).environment(), "
    "default=str)"
)

#: Arrays up to this many elements travel with their values, so a difference can be
#: described element by element; larger ones only by digest and kind.
SMALL = 1000


#: A changed value's first leaves (a model's parameters and buffers, a dict of arrays, a
#: DataFrame's columns) travel one by one, at most this many, so that a difference names the
#: parameter or column; one past them is told as the whole value's.
LEAVES = 200

#: Containers whose text is at most this long travel as text, to be shown by value.
SHORT_TEXT = 200


def _details(value: Any) -> dict[str, Any]:
    """What describes a changed value beyond its digest: its values if small, else a summary;
    leaf by leaf for a model or a container of arrays."""
    found = _small_values(value)
    if found:
        return found
    if isinstance(value, list | tuple | dict | set | frozenset):
        text = strip_addresses(repr(value)) if _only_scalars(value) else ""
        if text and len(text) <= SHORT_TEXT:
            return {"repr": redact(text)}
    parts = []
    for count, leaf in enumerate(leaves(value)):
        if count >= LEAVES:  # the first ones: a difference past them is told as the whole's
            break
        if leaf.path.endswith(("#len", "#type")):
            continue
        entry = {"path": leaf.path, "digest": digest(leaf.value), "kind": describe(leaf.value)}
        entry.update(_small_values(leaf.value))
        parts.append(entry)
    return {"leaves": parts} if len(parts) > 1 else {}


def _only_scalars(value: Any) -> bool:
    return all(isinstance(leaf.value, bool | int | float | str | None) for leaf in leaves(value))


def _small_values(value: Any) -> dict[str, Any]:
    np = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    if isinstance(value, bool | int | float | str) and len(repr(value)) <= SHORT_TEXT:
        return {"value": redact(value) if isinstance(value, str) else value}
    if isinstance(value, str):  # a long text: compared as text, line by line
        return {"value": redact(value)}
    if torch is not None and isinstance(value, torch.Tensor) and value.numel() <= SMALL:
        t = value.detach().cpu()
        if t.is_floating_point() and t.dtype != torch.float64:
            t = t.double()
        return {
            "values": t.tolist(),
            "dtype": str(value.dtype).removeprefix("torch."),
            "shape": list(value.shape),
        }
    if (
        np is not None
        and isinstance(value, np.ndarray)
        and value.size <= SMALL
        and value.dtype.kind in "biuf"
    ):
        return {"values": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    return _summary(value, np, torch)


def _summary(value: Any, np: Any, torch: Any) -> dict[str, Any]:
    """Mean, min and max of a large real array: what a difference is described by."""
    if torch is not None and isinstance(value, torch.Tensor) and value.numel():
        t = value.detach()
        if t.is_complex() or t.dtype == torch.bool:
            return {}
        t = t.float() if not t.is_floating_point() else t
        return {"summary": [float(t.mean()), float(t.min()), float(t.max())]}
    if (
        np is not None
        and isinstance(value, np.ndarray)
        and value.size
        and value.dtype.kind in "iuf"
    ):
        return {"summary": [float(value.mean()), float(value.min()), float(value.max())]}
    return {}


#: In the kernel: each variable's digest after the previous cell, so that values and
#: summaries are computed only for the variables a cell changed.
_previous: dict[str, str] = {}


def record_expression(ignore: tuple[str, ...] = ()) -> str:
    """The expression the host evaluates after each code cell; ``ignore``: names never read."""
    return KERNEL_EXPRESSION.replace("()", f"(ignore={tuple(ignore)!r})")


def kernel_record(ignore: tuple[str, ...] = ()) -> str:
    """In a kernel: JSON of each user variable's digest and kind, and each RNG stream's
    fingerprint (what the host evaluates after every code cell); ``ignore``d names are not read."""
    import types

    from IPython import get_ipython

    from repro.frameworks import loaded

    shell = get_ipython()
    hidden = shell.user_ns_hidden
    variables = {}
    for name, value in list(shell.user_ns.items()):
        if name.startswith("_") or name in ignore or (name in hidden and hidden[name] is value):
            continue
        if isinstance(value, types.ModuleType | types.FunctionType | type):
            continue
        try:
            entry = {"digest": digest(value), "kind": describe(value)}
            if _previous.get(name) != entry["digest"]:
                entry.update(_details(value))
        except Exception as exc:  # an object the digest cannot read: said, not hidden
            entry = {"unreadable": f"{type(exc).__name__}: {exc}", "kind": describe(value)}
            entry["digest"] = ""
        variables[name] = entry
    _previous.clear()
    _previous.update({name: entry["digest"] for name, entry in variables.items()})
    streams = {}
    for fw in loaded():
        streams.update(fw.fingerprints())
    return json.dumps({"variables": variables, "rng": streams}, default=str)


# --- tracing one cell (repro verify NOTEBOOK --trace) -----------------------------------

#: Evaluated after a traced cell: the cell's trace as data (see :func:`traced_cell`).
TRACE_EXPRESSION = "__import__('repro._verify.recorder', fromlist=['_']).traced_cell()"

#: The trace armed by :func:`trace_next_cell`: its context, the trace, its op limit, In [N].
_tracing: dict[str, Any] = {}


def trace_next_expression(limit: int) -> str:
    """The expression that arms the tracer for the next cell, keeping at most ``limit`` ops."""
    return f"__import__('repro._verify.recorder', fromlist=['_']).trace_next_cell({int(limit)})"


def trace_next_cell(limit: int) -> str:
    """In a kernel: trace the torch ops of the next cell that runs, from its ``pre_run_cell``
    to its ``post_run_cell`` (the cell's own thread, nothing of the recorder's requests)."""
    from IPython import get_ipython

    from repro._verify.trace import tracing

    shell = get_ipython()
    _tracing.clear()
    _tracing["limit"] = limit

    def start(*_: Any) -> None:
        shell.events.unregister("pre_run_cell", start)
        context = tracing()
        _tracing["trace"] = context.__enter__()
        _tracing["context"] = context

    def stop(result: Any) -> None:
        shell.events.unregister("post_run_cell", stop)
        context = _tracing.pop("context", None)
        if context is not None:
            context.__exit__(None, None, None)
        _tracing["count"] = getattr(result, "execution_count", None)

    shell.events.register("pre_run_cell", start)
    shell.events.register("post_run_cell", stop)
    return json.dumps(True)


def traced_cell() -> str:
    """In a kernel: JSON of the trace of the cell :func:`trace_next_cell` armed (null if none),
    with the files IPython compiled that cell to, so the host can say ``cell 5, line 3``."""
    from IPython import get_ipython

    from repro._verify.trace import to_data

    trace = _tracing.pop("trace", None)
    if trace is None:
        return json.dumps(None)
    data = to_data(trace, _tracing.get("limit", 0))
    count = _tracing.get("count")
    compiled = getattr(get_ipython().compile, "_filename_map", {})  # IPython >= 8: file -> In [N]
    data["cell_files"] = [name for name, number in compiled.items() if number == count]
    _tracing.clear()
    return json.dumps(data)
