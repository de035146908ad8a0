"""NumPy's legacy global generator (``np.random.rand`` and friends)."""

from __future__ import annotations

import struct
import sys
from typing import Any, NamedTuple

from repro.frameworks.base import Framework, fingerprint

#: MT19937's state in C: ``uint32_t key[624]; int pos;``.
_MT_BYTES = 624 * 4 + 4


class _Saved(NamedTuple):
    """The legacy generator's whole state: MT19937's words and position as in memory, and
    RandomState's cached gaussian (what ``get_state()`` returns as its last two items)."""

    mt: bytes
    has_gauss: int
    gauss: float

    def legacy(self) -> tuple[str, Any, int, int, float]:
        """As ``np.random.get_state()`` gives it."""
        np = sys.modules["numpy"]
        key = np.frombuffer(self.mt[: _MT_BYTES - 4], dtype=np.uint32).copy()
        return ("MT19937", key, _position(self.mt), self.has_gauss, self.gauss)


def _position(mt: bytes) -> int:
    return int.from_bytes(mt[_MT_BYTES - 4 :], sys.byteorder, signed=True)


class _Memory:
    """The global RandomState's state read and written as memory.

    ``get_state()`` and ``set_state()`` each copy MT19937's 624 words one Python item at a
    time (33 µs each here, a fifth of a ``%%repro`` cell's cost, and most of the panel's
    per-cell read); a copy of the same 2,500 bytes takes a microsecond. MT19937 publishes
    its state's address (``bit_generator.ctypes``); RandomState's cached gaussian has no
    such accessor, so its place inside the object is found once on a private instance by
    setting it through ``set_state`` and looking, then checked by writing it and reading it
    back with ``get_state``. Anything unexpected (another layout, another interpreter, a
    bit generator swapped with ``np.random.set_bit_generator``) leaves NumPy's own calls.
    """

    def __init__(self, generator: Any, has_gauss_at: int, gauss_at: int) -> None:
        import ctypes  # NumPy has imported it; repro's import must not

        self.generator = generator  # kept alive: the addresses below point into it
        self.bit_generator = generator._bit_generator
        address = self.bit_generator.ctypes.state_address
        self.mt = (ctypes.c_char * _MT_BYTES).from_address(address)
        self.has_gauss = ctypes.c_int.from_address(id(generator) + has_gauss_at)
        self.gauss = ctypes.c_double.from_address(id(generator) + gauss_at)

    def live(self) -> bool:
        """Whether the generator still draws from the bit generator these addresses are in."""
        return self.generator._bit_generator is self.bit_generator

    def read(self) -> _Saved:
        """The state now."""
        return _Saved(self.mt.raw, self.has_gauss.value, self.gauss.value)

    def write(self, saved: _Saved) -> None:
        """Put ``saved`` back."""
        self.mt.raw = saved.mt
        self.has_gauss.value = saved.has_gauss
        self.gauss.value = saved.gauss


def _find_memory(np: Any) -> _Memory | None:
    """The fast access to ``np.random``'s global generator, or None where it cannot be proven."""
    import ctypes

    try:
        generator = np.random.mtrand._rand
        if np.random.get_state.__self__ is not generator:
            return None
        probe = np.random.RandomState(np.random.MT19937(0))
        if type(probe) is not type(generator) or type(probe._bit_generator) is not type(
            generator._bit_generator
        ):
            return None
        _, key, pos, _, _ = probe.get_state()
        size, header = type(probe).__basicsize__, object.__basicsize__
        marks = (-1.6180339887498949e-123, 2.718281828459045e217)

        def memory_with(has_gauss: int, gauss: float) -> bytes:
            probe.set_state(("MT19937", key, pos, has_gauss, gauss))
            return ctypes.string_at(id(probe), size)

        first, second = memory_with(1, marks[0]), memory_with(0, marks[1])
        gauss_at = first.find(struct.pack("d", marks[0]), header)
        changed = [
            i
            for i in range(header, size)
            if first[i] != second[i] and not gauss_at <= i < gauss_at + 8
        ]
        if gauss_at < 0 or second[gauss_at : gauss_at + 8] != struct.pack("d", marks[1]):
            return None
        # The flag goes from 1 to 0: one byte of an int changes (its lowest, little or big).
        if len(changed) != 1:
            return None
        has_gauss_at = changed[0] - (changed[0] % ctypes.sizeof(ctypes.c_int))
        found = _Memory(probe, has_gauss_at, gauss_at)
        other = np.random.RandomState(np.random.MT19937(1))
        other_key, other_pos = other.get_state()[1:3]
        found.write(_Saved(_Memory(other, has_gauss_at, gauss_at).read().mt, 1, marks[1]))
        _, key_now, pos_now, has_gauss_now, gauss_now = probe.get_state()
        written = (key_now.tobytes(), pos_now, has_gauss_now, gauss_now)
        if written != (other_key.tobytes(), other_pos, 1, marks[1]) or found.read() != _Saved(
            key_now.tobytes() + struct.pack("=i", pos_now), 1, marks[1]
        ):
            return None
        return _Memory(generator, has_gauss_at, gauss_at)
    except Exception:  # any surprise: NumPy's own calls
        return None


class NumPyRandom(Framework):
    """The global ``RandomState`` that ``np.random.seed`` controls.

    ``np.random.default_rng()`` Generators are not reached by any global seed:
    use :func:`repro.rng` for those.
    """

    name = "numpy"
    module = "numpy"
    label = "NumPy"
    fingerprints_by_seed = True
    seed_may_fail = False  # ``np.random.seed`` of a checked int cannot fail

    _memory: _Memory | None = None
    _memory_for: Any = None  # the numpy module _memory was found in (a reload finds it again)

    def _fast(self) -> _Memory | None:
        np = sys.modules["numpy"]
        if self._memory_for is not np:
            self._memory, self._memory_for = _find_memory(np), np
        memory = self._memory
        return memory if memory is not None and memory.live() else None

    def seed(self, seed: int) -> None:
        """Seed it as ``np.random.seed(seed)`` does."""
        sys.modules["numpy"].random.seed(seed)

    def get_state(self) -> Any:
        """The state ``np.random.get_state()`` gives, as a copy of its memory where it can."""
        memory = self._fast()
        if memory is not None:
            return memory.read()
        return sys.modules["numpy"].random.get_state()

    def set_state(self, state: Any) -> None:
        """Restore what :meth:`get_state` returned, as ``np.random.set_state()`` would."""
        if isinstance(state, _Saved):
            memory = self._fast()
            if memory is not None:
                memory.write(state)
                return
            state = state.legacy()
        sys.modules["numpy"].random.set_state(state)

    def reset(self) -> None:
        """Reseed from the OS, as NumPy does at import."""
        sys.modules["numpy"].random.seed()

    def fingerprints(self) -> dict[str, str]:
        """One stream: the MT19937 key, position and cached gauss."""
        memory = self._fast()
        if memory is not None:
            saved = memory.read()
            key = saved.mt[: _MT_BYTES - 4]
            pos, has_gauss, gauss = _position(saved.mt), saved.has_gauss, saved.gauss
        else:
            _, words, pos, has_gauss, gauss = sys.modules["numpy"].random.get_state()
            key = words.tobytes()
        return {self.label: fingerprint(key + struct.pack("<iid", pos, has_gauss, gauss))}

    def describe(self) -> dict[str, Any]:
        """NumPy's version."""
        return {"numpy": sys.modules["numpy"].__version__}
