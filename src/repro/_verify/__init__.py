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

import importlib
from typing import Any

#: Each public name → the module that defines it, imported at first use: ``%load_ext repro``
#: reaches this package, and the notebook host alone imports asyncio, ssl and subprocess
#: (about 20 ms and 4 MiB in a fresh process), which only ``repro verify NOTEBOOK`` needs.
_WHERE = {
    "verify_cell": "cell",
    "verify": "function",
    "NotebookReport": "notebook",
    "verify_notebook": "notebook",
    "DISPLAYED": "report",
    "DISPLAYS": "report",
    "PRINTED": "report",
    "Difference": "report",
    "VerifyReport": "report",
    "compare": "report",
    "ArgumentError": "start",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """The public name ``name``, from its module (imported once, then kept here)."""
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
