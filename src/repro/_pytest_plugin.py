"""The pytest plugin: ``pytest --repro [PATHS]`` verifies each notebook as one test.

Registered through the ``pytest11`` entry point, so it is loaded by every pytest
run where repro is installed: without ``--repro`` it collects nothing and imports
nothing of repro. With it, each ``*.ipynb`` is one test whose verdict is
``repro verify``'s (see :mod:`repro._notebook_checks` for the recording rule)
and whose failure text is verify's report. Under pytest-xdist each notebook is
a test like any other, so ``-n 2`` verifies two notebooks at once; the first
differing cell and the verdict are also JUnit XML properties.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

__all__ = ["NotReproducible", "NotebookFile", "NotebookItem"]


def _runs(text: str) -> int:
    from repro.cli import _runs as parse  # the command's check and message: one of each

    return parse(text)


def _hash_seed(text: str) -> str:
    from repro.cli import _run_hash_seed as parse

    return parse(text)


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--repro`` and the options of ``repro verify`` it passes on."""
    group = parser.getgroup("repro", "reproducible notebooks (repro verify)")
    group.addoption(
        "--repro",
        action="store_true",
        help="collect *.ipynb files: each passes if repro verify finds it reproducible "
        "(compared with NB.repro.json where it lies beside NB.ipynb, else over several runs)",
    )
    group.addoption(
        "--repro-runs", type=_runs, metavar="N", help="runs per notebook (verify's default: 2)"
    )
    group.addoption(
        "--repro-hash-seed",
        type=_hash_seed,
        metavar="N|random",
        help="PYTHONHASHSEED of the runs' kernels (verify's default otherwise)",
    )
    group.addoption(
        "--repro-kernel", metavar="NAME", help="the kernel to run notebooks in (python3)"
    )
    group.addoption(
        "--repro-timeout", type=_timeout, metavar="S", help="seconds per cell (verify's: 600)"
    )
    group.addoption(
        "--repro-trace",
        action="store_true",
        help="name the first op that differs in the failing cell (where verify can trace)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse ``--repro-trace`` at once where verify cannot trace, not once per notebook."""
    if config.getoption("repro") and config.getoption("repro_trace"):
        from repro._notebook_checks import trace_available

        if not trace_available():
            raise pytest.UsageError(
                "--repro-trace: not available in this version of repro (verify cannot trace)"
            )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> NotebookFile | None:
    """One :class:`NotebookFile` per ``*.ipynb`` with ``--repro``; nothing otherwise."""
    if (
        file_path.suffix == ".ipynb"
        and parent.config.getoption("repro")
        and ".ipynb_checkpoints" not in file_path.parts
    ):
        return NotebookFile.from_parent(parent, path=file_path)
    return None


class NotReproducible(Exception):
    """A notebook that verify found not reproducible, or could not verify; holds the report."""

    def __init__(self, report: Any) -> None:
        super().__init__(report.verdict)
        self.report = report


class NotebookFile(pytest.File):
    """A notebook: one test, named ``reproducible``."""

    def collect(self) -> list[NotebookItem]:
        """The notebook's one test."""
        return [NotebookItem.from_parent(self, name="reproducible")]


class NotebookItem(pytest.Item):
    """Verify one notebook; fail with verify's report."""

    def runtest(self) -> None:
        """Run verify with the options given to pytest; raise :class:`NotReproducible`."""
        from repro._notebook_checks import Settings, check_notebook, recording_beside

        option = self.config.getoption
        settings = Settings(
            runs=option("repro_runs"),
            kernel=option("repro_kernel"),
            timeout=option("repro_timeout"),
            hash_seed=option("repro_hash_seed"),
            trace=option("repro_trace"),
        )
        recording = recording_beside(self.path)
        if recording is not None:
            self.user_properties.append(("repro_recording", recording.name))
        report = check_notebook(self.path, settings)
        self.user_properties.append(("repro_verdict", report.verdict))
        if report.reproducible is not True:
            if report.first is not None:
                self.user_properties.append(("repro_first_differing_cell", report.first))
            raise NotReproducible(report)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        """Verify's report for a notebook it judged; pytest's traceback for anything else."""
        if isinstance(excinfo.value, NotReproducible):
            # The verdict first: pytest's short summary shows a failure's first line.
            report = excinfo.value.report
            lines = str(report).splitlines()
            if lines and lines[-1] == report.verdict:
                lines.pop()
            return "\n".join([report.verdict, *lines])
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the test is, as pytest prints it (``-v``, failures' headers)."""
        return self.path, None, f"{self.path.name}: repro verify"
