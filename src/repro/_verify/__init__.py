"""verify: run the same code several times from the same start and say whether it repeats.

Three scales, one report language (:mod:`repro._verify.report`):

- a function: :func:`verify` (``repro.verify``)::

      verify(fn, *args, runs=2, seed=None, trace=False, **kwargs) -> VerifyReport

- a notebook cell: :func:`verify_cell` (what ``%%repro SEED --verify N`` calls)::

      verify_cell(shell, line, cell, *, runs=2, seed=None, profile=None,
                  overrides=None, keep=False, trace=False) -> VerifyReport

- a notebook: :func:`verify_notebook` (what ``repro verify NOTEBOOK`` calls)::

      verify_notebook(path, *, runs=2, kernel="python3", timeout=600, hash_seed="0",
                      save=None, against=None, progress=False, trace=False) -> NotebookReport

Modules: ``digest`` (value digests, the leaves a difference is found in),
``report`` (comparison and the function/cell report), ``start`` (what every run
starts from), ``function``, ``cell``, ``notebook`` (the host that drives kernels),
``recorder`` (what runs inside each kernel), ``trace`` (``trace=True``: every torch op
of a run recorded, and the first that differs named with its line and cause). None of
them imports the public ``repro`` module or a shell.
"""

from __future__ import annotations

from repro._verify.cell import verify_cell
from repro._verify.function import verify
from repro._verify.notebook import NotebookReport, verify_notebook
from repro._verify.report import DISPLAYED, DISPLAYS, PRINTED, Difference, VerifyReport, compare
from repro._verify.start import ArgumentError

__all__ = [
    "DISPLAYED",
    "DISPLAYS",
    "PRINTED",
    "ArgumentError",
    "Difference",
    "NotebookReport",
    "VerifyReport",
    "compare",
    "verify",
    "verify_cell",
    "verify_notebook",
]
