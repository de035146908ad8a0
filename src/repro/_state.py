"""The immutable snapshot of the kernel's reproducibility: what the magic prints,
the panel draws, the export serialises and the tests compare."""

from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any

from repro import _distributed
from repro import frameworks as _frameworks
from repro._session import current

__all__ = ["SETTING_LABELS", "Source", "State", "hash_seed", "state"]

#: Backend flags in display order, with the name a PyTorch user knows them by.
SETTING_LABELS = {
    "cudnn_available": "cuDNN available",
    "cudnn_version": "cuDNN version",
    "cudnn_enabled": "cudnn.enabled",
    "cudnn_deterministic": "cudnn.deterministic",
    "cudnn_benchmark": "cudnn.benchmark",
    "cudnn_tf32": "cudnn.allow_tf32",
    "matmul_tf32": "cuda.matmul.allow_tf32",
    "float32_matmul_precision": "float32 matmul precision",
    "deterministic_algorithms": "deterministic algorithms",
    "fill_uninitialized_memory": "fill uninitialized memory",
    "cuda_initialized": "CUDA initialised",
}


@cache
def _initial_environ() -> dict[str, str]:
    # /proc/self/environ is the environment the process started with: assignments to
    # os.environ (like the guide's os.environ['PYTHONHASHSEED'] = ...) do not show there.
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(_IMPORT_ENVIRON)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


_IMPORT_ENVIRON = {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "")}


def hash_seed() -> int | None:
    """The ``str`` hash seed this interpreter started with, or ``None`` if hashing is randomized.

    It is fixed for the life of the process: setting ``PYTHONHASHSEED`` now only
    affects child processes.
    """
    if not sys.flags.hash_randomization:
        return 0
    raw = _initial_environ().get("PYTHONHASHSEED", "")
    if raw.isdigit() and int(raw) < 2**32:
        return int(raw)
    return None


@dataclass(frozen=True)
class Source:
    """One stream of random numbers, as seen right now."""

    framework: str
    stream: str
    imported: bool
    seed: int | None
    fingerprint: str | None
    #: True if the state differs from right after seeding; None if it was never seeded.
    moved: bool | None


