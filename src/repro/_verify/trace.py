"""Why it diverged: record every torch op of a run, then name the first one that differs.

:func:`tracing` records, in dispatch order (backward passes included), one small
record per torch op: its name, the user's line that called it, a 64-bit XXH3 hash
of each tensor it produced (computed once, when produced; a tensor the trace did
not see produced is a *leaf*, hashed at first sight), its non-tensor arguments,
and for a random draw the state of the generator it drew from. For an op run by a
backward pass it also keeps the autograd node, whose forward line is found from
torch's sequence numbers (each node is numbered when the forward creates it).

:func:`first_op` compares two traces of the same code and describes the first op
whose output differs, and why: equal inputs (a nondeterministic kernel), a
generator in another state (a random draw), or inputs that came from outside torch.
Later ops that differ because of it are not blamed.

torch's private APIs used here (TorchDispatchMode, the current autograd node,
the sequence-number counter) are reached through :func:`_torch_api` only.
"""

from __future__ import annotations

import bisect
import ctypes
import dataclasses
import html
import linecache
import os
import re
import struct
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import xxhash

__all__ = [
    "NONDETERMINISTIC",
    "OUTSIDE",
    "RANDOM",
    "FirstOp",
    "Trace",
    "check_trace",
    "divergence",
    "first_op",
    "from_data",
    "to_data",
    "tracing",
]

#: The three causes ``FirstOp.kind`` names.
NONDETERMINISTIC = "nondeterministic kernel"
RANDOM = "random draw"
OUTSIDE = "inputs from outside torch"

#: A run records at most this many ops (about 150 bytes each); later ops still run, untraced.
MAX_OPS = 500_000
#: ``repro verify NB --save FILE --trace`` keeps at most this many ops per cell (about 100
#: bytes each in the JSON, so at most about 1 MB per cell)...
MAX_SAVED_OPS = 10_000
#: ...and at most this many in the whole recording (about 10 MB); later cells keep none.
MAX_SAVED_TOTAL = 100_000

# The fields of one op's record: a plain tuple, the smallest and quickest record to build.
_OP, _WHERE, _NODE, _INPUTS, _SCALARS, _GENERATOR, _OUTPUTS, _LEAVES, _CUDA = range(9)

#: Ops whose output is memory torch has not written: hashed by dtype and shape only.
_UNINITIALIZED = frozenset(
    {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "empty_permuted"}
)


# --- what an op does to memory, decided once per op from its schema ----------------


@dataclass(frozen=True)
class _OpInfo:
    name: str  # aten.index_put_.default
    base: str  # index_put_
    view: bool  # its output aliases an input without writing (a view)
    mutates: bool  # it writes into an argument (in place, or out=)
    uninitialized: bool
    #: if it draws random numbers: the position of its Generator? argument (-1: it has none,
    #: it draws from the default generator), else None
    generator: int | None
    #: what runs it: the OpOverload's C++ op (its ``__call__`` is one Python frame around it)
    call: Any = None


def _generator_position(schema: Any) -> int | None:
    return next((i for i, a in enumerate(schema.arguments) if "Generator" in str(a.type)), None)


def _op_info(func: Any) -> _OpInfo:
    schema = getattr(func, "_schema", None)
    if schema is None:  # a higher-order operator (torch.cond...): its inner ops go untraced
        name = str(getattr(func, "_name", None) or func)
        return _OpInfo(name, name, False, False, False, None, func)
    view = bool(schema.returns) and all(
        r.alias_info is not None and not r.alias_info.is_write for r in schema.returns
    )
    generator = _generator_position(schema)
    if generator is None:
        # aten.rand.default has no Generator argument, yet draws from the default generator:
        # an op is a draw if any overload of it takes a generator (-1: this one does not).
        packet = func._overloadpacket
        for overload in packet.overloads():
            if _generator_position(getattr(packet, overload)._schema) is not None:
                generator = -1
                break
    mutates = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)
    base = schema.name.split("::")[-1]
    from torch._ops import OpOverload

    # OpOverload.__call__ is ``self._op(*args, **kwargs)``: its op is called directly, where
    # this torch's is that one (a subclass or another torch's may do more).
    call = func._op if type(func).__call__ is OpOverload.__call__ else func
    return _OpInfo(str(func), base, view, mutates, base in _UNINITIALIZED, generator, call)


# --- torch's private API, in one place --------------------------------------------


@dataclass(frozen=True)
class _TorchAPI:
    torch: Any
    mode: type  # torch.utils._python_dispatch.TorchDispatchMode
    current_node: Any  # () -> the autograd Node running now, or None (forward)
    sequence_nr: Any  # () -> the number the next autograd node will get, or None
    internal: tuple[str, ...]  # directories whose frames are not the user's
    function_py: str  # torch/autograd/function.py, which runs an autograd.Function's forward
    custom_backward: type  # the type of an autograd.Function's node (BackwardCFunction)


