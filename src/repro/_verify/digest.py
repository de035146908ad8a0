"""Fast digests of values: what verify compares between runs.

(A *digest* is of a value; a *fingerprint*, elsewhere in repro, is of an RNG's state.)
A digest is xxHash's XXH3 (128 bits, non-cryptographic) over the raw bytes
of every array in a value, with each array's path, dtype and shape. Arrays are
hashed in place: a contiguous NumPy array or CPU tensor is hashed through a
memoryview, a non-contiguous one in slices of at most :data:`CHUNK_BYTES`, and a
CUDA tensor through one reusable host buffer of that size (never a full host copy).

NumPy and torch are never imported here: a value is recognised by the module
of its type, so digesting a notebook's variables imports nothing new.
"""

from __future__ import annotations

import dataclasses
import math
import re
import struct
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import xxhash

from repro._verify.markup import normalize_markup

__all__ = [
    "CHUNK_BYTES",
    "DigestError",
    "Leaf",
    "describe",
    "digest",
    "leaves",
    "strip_addresses",
]

#: The largest slice of an array copied at once (a non-contiguous array, a CUDA tensor).
CHUNK_BYTES = 64 * 2**20

#: ``<object at 0x7f...>``: an address that changes from run to run.
ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")

#: Your own objects (classes from ``__main__``, dataclasses) are walked through their
#: attributes this many levels deep; a library's objects one level (a fitted estimator's
#: ``coef_``, a line's data), then they are known by type only: their inner graphs hold
#: caches keyed by ``id()`` and ~100,000 leaves (a matplotlib figure).
MAX_OBJECT_DEPTH = 3

_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray)

#: Objects that hold code, not data: known by their repr, never walked.
_CODE = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.ModuleType,
    type,
)


def strip_addresses(text: str) -> str:
    """``text`` with object addresses (``at 0x7f3a...``) replaced by ``at 0x…``."""
    return ADDRESS.sub("at 0x…", text)


@dataclass(frozen=True)
class Leaf:
    """A value that is hashed as a whole: an array, a tensor, a scalar or an opaque object."""

    path: str
    value: Any


