"""Faults inside a ``%%repro`` cell: whatever ends the cell, the state it found comes back.

Each fault (an exception, ``KeyboardInterrupt``, ``sys.exit``, a nested ``%%repro``
that fails, and the user changing flags and variables before failing) runs as a real
cell in a real ``InteractiveShell`` from many starting states (seeded or not, each
profile, RNGs moved). After every one the RNG states, backend flags, environment and
session are exactly what they were, and the traceback shows the user's lines, not
repro's or IPython's. The count of faults injected is recorded (tests/reliability.py).
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from IPython.utils.capture import capture_output
from tests.reliability import differences, kernel_state, record

import repro

# IPython says "To exit: use 'exit', 'quit', or Ctrl-D." after each sys.exit in a cell.
pytestmark = pytest.mark.filterwarnings("ignore:To exit:UserWarning")

ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: What the user's cell does before it fails: move every RNG, flip flags and variables.
MESS = """\
import os, random
import numpy as np
import torch
random.random(); np.random.rand(3); torch.rand(3)
torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
os.environ["PYTHONHASHSEED"] = "999"
os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
"""

#: name -> (cell, the exception the cell ends with, the user's line the traceback must show)
FAULTS: dict[str, tuple[str, type[BaseException], str | None]] = {
    "raise": (
        "%%repro 42 -p debug\n" + MESS + "raise ValueError('boom in the user cell')",
        ValueError,
        "raise ValueError('boom in the user cell')",
    ),
    "raise in a function": (
        "%%repro 7\n" + MESS + "def step():\n    return 1 / 0\nstep()",
        ZeroDivisionError,
        "return 1 / 0",
    ),
    "KeyboardInterrupt": (
        "%%repro 3 -p production\n" + MESS + "raise KeyboardInterrupt",
        KeyboardInterrupt,
        "raise KeyboardInterrupt",
    ),
    "sys.exit(0)": ("%%repro 5\n" + MESS + "import sys\nsys.exit(0)", SystemExit, None),
    "sys.exit('bye')": ("%%repro 5 -d\n" + MESS + "import sys\nsys.exit('bye')", SystemExit, None),
    "nested, inner raises": (
        "%%repro 1 -p final\n%%repro 2 -p debug\n" + MESS + "raise RuntimeError('inner cell')",
        RuntimeError,
        "raise RuntimeError('inner cell')",
    ),
    "nested, inner interrupted": (
        "%%repro 1\n%%repro 9 -p production\n" + MESS + "raise KeyboardInterrupt",
        KeyboardInterrupt,
        "raise KeyboardInterrupt",
    ),
    "nested, completes": (
        "%%repro 1 -p debug\n%%repro 2 -p production\n" + MESS + "x = 1",
        type(None),
        None,
    ),
    "deterministic op refused": (
        # torch raises for an op without a deterministic implementation under debug;
        # on CPU none is refused, so the cell raises the same way itself.
        "%%repro 11 -p debug\n"
        + MESS
        + "raise RuntimeError('index_add_ does not have a deterministic implementation')",
        RuntimeError,
        "index_add_ does not have a deterministic implementation",
    ),
}

#: The states a fault starts from: (seed or None, profile or None, draws before the cell).
STARTS = [(None, None, 0), (5, None, 3), (123, "final", 0), (2**32 - 1, "production", 7)]
ROUNDS = 6


def _start(seed: int | None, profile: str | None, draws: int) -> None:
    import numpy as np
    import torch

    if seed is not None or profile is not None:
        repro.setup(seed, profile)
    for _ in range(draws):
        random.random()
        np.random.rand()
        torch.rand(1)


def _run(shell: Any, cell: str) -> tuple[Any, str]:
    with capture_output() as captured:
        result = shell.run_cell(cell)
    return result, ANSI.sub("", captured.stdout + captured.stderr)


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_restores_the_state_it_found(shell: Any, name: str) -> None:
    cell, expected, user_line = FAULTS[name]
    injected = 0
    for _ in range(ROUNDS):
        for seed, profile, draws in STARTS:
            _start(seed, profile, draws)
            before = kernel_state()
            result, shown = _run(shell, cell)
            injected += 1
            assert type(result.error_in_exec) is expected or (
                expected is type(None) and result.error_in_exec is None
            ), f"{name}: ended with {result.error_in_exec!r}\n{shown}"
            assert differences(before, kernel_state()) == [], (
                f"{name} from {(seed, profile, draws)}: not restored: "
                f"{differences(before, kernel_state())}"
            )
            if user_line is not None:
                assert user_line in shown, f"{name}: the traceback does not show the line:\n{shown}"
                # The user's cell, not repro's or IPython's machinery.
                assert "_magics.py" not in shown and "_session.py" not in shown, shown
                assert "interactiveshell.py" not in shown, shown
    record(
        f"faults-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}", faults_injected=injected
    )


def test_cells_after_a_fault_give_the_same_numbers(shell: Any) -> None:
    # The point of %%repro: a failed run, then the same cell again, gives the same output.
    cell = "%%repro 42 -p debug\nimport torch\n_out = torch.rand(4).tolist()"
    assert shell.run_cell(cell).success
    first = shell.user_ns["_out"]
    for fault in ("raise ValueError('x')", "raise KeyboardInterrupt", "import sys; sys.exit(1)"):
        assert not shell.run_cell(
            f"%%repro 42 -p debug\nimport torch\ntorch.rand(9)\n{fault}"
        ).success
        assert shell.run_cell(cell).success
        assert shell.user_ns["_out"] == first


def test_the_traceback_names_the_cell_by_its_prompt_number(shell: Any) -> None:
    """A raising ``%%repro`` cell is named ``In [N]`` with N its own prompt, as a plain cell is.

    IPython 8 and 9 move ``execution_count`` at different moments; the baseline is a plain
    raising cell in the same shell, so the test holds on either (history on, as in a notebook).
    """

    def number(cell: str) -> list[int]:
        with capture_output() as captured:
            shell.run_cell(cell, store_history=True)
        return [int(n) for n in re.findall(r"In\[(\d+)\]", ANSI.sub("", captured.stdout))]

    shell.run_cell("x = 1", store_history=True)
    [plain] = number("raise ValueError('plain')")
    assert number("%%repro 3\nraise ValueError('in repro')") == [plain + 1]
    assert number("%%repro 3\n%%repro 4\nraise ValueError('nested')") == [plain + 2]