def _torch_api() -> _TorchAPI | str:
    """torch's dispatch hooks, or a sentence saying why there are none."""
    try:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:
        return "torch is not installed, so no op could be traced"
    autograd = getattr(torch._C, "_autograd", None)
    here = os.path.dirname(os.path.abspath(__file__))
    return _TorchAPI(
        torch,
        TorchDispatchMode,
        getattr(torch._C, "_current_autograd_node", lambda: None),
        getattr(autograd, "_get_sequence_nr", None),
        (os.path.dirname(os.path.abspath(torch.__file__)) + os.sep, here + os.sep),
        torch.autograd.function.__file__,
        torch.autograd.function.BackwardCFunction,
    )


# --- one run's trace --------------------------------------------------------------


@dataclass
class Trace:
    """The ops of one run, in dispatch order, and what is needed to name their lines."""

    ops: list[tuple[Any, ...]] = field(default_factory=list)
    #: how many ops ran untraced once :data:`MAX_OPS` were recorded
    untraced: int = 0
    #: why nothing was traced (no torch), or None
    unavailable: str | None = None
    #: forward ops' sequence numbers and lines: node n was created before ``peeks[i] > n``
    peeks: list[int] = field(default_factory=list)
    lines: list[tuple[str, int] | None] = field(default_factory=list)
    #: torch's deterministic-algorithms setting when the run started: (on, warn_only)
    deterministic: tuple[bool, bool] = (False, False)
    #: the text of lines, for a trace read back from data (its code lived in another process)
    codes: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        """True if more ops ran than were recorded."""
        return self.untraced > 0

    def forward_line(self, sequence_nr: int) -> tuple[str, int] | None:
        """The user's line of the forward op that created autograd node ``sequence_nr``."""
        i = bisect.bisect_right(self.peeks, sequence_nr)
        return self.lines[i] if i < len(self.lines) else None