def _module(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


def _is_ndarray(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.ndarray | np.generic)


def _torch() -> Any:
    return sys.modules.get("torch")


def leaves(value: Any, path: str = "") -> Iterator[Leaf]:
    """The leaves of ``value`` with their paths (``.fc.weight``, ``['key']``, ``[0]``), in order.

    Containers (dict, list, tuple, set), ``nn.Module`` (parameters, their gradients,
    buffers), optimizers (``state_dict()``), random generators (their state) and
    plain objects (their ``__dict__``) are walked; everything else is a leaf.
    """
    yield from _walk(value, path, frozenset(), 0)


def _walk(value: Any, path: str, seen: frozenset[int], depth: int) -> Iterator[Leaf]:
    if isinstance(value, str) and "<" in value:
        # Markup held in a variable (plotly's fig.to_html(), an animation's cached HTML):
        # compared without the element ids drawn afresh, as displayed markup is.
        yield Leaf(path, normalize_markup(value))
        return
    if isinstance(value, _SCALARS):
        yield Leaf(path, value)
        return
    if _is_ndarray(value):
        if value.dtype.names:  # a structured array: field by field (a difference names it)
            for field in value.dtype.names:
                yield from _walk(value[field], f"{path}[{field!r}]", seen, depth)
        elif value.dtype.hasobject:  # pointers, not values: walk the objects
            yield from _walk(value.tolist(), path, seen, depth)
        else:
            yield Leaf(path, value)
        return
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        yield Leaf(path, value)
        return
    if id(value) in seen:  # a cycle: the object is already being walked above
        yield Leaf(path, "<cycle>")
        return
    seen = seen | {id(value)}
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}[{strip_addresses(repr(key))}]", seen, depth)
    elif isinstance(value, list | tuple):
        yield Leaf(f"{path}#len", len(value))
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", seen, depth)
    elif isinstance(value, set | frozenset):
        # Order-free: a set's iteration order is the hash seed's, not the value's.
        yield Leaf(path, sorted(digest(item) for item in value))
    elif torch is not None and isinstance(value, torch.nn.Module):
        yield Leaf(f"{path}.training", value.training)
        for name, param in value.named_parameters():
            yield Leaf(f"{path}.{name}", param)
            if param.grad is not None:
                yield Leaf(f"{path}.{name}.grad", param.grad)
        for name, buffer in value.named_buffers():
            yield Leaf(f"{path}.{name}", buffer)
    elif torch is not None and isinstance(value, torch.optim.Optimizer):
        yield from _walk(value.state_dict(), path, seen, depth)
    elif torch is not None and isinstance(value, torch.Generator):
        yield Leaf(path, _global_stream(value, torch) or value.get_state())
    elif _module(value) == "numpy" and hasattr(value, "bit_generator"):
        yield from _walk(value.bit_generator.state, path, seen, depth)
    elif _module(value) == "random" and hasattr(value, "getstate"):
        if (stream := _global_stream(value, torch)) is not None:
            yield Leaf(path, stream)
        else:
            yield from _walk(value.getstate(), path, seen, depth)
    elif hasattr(value, "__array__") and _module(value) in ("pandas", "xarray"):
        yield Leaf(f"{path}#type", type(value).__qualname__)
        if hasattr(value, "columns"):
            yield from _walk([str(c) for c in value.columns], f"{path}.columns", seen, depth)
        index = getattr(value, "index", None)
        if _module(index) == "pandas":  # the row labels: a shuffled or time-stamped index
            yield Leaf(f"{path}.index", _index_values(index))
        if hasattr(value, "columns") and hasattr(value, "items") and value.columns.is_unique:
            # Column by column: a difference names its column (a DataFrame of cv_results_
            # shows which are the measured durations).
            for column, series in value.items():
                where = f"{path}[{strip_addresses(repr(column))}]"
                yield from _walk(series.to_numpy(), where, seen, depth)
        else:
            yield from _walk(value.__array__(), path, seen, depth)
    elif _module(value) in _RUNTIME or isinstance(value, threading.Thread):
        # Threads, processes, pools, locks, queues, sockets: how the work ran, not what it
        # computed (thread ids, pids, and how many workers a pool started vary by run).
        yield Leaf(f"{path}#type", type(value).__qualname__)
    elif _module(value) == "IPython" and type(value).__name__ == "TimeitResult":
        # `r = %timeit -o ...`: only what the clock measured (and the loop count it chose),
        # as the figures %timeit prints, which outputs leave out too.
        yield Leaf(path, TIMEIT)
    elif hasattr(value, "__dict__") and not isinstance(value, _CODE):
        yield Leaf(f"{path}#type", type(value).__qualname__)
        module = _module(value)
        # A notebook's own objects, and scikit-learn's (a forest's trees, a pipeline's steps:
        # fitted estimators are the results), are walked deeper than a library's.
        own = module in ("__main__", "sklearn") or dataclasses.is_dataclass(value)
        if depth >= (MAX_OBJECT_DEPTH if own else 1):
            return
        drawn = _DRAWN_IDS.get((module, type(value).__name__), ())
        for name, item in vars(value).items():
            if name in drawn:
                yield Leaf(f"{path}.{name}", DRAWN_ID)
            elif module == "sklearn" and name in _SKLEARN_DURATIONS:
                yield from _without_durations(item, f"{path}.{name}", seen, depth + 1)
            else:
                yield from _walk(item, f"{path}.{name}", seen, depth + 1)
    elif (stream := _global_stream(value, torch)) is not None:
        # A reference to a global stream (scipy's distributions hold NumPy's): the stream is
        # compared as a stream, cell by cell; unseeded, it differs from the start, and only
        # what is drawn from it is a result.
        yield Leaf(path, stream)
    elif (state := _own_state(value)) is not None:
        # A compiled object with its own pickled state (scikit-learn's Tree: nodes and
        # values), which its repr does not show.
        yield Leaf(f"{path}#type", type(value).__qualname__)
        yield from _walk(state, path, seen, depth + 1)
    else:
        yield Leaf(path, _Opaque(strip_addresses(repr(value))))


def _global_stream(value: Any, torch: Any) -> str | None:
    """``"<the global NumPy stream>"`` (or Python's, or torch's) when ``value`` is that stream."""
    random = sys.modules.get("random")
    if random is not None and value is getattr(random, "_inst", None):
        return "<the global Python random stream>"
    np = sys.modules.get("numpy")
    mtrand = getattr(getattr(np, "random", None), "mtrand", None)
    if mtrand is not None and value is getattr(mtrand, "_rand", None):
        return "<the global NumPy stream>"
    if torch is not None and value is getattr(torch, "default_generator", None):
        return "<the global torch stream>"
    return None


def _own_state(value: Any) -> Any:
    """What ``value.__getstate__()`` returns when its type defines one of its own (a compiled
    class's pickled state), else None."""
    method = getattr(type(value), "__getstate__", None)
    if method is None or method is getattr(object, "__getstate__", None):
        return None
    try:
        return value.__getstate__()
    except Exception:  # a state it cannot give: known by its repr
        return None


