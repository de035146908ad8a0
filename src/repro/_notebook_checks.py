"""Verify where notebooks are already checked: pytest, pre-commit, CI and the panel.

One rule for every one of those shells: a recording ``NB.repro.json`` beside
``NB.ipynb`` (written by ``repro verify NB --save``) means one run compared with
it; otherwise the notebook runs several times and the runs are compared. The
verdict and the report are verify's own, reached through :func:`_verify_engine`,
the one place that calls the notebook-scale engine, so that a change of engine
is one edit here.

Also :func:`verify_notebooks`: several notebooks, a line each and a summary,
the exit status the worst of theirs (``repro verify a.ipynb b.ipynb``, the
pre-commit hook).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "RECORDING_SUFFIX",
    "Settings",
    "check_notebook",
    "recording_beside",
    "recording_for",
    "summary",
    "trace_available",
    "verify_notebooks",
]

#: ``NB.ipynb`` → ``NB.repro.json``: the recording a notebook is compared with.
RECORDING_SUFFIX = ".repro.json"


def recording_for(notebook: Path | str) -> Path:
    """The recording that belongs to ``notebook``: ``NB.repro.json`` in the same folder."""
    path = Path(notebook)
    return path.with_name(path.name.removesuffix(".ipynb") + RECORDING_SUFFIX)


@dataclass(frozen=True)
class Settings:
    """How to verify: each field left ``None`` takes verify's own default."""

    runs: int | None = None
    kernel: str | None = None
    timeout: float | None = None
    hash_seed: str | None = None
    jobs: int | None = None
    ignore: tuple[str, ...] = ()
    trace: bool = False


def _engine() -> Callable[..., Any]:
    # The notebook-scale engine. This import and :func:`_verify_engine` are the only lines
    # that know where it lives and what it is called.
    from repro._verify import verify_notebook

    return verify_notebook


def trace_available() -> bool:
    """Whether verify can name the first op that differs (``--trace``) in this version."""
    return "trace" in inspect.signature(_engine()).parameters


def _verify_engine(
    notebook: Path, options: dict[str, Any], progress: Callable[[str], None] | None = None
) -> Any:
    if progress is None:
        return _engine()(notebook, **options)
    with _progress_to(progress):
        return _engine()(notebook, **{**options, "progress": True})


class _ThreadStderr:
    """``sys.stderr`` that hands one thread's writes to ``callback``, a line at a time.

    The engine draws its progress bar on ``sys.stderr`` (``\r``-separated frames); the
    panel runs verify in a thread of a live kernel, where ``sys.stderr`` is a cell's
    output. Every other thread writes through to the stream as before.
    """

    def __init__(self, stream: Any, callback: Callable[[str], None]) -> None:
        self._stream = stream
        self._thread = threading.get_ident()
        self._callback = callback

    def write(self, text: str) -> int:
        if threading.get_ident() != self._thread:
            return self._stream.write(text)
        for frame in text.replace("\n", "\r").split("\r"):
            if frame.strip():
                self._callback(frame.strip())
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() != self._thread:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _progress_to(callback: Callable[[str], None]) -> Iterator[None]:
    # One progress capture at a time, so that each puts back the stream it found.
    if not _stderr_lock.acquire(blocking=False):
        raise RuntimeError("a verification is already running in this process")
    original = sys.stderr
    sys.stderr = _ThreadStderr(original, callback)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stderr = original
        _stderr_lock.release()


def recording_beside(notebook: Path | str) -> Path | None:
    """``NB.repro.json`` if it lies beside ``notebook`` (then one run is compared with it)."""
    recording = recording_for(notebook)
    return recording if recording.is_file() else None


def check_notebook(
    notebook: Path | str,
    settings: Settings = Settings(),
    *,
    progress: bool | Callable[[str], None] = False,
    save: bool = False,
) -> Any:
    """Verify ``notebook``: against ``NB.repro.json`` if it lies beside it, else fresh runs.

    ``progress``: True draws verify's progress bar on stderr; a function gets each of its
    frames instead (``run 1 ████░░ 4/6 ...``), from the calling thread.

    ``save``: fresh runs whatever lies beside it, the first run written to
    ``NB.repro.json``. Returns verify's notebook report (``.reproducible``,
    ``.verdict``, ``.exit_code``, ``str()`` the full text). ``settings.trace``
    raises ``ValueError`` where this version of verify cannot trace.
    """
    path = Path(notebook)
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("runs", settings.runs),
            ("kernel", settings.kernel),
            ("timeout", settings.timeout),
            ("hash_seed", settings.hash_seed),
            ("jobs", settings.jobs),
            ("ignore", settings.ignore or None),
        )
        if value is not None
    }
    if settings.trace:
        if not trace_available():
            raise ValueError("tracing is not available in this version of repro verify")
        options["trace"] = True
    recording = None if save else recording_beside(path)
    if save:
        options["save"] = recording_for(path)
    elif recording is not None:
        options["against"] = recording
        options.pop("runs", None)  # one run, compared with the recording
    if progress is True:
        options["progress"] = True
    return _verify_engine(path, options, progress if callable(progress) else None)


# --- several notebooks --------------------------------------------------------------

_MARK = {True: "ok  ", False: "FAIL", None: "ERR "}


def _line(path: Path | str, report: Any) -> str:
    return f"{_MARK[report.reproducible]} {path}: {report.verdict}"


def summary(reports: Sequence[Any]) -> str:
    """``3 notebooks: 2 reproducible, 1 not reproducible, 0 undecided``."""
    verdicts = [report.reproducible for report in reports]
    noun = "notebook" if len(reports) == 1 else "notebooks"
    return (
        f"{len(reports)} {noun}: {verdicts.count(True)} reproducible, "
        f"{verdicts.count(False)} not reproducible, {verdicts.count(None)} undecided"
    )


def verify_notebooks(
    notebooks: Sequence[Path | str],
    settings: Settings = Settings(),
    *,
    out: TextIO,
    quiet: bool = False,
    as_json: bool = False,
    save: bool = False,
    progress: bool = False,
) -> int:
    """Verify each notebook; write a line each (and the reports of those that fail), a summary.

    ``save`` writes each notebook's ``NB.repro.json`` from fresh runs (no comparison with
    an old one). Returns the worst exit status: 0 all reproducible, 1 one is not,
    2 one could not be decided.
    """
    reports = []
    for notebook in notebooks:
        report = check_notebook(notebook, settings, progress=progress, save=save)
        reports.append(report)
        if not as_json:
            print(_line(notebook, report), file=out, flush=True)
            if not quiet and report.reproducible is not True:
                print("\n".join(f"    {line}" for line in str(report).splitlines()), file=out)
    if as_json:
        print(json.dumps([report.as_dict() for report in reports], indent=1, default=str), file=out)
    else:
        print(summary(reports), file=out)
    return max((report.exit_code for report in reports), default=0)