def _dense(t: Any) -> bool:
    """True if ``t`` covers one block of memory without gaps or overlaps (any axis order)."""
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted(zip(t.stride(), t.shape, strict=True)):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _recorder(api: _TorchAPI, trace: Trace) -> Any:
    """The mode's ``__torch_dispatch__``: ``record(mode, func, types, args, kwargs)`` runs one
    op and appends its record to ``trace``. A closure over locals: it runs for every op (see
    figure 12 of benchmarks/run.py), so every name it reads is a local or a cell."""
    torch = api.torch
    tensor_type = torch.Tensor
    # Tuples, not ``list | tuple``: a union written in the loop is built again on every op.
    sequence, tensor_or_none, numbers = (
        (list, tuple),
        (tensor_type, type(None)),
        (int, float, complex, str),
    )
    strided = torch.strided
    current_node = api.current_node
    sequence_nr = api.sequence_nr
    internal_dirs = api.internal
    function_py = api.function_py
    custom_backward = api.custom_backward
    hash64 = xxhash.xxh3_64_intdigest
    array_of = ctypes.c_char.__mul__
    ref = weakref.ref
    ops = trace.ops
    peeks, lines = trace.peeks, trace.lines
    known: dict[int, tuple[Any, int, int]] = {}  # id(tensor) -> (weakref, version, hash)
    metas: dict[Any, int] = {}
    #: (dtype, shape, strides, device) -> (the hash's seed, the bytes to read where the
    #: tensor lies: one block on the CPU, not complex; else -1, read the slow way)
    layouts: dict[Any, tuple[int, int]] = {}
    arrays: dict[int, Any] = {}  # size in bytes -> ctypes array type
    internal: dict[str, bool] = {}
    #: the type of an autograd node -> (its name, whether it is your autograd.Function's)
    nodes: dict[type, tuple[str, bool]] = {}
    infos = _INFOS
    last_peek = -1
    sweep_at = 4096

    def meta(t: Any, extra: str = "") -> int:
        try:
            strides = t.stride()
        except RuntimeError:  # a sparse tensor has none
            strides = ()
        key = (t.dtype, t.shape, strides, extra)
        value = metas.get(key)
        if value is None:
            value = metas[key] = hash64(repr(key).encode())
        return value

    def layout_of(t: Any, key: tuple[Any, ...]) -> tuple[int, int]:
        dtype, device = key[0], key[3]
        plain = device.type == "cpu" and not dtype.is_complex and t.layout is strided
        size = t.numel() * t.element_size() if plain and _dense(t) else -1
        value = layouts[key] = (meta(t), size)
        return value

    def memory(t: Any) -> int:
        # The tensor's bytes in torch's memory order, read where they lie (no copy) when
        # they form one block; the dtype, shape and strides are the hash's seed.
        try:
            try:
                key = (t.dtype, t.shape, t.stride(), t.device)
            except RuntimeError:  # a sparse tensor has no strides
                return slow_memory(t)
            seed, size = layouts.get(key) or layout_of(t, key)
            if size > 0:
                pointer = t.data_ptr()
                if pointer:
                    array = arrays.get(size) or arrays.setdefault(size, array_of(size))
                    return hash64(array.from_address(pointer), seed)
            elif size == 0:
                return seed
            return slow_memory(t)
        except Exception:  # no storage to read (a wrapper subclass, a nested tensor...)
            return hash64(b"unreadable " + type(t).__qualname__.encode())

    def slow_memory(t: Any) -> int:
        # Conjugate and negative views resolved, sparse made dense, gaps closed, read on the
        # CPU: copies, for the tensors that :func:`memory` cannot read where they lie.
        seed = meta(t)
        n = t.numel()
        if n == 0:
            return seed
        if t.layout is not strided or t.dtype.is_complex:
            t = t.resolve_conj().resolve_neg()
            if t.layout != strided:
                t = t.to_dense()
        if not _dense(t):
            t = t.contiguous()
        if not t.is_cpu:
            if t.is_meta:
                return meta(t, "no data")
            t = t.cpu()
        pointer = t.data_ptr()
        if not pointer:
            return meta(t, "no data")
        return hash64(array_of(n * t.element_size()).from_address(pointer), seed)

    def user_frame(frame: Any) -> Any:
        """The innermost frame at or above ``frame`` outside torch and repro, or None."""
        while frame is not None:
            filename = frame.f_code.co_filename
            inside = internal.get(filename)
            if inside is None:
                inside = internal[filename] = filename.startswith(internal_dirs)
            if not inside:
                return frame
            frame = frame.f_back
        return None

    def creation_line(frame: Any) -> tuple[str, int] | None:
        """The line that created an autograd node, from the frame of the first op after it:
        for your own autograd.Function, the line that called ``.apply``, not its ``forward``."""
        back = frame.f_back
        if frame.f_code.co_name == "forward" and back and back.f_code.co_filename == function_py:
            frame = user_frame(back) or frame
        return (frame.f_code.co_filename, frame.f_lineno)

    def record(
        mode: Any, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        # The mode's __torch_dispatch__ itself (one Python call less per op).
        nonlocal last_peek
        if kwargs is None:
            kwargs = {}
        if len(ops) >= MAX_OPS:
            trace.untraced += 1
            return func(*args, **kwargs)
        info = infos.get(id(func))
        if info is None:
            info = infos[id(func)] = _op_info(func)
        inputs: list[int] = []
        scalars: list[Any] = []
        leaves = None
        for arg in (*args, *kwargs.values()) if kwargs else args:
            if isinstance(arg, tensor_type):
                items: Any = (arg,)
            elif isinstance(arg, sequence) and arg and isinstance(arg[0], tensor_or_none):
                items = arg  # a list of tensors (cat, index_put_'s indices)
            else:
                scalars.append(arg)
                continue
            for item in items:
                if not isinstance(item, tensor_type):
                    scalars.append(item)
                    continue
                entry = known.get(id(item))
                try:
                    version = item._version
                except RuntimeError:  # an inference tensor has no version counter
                    version = -1
                if entry is not None and entry[1] == version and entry[0]() is item:
                    inputs.append(entry[2])
                else:
                    if entry is None or entry[0]() is not item:  # first sight: a leaf
                        leaves = (*(leaves or ()), len(inputs))
                    inputs.append(hash_leaf(item))
        generator = (
            None if info.generator is None else _generator_state(torch, func, info, args, kwargs)
        )
        node = current_node()
        if node is None:
            frame = user_frame(sys._getframe(1))
            line = None if frame is None else (frame.f_code.co_filename, frame.f_lineno)
            backward = None
            if sequence_nr is not None:
                peek = sequence_nr()
                if peek != last_peek:
                    last_peek = peek
                    peeks.append(peek)
                    lines.append(None if frame is None else creation_line(frame))
        else:
            # Only a backward of your own (an autograd.Function's, called by torch's
            # autograd/function.py) has a line of its own; torch's lead to .backward().
            kind = nodes.get(type(node))
            if kind is None:
                kind = nodes[type(node)] = (node.name(), isinstance(node, custom_backward))
            line = None
            if kind[1]:
                frame = user_frame(sys._getframe(1))
                caller = None if frame is None else frame.f_back
                if caller is not None and caller.f_code.co_filename == function_py:
                    line = (frame.f_code.co_filename, frame.f_lineno)
            backward = (node._sequence_nr(), kind[0])
        result = info.call(*args, **kwargs)
        if isinstance(result, tensor_type):
            outputs: tuple[int, ...] = (output_hash(result, info, inputs),)
            cuda = result.is_cuda
        elif isinstance(result, sequence):
            outputs = tuple(
                output_hash(out, info, inputs) if isinstance(out, tensor_type) else value_hash(out)
                for out in result
            )
            cuda = bool(result) and isinstance(result[0], tensor_type) and result[0].is_cuda
        else:  # a Python number (.item()), or None
            outputs = () if result is None else (value_hash(result),)
            cuda = False
        ops.append(
            (info, line, backward, tuple(inputs), tuple(scalars), generator, outputs, leaves, cuda)
        )
        return result

    def output_hash(out: Any, info: _OpInfo, inputs: list[int]) -> int:
        try:
            version = out._version
        except RuntimeError:  # an inference tensor has no version counter
            version = -1
        if info.mutates:
            # torch bumps the version of a tensor written in place above this mode (in its
            # ADInplaceOrView kernel), after the op returns: remember the version it will have.
            value = memory(out)
            version += version >= 0
        else:
            entry = known.get(id(out))
            if entry is not None and entry[1] == version and entry[0]() is out:
                return entry[2]  # an input returned untouched (lift_fresh, alias)
            if info.uninitialized:
                value = meta(out, "uninitialized")
            elif info.view and inputs:
                # A view holds its base's values: hashed from the base's hash, not read again.
                value = hash64(b"%d" % out.storage_offset(), meta(out) ^ inputs[0])
            else:
                value = memory(out)
        nonlocal sweep_at
        if len(known) > sweep_at:  # forget the tensors that died, now and then
            for key in [k for k, e in list(known.items()) if e[0]() is None]:
                del known[key]
            sweep_at = max(4096, 2 * len(known))
        known[id(out)] = (ref(out), version, value)
        return value

    def value_hash(value: Any) -> int:
        """A Python result (``.item()``'s number) by value; any other object by its type (a
        profiler handle's repr holds an address)."""
        if isinstance(value, numbers):
            return hash64(repr(value).encode())
        return hash64(type(value).__qualname__.encode())

    def hash_leaf(t: Any) -> int:
        """A tensor no traced op produced (or changed since): hashed at first sight."""
        value = memory(t)
        try:
            version = t._version
        except RuntimeError:
            version = -1
        known[id(t)] = (ref(t), version, value)
        return value

    return record


#: What each op does to memory, decided once per op (OpOverloads live as long as torch).
_INFOS: dict[Any, _OpInfo] = {}


def _generator_state(
    torch: Any, func: Any, info: _OpInfo, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[int, str]:
    """The hash of the state of the generator a random op draws from, and which one it is."""
    assert info.generator is not None
    gen = None
    if info.generator >= 0:
        gen = kwargs.get(func._schema.arguments[info.generator].name)
        if gen is None and info.generator < len(args):
            gen = args[info.generator]
    if gen is None:
        device = _device_of(args, kwargs, torch)
        if device.type == "cuda":
            gen = torch.cuda.default_generators[device.index or 0]
            label = f"torch's default generator of {device}"
        else:
            gen = torch.default_generator
            label = "torch's default CPU generator"
    else:
        label = f"a torch.Generator of your own (device {gen.device})"
    state = gen.get_state()
    return xxhash.xxh3_64_intdigest(state.numpy().tobytes()), label


def _device_of(args: tuple[Any, ...], kwargs: dict[str, Any], torch: Any) -> Any:
    device = kwargs.get("device")
    if device is not None:
        return torch.device(device)
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return arg.device
    return torch.device("cpu")


@contextmanager
def tracing() -> Iterator[Trace]:
    """Record the torch ops run inside the block (this thread and autograd's) into a Trace.

    Without torch the trace is empty and says why in ``unavailable``.
    """
    api = _torch_api()
    if isinstance(api, str):
        yield Trace(unavailable=api)
        return
    torch = api.torch
    trace = Trace(
        deterministic=(
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
    )
    record = _recorder(api, trace)

    class _Mode(api.mode):  # type: ignore[misc, name-defined]
        # torch.cond and other higher-order operators run as one op (else the mode refuses them)
        supports_higher_order_operators = True

        __torch_dispatch__ = record

    with _Mode():
        yield trace


# --- comparing two traces ---------------------------------------------------------


@dataclass(frozen=True)
class FirstOp:
    """The first torch op whose output differed between two runs, and why."""

    #: torch's name of the op: ``aten.index_put_.default``
    op: str
    #: ``file:lineno`` of the user's line that called it; for an op in a backward pass, the
    #: forward line that created its autograd node (where torch recorded one)
    line: str | None
    #: the text of that line
    code: str | None
    #: True if the op ran in a backward pass
    backward: bool
    #: True if every tensor, number and generator state the op received was equal
    inputs_equal: bool
    #: :data:`NONDETERMINISTIC`, :data:`RANDOM` or :data:`OUTSIDE`
    kind: str
    #: one paragraph: what happened and the way out
    explanation: str
    #: the op's position in dispatch order (from 0)
    index: int = 0
    #: for a backward op: the autograd node (``IndexBackward0``) and the user's line that
    #: ran the backward (``loss.backward()``, or the line of your own ``backward``)
    node: str | None = None
    called_from: str | None = None
    #: how many later recorded ops also differ (not blamed: they follow from this one)
    later: int = 0
    #: at notebook scale: the cell's position (markdown cells counted)
    cell: int | None = None
    #: up to three later ops that also differed although their own inputs were equal
    #: (independent causes, each ``op at line``)
    also: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One line: the op, where, and the kind."""
        where = f" ({'backward of ' if self.backward else ''}{self.line})" if self.line else ""
        return f"first differing op: {self.op}{where}: {self.kind}"

    def __str__(self) -> str:
        lines = [self.summary]
        if self.code:
            lines.append(f"    {self.code}")
        lines.append(f"  {self.explanation}")
        if self.also:
            lines.append(f"  later, also on equal inputs: {'; '.join(self.also)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        code = f"<pre style='margin:2px 0'>{e(self.code)}</pre>" if self.code else ""
        where = (
            f" at <code>{e(self.line)}</code>{' (backward)' if self.backward else ''}"
            if self.line
            else ""
        )
        return (
            f"<div class='repro-first-op'><b>First differing op:</b> <code>{e(self.op)}</code>"
            f"{where}: <b>{e(self.kind)}</b>{code}<div>{e(self.explanation)}</div></div>"
        )

    def as_dict(self) -> dict[str, Any]:
        """The op as JSON-ready data."""
        return {
            "op": self.op,
            "line": self.line,
            "code": self.code,
            "backward": self.backward,
            "inputs_equal": self.inputs_equal,
            "kind": self.kind,
            "explanation": self.explanation,
            "index": self.index,
            "node": self.node,
            "called_from": self.called_from,
            "later": self.later,
            "cell": self.cell,
            "also": list(self.also),
        }


def _line_text(
    where: tuple[str, int] | None, trace: Trace | None = None
) -> tuple[str | None, str | None]:
    if where is None:
        return None, None
    filename, lineno = where
    code = trace.codes.get(where) if trace is not None else None
    if code is None:
        code = linecache.getline(filename, lineno).strip() or None
    return f"{filename}:{lineno}", code


def _scalars_equal(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a == b or repr(a) == repr(b)  # NaN != NaN, yet the runs agree


def first_op(first: Trace, second: Trace) -> FirstOp | str:
    """The first op whose output differs between two traces of the same code, or a sentence
    saying why none can be named (no torch, every traced op agreed, the trace ran out)."""
    if first.unavailable or second.unavailable:
        return first.unavailable or second.unavailable or ""
    a_ops, b_ops = first.ops, second.ops
    for index, (a, b) in enumerate(zip(a_ops, b_ops, strict=False)):
        if a[_OP].name != b[_OP].name or len(a[_INPUTS]) != len(b[_INPUTS]):
            return _different_path(index, a, b, first, second)
        if a[_OUTPUTS] == b[_OUTPUTS]:
            continue
        after = zip(a_ops[index + 1 :], b_ops[index + 1 :], strict=False)
        later = [(x, y) for x, y in after if x[_OUTPUTS] != y[_OUTPUTS]]
        found = _describe(index, a, b, second, len(later))
        # Ops that differed on equal inputs of their own are causes too, not consequences.
        also = [
            f"{y[_OP].name} at {_line_text(_where(y, second), second)[0]}"
            for x, y in later
            if x[_OP].name == y[_OP].name and _equal_inputs(x, y)
        ]
        return dataclasses.replace(found, also=tuple(also[:3]))
    if len(a_ops) != len(b_ops) and not (first.truncated or second.truncated):
        index = min(len(a_ops), len(b_ops))
        a = a_ops[index] if index < len(a_ops) else None
        b = b_ops[index] if index < len(b_ops) else None
        return _different_path(index, a, b, first, second)
    if first.truncated or second.truncated:
        return (
            f"the first {min(len(a_ops), len(b_ops)):,} torch ops gave the same results in each "
            "run; the trace stops there, so the op that differs came later"
        )
    return (
        f"every torch op ({len(a_ops):,} traced) gave the same results in each run: the "
        "difference arose outside torch's ops (Python or NumPy code, or a write into a tensor's "
        "memory that bypassed torch, such as through .numpy())"
    )


def divergence(first: Trace | None, second: Trace | None) -> tuple[FirstOp | None, str | None]:
    """:func:`first_op` as a report holds it: the op, or the sentence why none is named."""
    if first is None or second is None:
        return None, None
    found = first_op(first, second)
    return (None, found) if isinstance(found, str) else (found, None)


def check_trace(trace: Any) -> bool:
    """``trace`` if it is a bool; else a one-line TypeError."""
    if not isinstance(trace, bool):
        raise TypeError(f"trace must be True or False, got {type(trace).__name__} {trace!r}")
    return trace


@contextmanager
def tracing_if(on: bool) -> Iterator[Trace | None]:
    """:func:`tracing` when ``on``, else nothing traced (None)."""
    if not on:
        yield None
        return
    with tracing() as trace:
        yield trace


def _different_path(
    index: int, a: tuple[Any, ...] | None, b: tuple[Any, ...] | None, first: Trace, second: Trace
) -> FirstOp:
    shown = b if b is not None else a
    assert shown is not None
    trace = second if b is not None else first
    line, code = _line_text(_where(shown, trace), trace)

    def name(op: tuple[Any, ...] | None) -> str:
        return "no more ops" if op is None else op[_OP].name

    explanation = (
        f"Every torch op before this one gave the same results, but here the runs called "
        f"different ops (run 1: {name(a)}, run 2: {name(b)}): Python code decided differently, "
        "on a value that did not come from torch (Python's random, an unseeded NumPy generator, "
        "the clock, a file, set or dict order). Seed it: repro.seed() seeds random and NumPy's "
        "global generator; use repro.rng() instead of np.random.default_rng()."
    )
    return FirstOp(
        op=shown[_OP].name,
        line=line,
        code=code,
        backward=shown[_NODE] is not None,
        inputs_equal=False,
        kind=OUTSIDE,
        explanation=explanation,
        index=index,
    )


def _where(op: tuple[Any, ...], trace: Trace) -> tuple[str, int] | None:
    node = op[_NODE]
    if node is not None and node[0] is not None:  # a trace read back has its lines resolved
        forward = trace.forward_line(node[0])
        if forward is not None:
            return forward
    return op[_WHERE]


def _equal_inputs(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return (
        a[_INPUTS] == b[_INPUTS]
        and _scalars_equal(a[_SCALARS], b[_SCALARS])
        and (a[_GENERATOR] or (0,))[0] == (b[_GENERATOR] or (0,))[0]
    )


def _describe(
    index: int, a: tuple[Any, ...], b: tuple[Any, ...], trace: Trace, later: int
) -> FirstOp:
    info: _OpInfo = b[_OP]
    tensors_equal = a[_INPUTS] == b[_INPUTS]
    scalars_equal = _scalars_equal(a[_SCALARS], b[_SCALARS])
    generator_equal = (a[_GENERATOR] or (0,))[0] == (b[_GENERATOR] or (0,))[0]
    inputs_equal = tensors_equal and scalars_equal and generator_equal
    node = b[_NODE]
    line, code = _line_text(_where(b, trace), trace)
    called_from = _line_text(b[_WHERE])[0] if node is not None else None
    device = "CUDA" if b[_CUDA] else "CPU"
    if not generator_equal:
        kind, explanation = RANDOM, _random_explanation(info, b[_GENERATOR][1])
    elif inputs_equal:
        kind, explanation = NONDETERMINISTIC, _kernel_explanation(info, device, trace)
    else:
        kind = OUTSIDE
        explanation = _outside_explanation(info, a, b, tensors_equal)
    if node is not None:
        where = "created by the forward line shown" if line else "torch recorded no forward line"
        inside = f"; your backward calls it at {called_from}" if called_from else ""
        explanation = (
            f"It ran in the backward pass, in autograd node {node[1]} ({where}{inside}). "
            + explanation
        )
    return FirstOp(
        op=info.name,
        line=line,
        code=code,
        backward=node is not None,
        inputs_equal=inputs_equal,
        kind=kind,
        explanation=explanation,
        index=index,
        node=None if node is None else node[1],
        called_from=called_from,
        later=later,
    )


#: torch's own list (torch.use_deterministic_algorithms' documentation, torch 2.13): ops that
#: turn deterministic under the debug and final profiles, per device...
_MADE_DETERMINISTIC = {
    "index_put_": ("cpu", "cuda"),
    "index_put": ("cpu", "cuda"),
    "_index_put_impl_": ("cpu", "cuda"),
    "put_": ("cpu",),
    "scatter_add_": ("cuda",),
    "scatter_add": ("cuda",),
    "index_add_": ("cuda",),
    "index_add": ("cuda",),
    "index_copy_": ("cpu", "cuda"),
    "index_copy": ("cpu", "cuda"),
    "scatter_": ("cuda",),
    "scatter": ("cuda",),
    "scatter_reduce_": ("cuda",),
    "scatter_reduce": ("cuda",),
    "gather_backward": ("cuda",),
    "convolution": ("cuda",),
    "convolution_backward": ("cuda",),
    "cudnn_convolution": ("cuda",),
}
#: ...and ops with no deterministic implementation: debug raises, final warns.
_NO_DETERMINISTIC = {
    "cumsum": ("cuda",),
    "histc": ("cuda",),
    "bincount": ("cuda",),
    "median": ("cuda",),
    "nll_loss2d_forward": ("cuda",),
    "nll_loss_forward": ("cuda",),
    "avg_pool3d_backward": ("cuda",),
    "adaptive_avg_pool2d_backward": ("cuda",),
    "_adaptive_avg_pool2d_backward": ("cuda",),
    "adaptive_max_pool2d_backward": ("cuda",),
    "max_unpool2d": ("cpu", "cuda"),
    "max_unpool3d": ("cpu", "cuda"),
    "grid_sampler_2d_backward": ("cuda",),
    "embedding_bag": ("cuda",),
    "_embedding_bag_backward": ("cuda",),
    "upsample_bilinear2d_backward": ("cuda",),
    "upsample_linear1d_backward": ("cuda",),
    "upsample_bicubic2d_backward": ("cuda",),
    "upsample_trilinear3d_backward": ("cuda",),
    "reflection_pad1d_backward": ("cuda",),
    "reflection_pad2d_backward": ("cuda",),
    "reflection_pad3d_backward": ("cuda",),
}


def _kernel_explanation(info: _OpInfo, device: str, trace: Trace) -> str:
    op, dev = info.base, device.lower()
    head = (
        f"{info.name} received equal inputs in both runs and returned different results: its "
        f"{device} kernel is nondeterministic (the order in which threads or atomics combine "
        "values varies)."
    )
    on, _ = trace.deterministic
    if dev in _MADE_DETERMINISTIC.get(op, ()):
        if on:
            return (
                f"{head} torch has a deterministic implementation, and deterministic "
                "algorithms were on, yet it still differed: check the thread count "
                "(torch.set_num_threads) and that nothing switched them off."
            )
        return (
            f"{head} torch has a deterministic implementation on {device}: the debug and final "
            "profiles (%repro SEED -p debug, or torch.use_deterministic_algorithms(True)) "
            "switch to it, neither raising nor warning."
        )
    if dev in _NO_DETERMINISTIC.get(op, ()):
        return (
            f"{head} torch has no deterministic implementation on {device}: under the debug "
            "profile it raises, under final it warns (and %%repro lists it after the cell). "
            "The way out: compute it another way (on CPU, or with a deterministic op), or "
            "accept the variation and compare within a tolerance."
        )
    return (
        f"{head} torch does not list {op} as nondeterministic, so the debug profile neither "
        "raises nor changes it: its result depends on how the work is split (the thread "
        "count, torch.set_num_threads; the BLAS library; the CPU's instruction set; the GPU "
        "model). Fix the thread count for both runs, or compare within a tolerance."
    )


def _random_explanation(info: _OpInfo, generator: str) -> str:
    if generator.startswith("torch's default"):
        fix = (
            "Every run started from the same seed, so something drew from it a different "
            "number of times before this op, or reseeded it from a changing value "
            "(torch.manual_seed(time...)): seed once, with %repro SEED or repro.seed(SEED)."
        )
    else:
        fix = (
            "repro seeds torch's default generators, not the ones you create: seed yours from "
            "the session's seed (torch.Generator().manual_seed(repro.state().seed)), or use "
            "repro.dataloader_kwargs()['generator'] for a DataLoader."
        )
    return (
        f"{info.name} is a random draw, and {generator} was in another state when it "
        f"drew (its inputs were otherwise equal). {fix}"
    )


def _outside_explanation(
    info: _OpInfo, a: tuple[Any, ...], b: tuple[Any, ...], tensors_equal: bool
) -> str:
    if not tensors_equal:
        differing = [
            i for i, (x, y) in enumerate(zip(a[_INPUTS], b[_INPUTS], strict=True)) if x != y
        ]
        leaves = set(b[_LEAVES] or ()) | set(a[_LEAVES] or ())
        what = (
            "a tensor that no torch op in this run produced (made from a NumPy array, a "
            "Python list or number, or read from a file)"
            if any(i in leaves for i in differing)
            else "a tensor changed outside torch's ops (written through .numpy() or a raw pointer)"
        )
    else:
        diffs = [
            (x, y) for x, y in zip(a[_SCALARS], b[_SCALARS], strict=False) if repr(x) != repr(y)
        ]
        x, y = diffs[0] if diffs else ("?", "?")
        if isinstance(x, str) and x.startswith(_DIGEST):  # a recorded trace keeps digests only
            what = "a Python value (a number, a shape, an option) that differed"
        else:
            what = f"a Python value that differed ({_short(x)} in run 1, {_short(y)} in run 2)"
    if info.base == "lift_fresh":
        what += (
            " (aten.lift_fresh is how torch takes in such a tensor: torch.from_numpy, torch.tensor)"
        )
    return (
        f"{info.name} received {what}; every torch op before it gave the same results, so the "
        "difference came from outside torch. Seed its source: repro.seed() seeds Python's "
        "random and NumPy's global generator; np.random.default_rng() without a seed draws "
        "fresh OS entropy, use repro.rng() instead; a file or the clock must be pinned."
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- a trace as data: what a notebook's kernel sends, and what --save keeps ---------------

_DIGEST = "digest:"
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")


def _hex(values: tuple[int, ...]) -> str:
    return format(xxhash.xxh3_64_intdigest(struct.pack(f"<{len(values)}Q", *values)), "016x")


def _scalars_digest(scalars: tuple[Any, ...]) -> str:
    text = _ADDRESS.sub("at 0x…", repr(scalars))
    return format(xxhash.xxh3_64_intdigest(text.encode()), "016x")


def to_data(trace: Trace, limit: int = MAX_SAVED_OPS) -> dict[str, Any]:
    """``trace`` as JSON-ready data: per op its name, line, the digest of its inputs (tensors,
    numbers, generator state) and of its outputs; at most ``limit`` ops, the rest counted.
    A backward op's line is its forward line, resolved here (the sequence numbers stay)."""
    names: dict[str, int] = {}
    lines: dict[tuple[str, int] | None, int] = {}
    labels: dict[str, int] = {}
    ops = []
    for op in trace.ops[:limit]:
        info, node, generator = op[_OP], op[_NODE], op[_GENERATOR]
        where = _where(op, trace)
        flags = (1 if op[_LEAVES] else 0) | (2 if op[_CUDA] else 0)
        ops.append(
            [
                names.setdefault(info.name, len(names)),
                lines.setdefault(where, len(lines)),
                -1 if node is None else labels.setdefault(node[1], len(labels)),
                _hex(op[_INPUTS]),
                _scalars_digest(op[_SCALARS]),
                "" if generator is None else format(generator[0], "016x"),
                -1 if generator is None else labels.setdefault(generator[1], len(labels)),
                _hex(op[_OUTPUTS]),
                flags,
            ]
        )
    return {
        "names": list(names),
        "lines": [None if w is None else [w[0], w[1], _line_text(w, trace)[1]] for w in lines],
        "labels": list(labels),
        "ops": ops,
        "untraced": trace.untraced + max(0, len(trace.ops) - limit),
        "unavailable": trace.unavailable,
        "deterministic": list(trace.deterministic),
    }


def from_data(data: dict[str, Any]) -> Trace:
    """A trace written by :func:`to_data` (``ValueError`` if it is not one)."""
    try:
        names = [
            _OpInfo(n, n.split(".")[1] if "." in n else n, False, False, False, None)
            for n in data["names"]
        ]
        lines = [None if w is None else (str(w[0]), int(w[1])) for w in data["lines"]]
        codes = {(str(w[0]), int(w[1])): w[2] for w in data["lines"] if w is not None and w[2]}
        labels = [str(label) for label in data["labels"]]
        ops = []
        for name, line, node, inputs, scalars, gen, gen_label, outputs, flags in data["ops"]:
            ops.append(
                (
                    names[name],
                    lines[line],
                    None if node < 0 else (None, labels[node]),
                    (int(inputs, 16),),
                    (f"{_DIGEST}{scalars}",),
                    None if not gen else (int(gen, 16), labels[gen_label]),
                    (int(outputs, 16),),
                    (0,) if flags & 1 else None,
                    bool(flags & 2),
                )
            )
        on, warn_only = data.get("deterministic") or (False, False)
        return Trace(
            ops=ops,
            untraced=int(data.get("untraced", 0)),
            unavailable=data.get("unavailable"),
            deterministic=(bool(on), bool(warn_only)),
            codes=codes,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a repro trace: {type(exc).__name__}: {exc}") from None