#: What scikit-learn measures with the clock, in a fitted search (``refit_time_``, and in
#: ``cv_results_`` each ``mean_fit_time``, ``std_score_time``, ``split0_fit_time``...): never
#: the same twice, and not a result; every other value there is compared.
_SKLEARN_DURATIONS = ("refit_time_", "cv_results_")
_SKLEARN_TIME_KEY = re.compile(r"^(?:mean|std|split\d+)_(?:fit|score)_time$")
#: The leaf that stands for a duration left out.
DURATION = "<a duration scikit-learn measured: not compared>"
#: Modules whose objects are the machinery of running (compared by type only).
_RUNTIME = frozenset(
    {
        "threading",
        "_thread",
        "concurrent",
        "multiprocessing",
        "asyncio",
        "queue",
        "subprocess",
        "socket",
        "selectors",
    }
)
#: Attributes that hold an id a library draws afresh for each object, by (module, type):
#: a pandas Styler's ``uuid`` (``T_<uuid>`` in its HTML, which outputs leave out too).
_DRAWN_IDS = {("pandas", "Styler"): ("uuid",)}
#: The leaf that stands for such an id.
DRAWN_ID = "<an id the library draws afresh: not compared>"
#: The leaf that stands for ``%timeit -o``'s result.
TIMEIT = "<timings %timeit measured: not compared>"


def _without_durations(value: Any, path: str, seen: frozenset[int], depth: int) -> Iterator[Leaf]:
    if path.endswith(".refit_time_"):
        yield Leaf(path, DURATION)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}[{strip_addresses(repr(key))}]"
            if isinstance(key, str) and _SKLEARN_TIME_KEY.match(key):
                yield Leaf(where, DURATION)
            else:
                yield from _walk(item, where, seen, depth)
    else:
        yield from _walk(value, path, seen, depth)


@dataclass(frozen=True)
class _Opaque:
    """An object known only by its repr (addresses removed)."""

    text: str


def digest(value: Any) -> str:
    """A 32-hex-digit XXH3-128 digest of ``value``'s leaves, paths, dtypes and shapes.

    Equal digests mean bitwise-equal values (NaNs with the same bits are equal;
    ``0.0`` and ``-0.0`` are not). Cost: one read of each array's bytes.
    """
    hasher = xxhash.xxh3_128()
    for leaf in leaves(value):
        hasher.update(leaf.path.encode("utf-8", "surrogatepass"))
        try:
            hash_leaf(hasher, leaf.value)
        except Exception as exc:  # a meta tensor, an exotic layout: say so, never guess
            where = leaf.path or "the value"
            raise DigestError(
                f"{where} ({type(leaf.value).__name__}) cannot be read: {exc}"
            ) from exc
    return hasher.hexdigest()


class DigestError(TypeError):
    """A leaf whose bytes cannot be read (so no digest can stand for it)."""


def hash_leaf(hasher: Any, value: Any) -> None:
    """Feed one leaf (with its type, dtype and shape) into ``hasher``."""
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        _hash_tensor(hasher, value, torch)
    elif _is_ndarray(value):
        _hash_ndarray(hasher, value)
    elif isinstance(value, float):
        hasher.update(b"f" + struct.pack("<d", value))
    elif isinstance(value, complex):
        hasher.update(b"c" + struct.pack("<dd", value.real, value.imag))
    elif isinstance(value, str):
        hasher.update(b"s" + value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, bytes | bytearray):
        hasher.update(b"b" + bytes(value))
    elif isinstance(value, _Opaque):
        hasher.update(b"o" + value.text.encode("utf-8", "surrogatepass"))
    else:  # None, bool, int, a sorted list of digests
        hasher.update(f"{type(value).__name__}:{value!r}".encode())


def _index_values(index: Any) -> Any:
    """A pandas index as an array: its values where they are numbers, booleans or times (a
    difference then reads as values), else pandas' own hash of each label."""
    try:
        values = index.to_numpy()
        if values.dtype.kind in "biufcmM":
            return values
        from pandas.util import hash_pandas_object

        return hash_pandas_object(index).to_numpy()
    except Exception:  # labels pandas cannot hash (lists in an object index...)
        return repr(list(index))