@dataclass(frozen=True)
class State:
    """An immutable snapshot: seed, profile, RNG fingerprints, backend flags and warnings."""

    seed: int | None
    profile: str | None
    overrides: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    sources: tuple[Source, ...] = ()
    settings: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    environ: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    hash_seed: int | None = None
    warnings: tuple[str, ...] = ()
    #: this process's place in its torch.distributed process group, once one is initialised
    rank: int | None = None
    world_size: int | None = None

    @property
    def hash_fixed(self) -> bool:
        """Whether ``str`` hashing (set iteration order, ``hash()``) is the same every run."""
        return self.hash_seed is not None

    @property
    def reproducible(self) -> bool:
        """Seeded, and nothing in :attr:`warnings`."""
        return self.seed is not None and not self.warnings

    @property
    def profile_label(self) -> str:
        """The profile's name with any overrides, e.g. ``debug (deterministic_algorithms=warn)``."""
        if self.profile is None:
            return "none (backend flags untouched)"
        extra = ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.profile} ({extra})" if extra else self.profile

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready) for the export and tools."""
        return {
            "seed": self.seed,
            "profile": self.profile,
            "overrides": dict(self.overrides),
            "sources": [
                {
                    "framework": s.framework,
                    "stream": s.stream,
                    "imported": s.imported,
                    "seed": s.seed,
                    "fingerprint": s.fingerprint,
                    "moved": s.moved,
                }
                for s in self.sources
            ],
            "settings": dict(self.settings),
            "environ": dict(self.environ),
            "hash_seed": self.hash_seed,
            "warnings": list(self.warnings),
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def _source_rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for s in self.sources:
            if not s.imported:
                note = "seeded on import" if self.seed is not None else "not imported"
                rows.append((s.stream, "–", "–", note))
                continue
            moved = {None: "not seeded", True: "moved", False: "fresh"}[s.moved]
            seed = "–" if s.seed is None else str(s.seed)
            rows.append((s.stream, seed, s.fingerprint or "–", moved))
        return rows

    def _setting_rows(self) -> list[tuple[str, str]]:
        rows = [(SETTING_LABELS.get(k, k), _show(v)) for k, v in self.settings.items()]
        for name, value in self.environ.items():
            rows.append((name, "unset" if value is None else value))
        rows.append(
            (
                "str hashing",
                f"fixed (PYTHONHASHSEED={self.hash_seed})" if self.hash_fixed else "randomized",
            )
        )
        return rows

    def __str__(self) -> str:
        seed = "none" if self.seed is None else str(self.seed)
        lines = [f"repro: seed {seed} · profile {self.profile_label}", "sources:"]
        if self.rank is not None:
            lines[0] += f" · rank {self.rank} of {self.world_size}"
        for stream, s, fp, moved in self._source_rows():
            lines.append(f"  {stream:<16} seed {s:<11} {fp:<9} {moved}")
        lines.append("settings:")
        for label, value in self._setting_rows():
            lines.append(f"  {label:<27} {value}")
        if self.warnings:
            lines.append("warnings:")
            lines.extend(f"  ! {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        e = html.escape
        cell = "padding:1px 10px 1px 0;text-align:left"
        head = (
            f"<div class='repro-state' style='font-family:var(--jp-ui-font-family,sans-serif);"
            f"font-size:var(--jp-ui-font-size1,13px);color:var(--jp-ui-font-color1,inherit)'>"
            f"<b>repro</b> · seed <code>{e(str(self.seed))}</code> · profile "
            f"<code>{e(self.profile_label)}</code>"
        )
        sources = "".join(
            f"<tr><td style='{cell}'>{e(a)}</td><td style='{cell}'>{e(b)}</td>"
            f"<td style='{cell}'><code>{e(c)}</code></td><td style='{cell}'>{e(d)}</td></tr>"
            for a, b, c, d in self._source_rows()
        )
        settings = "".join(
            f"<tr><td style='{cell}'>{e(a)}</td><td style='{cell}'><code>{e(b)}</code></td></tr>"
            for a, b in self._setting_rows()
        )
        warn = "".join(
            f"<li style='color:var(--jp-warn-color0,#b45309)'>{e(w)}</li>" for w in self.warnings
        )
        return (
            f"{head}<table style='border-collapse:collapse;margin:4px 0'>"
            f"<tr><th style='{cell}'>source</th><th style='{cell}'>seed</th>"
            f"<th style='{cell}'>fingerprint</th><th style='{cell}'></th></tr>{sources}</table>"
            f"<table style='border-collapse:collapse;margin:4px 0'>{settings}</table>"
            + (f"<ul style='margin:2px 0;padding-left:18px'>{warn}</ul>" if warn else "")
            + "</div>"
        )


def _show(value: Any) -> str:
    return "–" if value is None else str(value)


def _warnings(settings: dict[str, Any], environ: dict[str, str | None], fixed: bool) -> list[str]:
    out = []
    if settings.get("cudnn_benchmark") and settings.get("cudnn_deterministic"):
        out.append(
            "cudnn.benchmark=True overrides cudnn.deterministic: autotuning may pick a "
            "different algorithm each run. Fix: %repro --profile final (benchmark off)."
        )
    algorithms = settings.get("deterministic_algorithms", "off")
    if algorithms != "off" and not environ.get("CUBLAS_WORKSPACE_CONFIG"):
        out.append(
            "deterministic algorithms are on but CUBLAS_WORKSPACE_CONFIG is unset, so cuBLAS "
            "on CUDA may raise or differ. Fix: set it to :4096:8 before the first CUDA call."
        )
    if not fixed:
        out.append(
            "str hashing is randomized in this kernel (PYTHONHASHSEED was not set when it "
            "started): set iteration order and hash() differ between runs. Fix: "
            "`repro kernel install --hash-seed 0` and use that kernel."
        )
    return out


def state() -> State:
    """Snapshot the kernel now. Never imports a framework and never initialises CUDA."""
    session = current()
    sources: list[Source] = []
    settings: dict[str, Any] = {}
    for fw in _frameworks.frameworks():
        if not fw.imported:
            sources.append(Source(fw.name, fw.label, False, None, None, None))
            continue
        seed = session.seeds.get(fw.name)
        for stream, fp in fw.fingerprints().items():
            mark = session.marks.get(stream)
            moved = None if seed is None or mark is None else mark != fp
            sources.append(Source(fw.name, stream, True, seed, fp, moved))
        settings.update(fw.read_settings())
    environ = {"CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    seed_fixed = hash_seed()
    warnings = _warnings(settings, environ, seed_fixed is not None)
    warnings += [n for n in session.notes if n not in warnings]
    rank, world_size = _distributed.process_group() or (None, None)
    return State(
        seed=session.seed,
        profile=session.profile,
        overrides=MappingProxyType(dict(session.overrides)),
        sources=tuple(sources),
        settings=MappingProxyType(settings),
        environ=MappingProxyType(environ),
        hash_seed=seed_fixed,
        warnings=tuple(warnings),
        rank=rank,
        world_size=world_size,
    )
