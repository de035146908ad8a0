"""verify: run the same code several times from the same start and say whether it repeats.

Three scales, one report language (:mod:`repro._verify.report`):

- a function: :func:`verify` (``repro.verify``)::

      verify(fn, *args, runs=2, seed=None, trace=False, **kwargs) -> VerifyReport

- a notebook cell: :func:`verify_cell` (what ``%%repro SEED --verify N`` calls)::

      verify_cell(shell, line, cell, *, runs=2, seed=None, profile=None,
                  overrides=None, keep=False, trace=False) -> VerifyReport

- a notebook: :func:`verify_notebook` (what ``repro verify NOTEBOOK`` calls)::

      verify_notebook(path, *, runs=2, kernel=None, timeout=600, hash_seed=None, jobs=None,
                      save=None, against=None, ignore=(), progress=False,
                      trace=False) -> NotebookReport

  The report: ``.verdict`` (one line), ``.reproducible`` (True/False/None),
  ``.exit_code``, the first differing cell (``.first``: position counting markdown,
  ``.first_count``: its In [N], ``.first_id``), ``.items`` (Difference), ``.causes``
  (each with its fix: ``.advice``), ``.ignored``, ``.changes`` (with ``against``),
  ``.environment``, ``.first_op`` (with ``trace``), ``.as_dict()`` (the JSON form)
  and ``str()``.

Modules: ``digest`` (value digests, the leaves a difference is found in),
``report`` (comparison, one text for a difference, the function/cell report),
``outputs`` (the one normalisation of what a cell shows), ``advice`` (causes and
fixes), ``start`` (what every run starts from), ``function``, ``cell``,
``notebook`` (the host that drives kernels), ``notebook_report`` (matching and
comparing a notebook's cells), ``recorder`` (what runs inside each kernel),
``trace`` (``trace=True``: every torch op of a run recorded, and the first that
differs named with its line and cause). None of them imports the public ``repro`` module or a shell.
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