def _hash_ndarray(hasher: Any, array: Any) -> None:
    import numpy as np

    if isinstance(array, np.ma.MaskedArray):
        # Its view("u1") would view the mask too (and fail); what is hidden is not the value.
        hasher.update(b"masked:")
        _hash_ndarray(hasher, np.ascontiguousarray(np.ma.getmaskarray(array)))
        array = np.asarray(array.filled())
    hasher.update(f"ndarray:{array.dtype.str}:{array.shape}".encode())
    if array.flags.c_contiguous:
        hasher.update(memoryview(array.reshape(-1).view("u1")))
        return
    # Rows of a strided array, a slice at a time: never a copy of the whole array.
    import numpy as np

    rows = _rows_per_chunk(array.shape, array.itemsize)
    flat = array.reshape(-1) if array.ndim == 0 else array
    for start in range(0, flat.shape[0], rows):
        chunk = np.ascontiguousarray(flat[start : start + rows])
        hasher.update(memoryview(chunk.reshape(-1).view("u1")))
        del chunk  # one chunk alive at a time


def _rows_per_chunk(shape: tuple[int, ...], itemsize: int) -> int:
    row_bytes = itemsize * math.prod(shape[1:])
    return max(1, CHUNK_BYTES // max(1, row_bytes))


def _hash_tensor(hasher: Any, tensor: Any, torch: Any) -> None:
    t = tensor.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    hasher.update(f"tensor:{t.dtype}:{tuple(t.shape)}".encode())
    if t.numel() == 0:
        return
    if t.dim() == 0:
        t = t.reshape(1)
    if t.device.type == "cpu":
        if t.is_contiguous():
            hasher.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
            return
        rows = _rows_per_chunk(tuple(t.shape), t.element_size())
        for start in range(0, t.shape[0], rows):
            chunk = t[start : start + rows].contiguous()
            hasher.update(memoryview(chunk.reshape(-1).view(torch.uint8).numpy()))
            del chunk  # one chunk alive at a time
        return
    _hash_device_tensor(hasher, t, torch)


def _hash_device_tensor(hasher: Any, t: Any, torch: Any) -> None:
    """A GPU tensor through two pinned host buffers of at most CHUNK_BYTES each: the copy of
    one chunk (on a side stream) overlaps the hashing of the one before, and no full host
    copy is ever made. A CPU tensor takes the same path with plain copies (tests use that)."""
    if t.is_contiguous():
        flat = t.reshape(-1).view(torch.uint8)
        pieces: Iterator[Any] = (
            flat[start : start + CHUNK_BYTES] for start in range(0, flat.numel(), CHUNK_BYTES)
        )
    else:
        rows = _rows_per_chunk(tuple(t.shape), t.element_size())
        pieces = (
            t[start : start + rows].contiguous().reshape(-1).view(torch.uint8)
            for start in range(0, t.shape[0], rows)
        )
    cuda = t.device.type == "cuda"
    stream = torch.cuda.Stream(t.device) if cuda else None
    buffers: list[Any] = [None, None]
    pending = None  # (host view, event, piece kept alive until its copy is done)
    for index, piece in enumerate(pieces):
        size = piece.numel()
        slot = index % 2
        if buffers[slot] is None or buffers[slot].numel() < size:
            buffers[slot] = torch.empty(size, dtype=torch.uint8, pin_memory=cuda)
        host = buffers[slot][:size]
        event = None
        if cuda:
            # The piece may have just been made on the current stream (.contiguous()).
            stream.wait_stream(torch.cuda.current_stream(t.device))
            with torch.cuda.stream(stream):
                host.copy_(piece, non_blocking=True)
                event = torch.cuda.Event()
                event.record(stream)
        else:
            host.copy_(piece)
        if pending is not None:
            _hash_host(hasher, *pending)
        # This slot is written again two chunks later, after its bytes were hashed above.
        pending = (host, event, piece)
    if pending is not None:
        _hash_host(hasher, *pending)


def _hash_host(hasher: Any, host: Any, event: Any, piece: Any) -> None:
    if event is not None:
        event.synchronize()
    hasher.update(memoryview(host.numpy()))
    del piece  # the device chunk could be freed only once its copy had finished


def describe(value: Any) -> str:
    """A short description of ``value``'s kind: ``ndarray float64 (3, 4)``, ``int``, ``list[5]``."""
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"tensor {dtype} {tuple(value.shape)} {value.device}"
    if _is_ndarray(value):
        kind = "ndarray" if type(value).__name__ == "ndarray" else type(value).__name__
        return f"{kind} {value.dtype} {value.shape}" if kind == "ndarray" else kind
    if isinstance(value, list | tuple | dict | set | frozenset):
        return f"{type(value).__name__}[{len(value)}]"
    if torch is not None and isinstance(value, torch.nn.Module):
        count = sum(1 for _ in value.parameters()) + sum(1 for _ in value.buffers())
        return f"{type(value).__name__} ({count} tensors)"
    return type(value).__name__
