"""The ``repro.frameworks`` entry points, read once per change of the installed packages.

``importlib.metadata.entry_points()`` opens every installed distribution's metadata: 14 ms
in a venv of 157 distributions, 68 ms in one of 356, and 10 ms more to import
importlib.metadata itself, on every fresh ``%repro 42``. The answer changes only when a
distribution is installed, upgraded or removed, and each of those creates or deletes its
metadata directory in a ``sys.path`` entry, which changes that entry's modification time
(importlib.metadata's own in-process cache relies on the same rule). So the answer is kept
in a small file, keyed on ``sys.path`` and its entries' modification times: a fresh process
then stats a handful of directories instead of reading hundreds of files.

The working directory is the exception: a kernel has it on ``sys.path`` and it changes
whenever a notebook there is saved, so its key is the metadata directories it holds.

Not noticed: an ``entry_points.txt`` edited in place, without reinstalling its package
(reinstall it, or touch its ``sys.path`` directory).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import xxhash

__all__ = ["cache_file", "entry_points", "load"]

#: A directory modified this recently may be modified again within the same tick of its
#: file system's clock without its time changing (2 s: FAT's resolution, the coarsest):
#: an answer read then is not kept.
_SETTLING_NS = 2_000_000_000

# importlib.metadata.EntryPoint's syntax: "module.path:attr.path [extras]".
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


def cache_file() -> Path:
    """Where this interpreter's answer is kept (``$XDG_CACHE_HOME/repro``, else ``~/.cache``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = xxhash.xxh3_64_hexdigest(f"{sys.prefix}\0{sys.executable}".encode())
    return Path(root, "repro", f"entry-points-{name}.json")


def _key() -> tuple[list[Any], bool] | None:
    """``sys.path`` with each entry's modification time, and whether one changed just now;
    ``None`` where another finder than the path finder lists distributions (not cacheable)."""
    from importlib.machinery import PathFinder

    if any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path):
        return None
    now, key, recent = time.time_ns(), [sys.version], False
    cwd = os.getcwd()
    for entry in sys.path:
        try:
            path = os.path.abspath(os.fsdecode(entry) or ".")
        except TypeError:  # not a path (the import system skips it; no key for it here)
            return None
        if path == cwd:
            # A kernel's working directory, on its sys.path, changes whenever a notebook in it
            # is saved: its key is the metadata directories it holds, with their times.
            held = _metadata_dirs(path)
            recent = recent or any(now - mtime < _SETTLING_NS for _, mtime in held)
            key.append([path, held])
            continue
        try:
            mtime: int | None = os.stat(path).st_mtime_ns
        except (OSError, ValueError):
            mtime = None
        else:
            recent = recent or now - mtime < _SETTLING_NS
        key.append([path, mtime])
    return key, recent


def _metadata_dirs(path: str) -> list[list[Any]]:
    """The ``*.dist-info`` and ``*.egg-info`` entries of ``path`` with their times, sorted."""
    try:
        with os.scandir(path) as entries:
            return sorted(
                [e.name, e.stat().st_mtime_ns]
                for e in entries
                if e.name.endswith((".dist-info", ".egg-info"))
            )
    except OSError:
        return []


def _scan(group: str) -> list[tuple[str, str]]:
    from importlib.metadata import entry_points as installed

    return [(ep.name, ep.value) for ep in installed(group=group)]


def entry_points(group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of each entry point in ``group``, as importlib.metadata finds them."""
    keyed = _key()
    if keyed is None:
        return _scan(group)
    key, recent = keyed
    path = cache_file()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # none, or not ours
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept["key"] == key and kept["group"] == group:
            return [(str(name), str(value)) for name, value in kept["entry_points"]]
    found = _scan(group)  # after the key: a change during the scan changes the key
    if not recent:
        _keep(path, {"key": key, "group": group, "entry_points": found})
    return found


def _keep(path: Path, content: dict[str, Any]) -> None:
    """Write ``content`` to ``path`` whole or not at all (concurrent kernels, a read-only home)."""
    import tempfile

    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".entry-points-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(content, f)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def load(value: str) -> Any:
    """The object an entry point's ``value`` names, as ``EntryPoint.load()`` imports it."""
    match = _VALUE.match(value)
    if match is None:
        raise ValueError(f"not an entry point: {value!r}")
    module = importlib.import_module(match.group("module"))
    attrs = [a for a in (match.group("attr") or "").split(".") if a]
    return functools.reduce(getattr, attrs, module)
