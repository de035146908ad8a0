"""``%%repro --verify`` and ``repro.verify``: true positives, no false positives, and the
kernel as after one ordinary run.

Every cell runs in a real IPython shell (the ``shell`` fixture), with real NumPy and torch.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from IPython.core.error import UsageError

import repro
from repro._verify import DISPLAYED, PRINTED, compare


def run(shell, cell: str):
    """Run ``cell``; return its ExecutionResult (failing the test on an unexpected error)."""
    result = shell.run_cell(cell, store_history=True)
    return result


def verdict(out: str) -> str:
    lines = [line for line in out.splitlines() if re.match(r"(NOT )?reproducible[:,]|cannot", line)]
    assert len(lines) == 1, out
    return lines[0]


# --- true positives ------------------------------------------------------------------


def test_unseeded_default_rng_is_flagged_naming_the_variable(shell, capsys) -> None:
    run(shell, "import numpy as np")
    run(shell, "%%repro 1 --verify\nnoise = np.random.default_rng().normal(size=1000)\nscale = 2")
    out = capsys.readouterr().out
    assert verdict(out) == "NOT reproducible: 1 of 2 outputs differs: noise"
    assert re.search(r"noise: ndarray float64 \(1000,\): 10\d\d? of 1000 elements differ", out)
    assert "first at (0,)" in out
    assert repro.state().last_verify == verdict(out)
    # The cause, from the cell's code, and its fix.
    assert "  cause: a generator seeded from the operating system (`default_rng()`): " in out
    assert "repro.rng()" in out


def test_time_is_flagged_and_three_runs_are_compared(shell, capsys) -> None:
    run(shell, "import time")
    run(shell, "%%repro 1 --verify 3\nstarted = time.time()\nlabel = 'run'")
    out = capsys.readouterr().out
    assert verdict(out) == "NOT reproducible: 1 of 2 outputs differs: started"
    assert "started: " in out and " → " in out


def test_a_cell_whose_only_output_is_displayed_is_compared(shell, capsys) -> None:
    run(shell, "import numpy as np")
    run(shell, "%%repro 1 --verify\nnp.random.default_rng().random(3)")
    out = capsys.readouterr().out
    assert verdict(out) == f"NOT reproducible: 1 of 1 output differs: {DISPLAYED}"
    # Shown once: the extra run's display was captured, the ordinary run's shown.
    assert out.count("array([") == 1


def test_printed_output_is_compared(shell, capsys) -> None:
    run(shell, "import time")
    run(shell, "%%repro 1 --verify\nprint('took', time.perf_counter_ns())")
    out = capsys.readouterr().out
    assert verdict(out) == f"NOT reproducible: 1 of 1 output differs: {PRINTED}"
    # Shown once, then once per run in the difference: where the texts part, never a shared
    # prefix on both sides.
    assert out.count("took ") == 1 + 2
    line = next(line for line in out.splitlines() if line.startswith(f"  {PRINTED}:"))
    first, second = re.fullmatch(rf"  {PRINTED}: line 1, column \d+: (.*) → (.*)", line).groups()
    assert first != second
    assert "cause: a value that varies by nature" in out and "`time.perf_counter_ns(`" in out


def test_a_plot_is_compared_by_its_pixels_and_each_run_draws_on_its_own(shell, capsys) -> None:
    """pyplot keeps a current figure: the extra run's figure is closed, so the ordinary run
    draws on a figure of its own (one line, not two), and each run's figure is compared."""
    run(shell, "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt")
    run(shell, "import numpy as np\nplt.close('all')")
    plt = shell.user_ns["plt"]
    run(shell, "%%repro 0 --verify\nlines = plt.plot([1, 2, 3])")
    out = capsys.readouterr().out
    assert verdict(out) == "reproducible: 2 outputs identical over 2 runs", out
    assert plt.get_fignums() == [1]  # the ordinary run's, left for the backend to show
    assert len(plt.figure(1).axes[0].lines) == 1
    plt.close("all")
    run(shell, "%%repro 0 --verify\nplt.plot(np.random.default_rng().random(5));")
    out = capsys.readouterr().out
    assert verdict(out) == "NOT reproducible: 1 of 1 output differs: figure 1", out
    assert re.search(r"figure 1: ndarray uint8 \(\d+, \d+, 4\): \d+ of \d+ elements differ", out)
    plt.close("all")  # as the inline backend does after each cell
    run(shell, "%%repro 0 --verify\nplt.plot(np.random.random(5));")  # seeded: the same
    assert verdict(capsys.readouterr().out) == "reproducible: 1 output identical over 2 runs"
    plt.close("all")
    run(shell, "%%repro 0 --verify\npass")
    assert verdict(capsys.readouterr().out).startswith("reproducible, with nothing to compare")


def test_a_trailing_semicolon_shows_nothing_as_in_a_plain_cell(shell, capsys) -> None:
    run(shell, "%%repro 0\n40 + 2;")
    run(shell, "%%repro 0\n40 + 1")
    out = capsys.readouterr().out
    assert "42" not in out and "41" in out, out
    run(shell, "%%repro 0 --verify\nimport time\ntime.time();")  # not shown: not compared
    assert verdict(capsys.readouterr().out).startswith("reproducible, with nothing to compare")


def test_a_progress_line_and_chunked_prints_pass(shell, capsys) -> None:
    run(shell, "import sys, time")
    cell = (
        "%%repro 1 --verify\n"
        "for i in range(5):\n"
        "    print(f'\\r{20 * (i + 1)}%', end='')\n"
        "    sys.stdout.flush()\n"
        "    time.sleep(0.01)\n"
        "print()\n"
        "for step in range(3):\n"
        "    print('step', step, end=' ')\n"
        "    print('loss', 1 / (step + 1))"
    )
    run(shell, cell)
    out = capsys.readouterr().out
    assert verdict(out) == "reproducible: 3 outputs identical over 2 runs", out


def test_a_training_cell_verifies_twice_in_a_row(shell, capsys) -> None:
    # The second time, `loss` (a non-leaf tensor) is in the namespace: the cell binds it
    # before reading it, so it is no input, and nothing has to copy it.
    run(
        shell,
        "import torch\ntorch.manual_seed(0)\nx, y = torch.randn(16, 3), torch.randn(16, 1)",
    )
    cell = (
        "%%repro 0 --verify 3\n"
        "model = torch.nn.Linear(3, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for step in range(20):\n"
        "    loss = ((model(x) - y) ** 2).mean()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        "print(round(loss.item(), 6))"
    )
    for _ in range(2):
        assert run(shell, cell).success
        out = capsys.readouterr().out
        assert verdict(out).startswith("reproducible: ") and "over 3 runs" in out, out
    assert not shell.user_ns["loss"].is_leaf
    # A cell that does read a non-leaf tensor starts each run from a detached copy of it.
    run(shell, "%%repro 0 --verify\ndoubled = loss.detach() * 2")
    assert verdict(capsys.readouterr().out) == "reproducible: 1 output identical over 2 runs"


def test_a_mutated_input_is_compared(shell, capsys) -> None:
    run(shell, "import numpy as np\nbuffer = np.zeros(4)")
    run(shell, "%%repro 1 --verify\nbuffer += np.random.default_rng().random(4)")
    assert verdict(capsys.readouterr().out) == "NOT reproducible: 1 of 1 output differs: buffer"


# --- no false positives, and the kernel after one run ----------------------------------


def test_a_seeded_cell_passes_and_shows_its_output_once(shell, capsys) -> None:
    run(shell, "import numpy as np, torch")
    result = run(
        shell, "%%repro 5 --verify\nx = np.random.rand(3)\nt = torch.rand(2)\nprint('hi')\nx.sum()"
    )
    out = capsys.readouterr().out
    assert result.success
    assert verdict(out) == "reproducible: 4 outputs identical over 2 runs"
    assert out.count("hi\n") == 1 and out.count("Out[") == 1
    with repro.scope(5):
        expected = np.random.rand(3)
    assert np.array_equal(shell.user_ns["x"], expected)


def test_one_optimizer_step_on_an_earlier_model_passes_and_leaves_exactly_one_step(
    shell, capsys
) -> None:
    run(
        shell,
        "import torch\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), "
        "torch.nn.Linear(8, 1))\n"
        "opt = torch.optim.Adam(model.parameters(), lr=0.1)\n"
        "data = torch.randn(16, 4)",
    )
    ns = shell.user_ns
    # The reference: the same step on copies, made separately, under the same seed.
    ref_model, ref_opt = copy.deepcopy((ns["model"], ns["opt"]))
    with repro.scope(7):
        loss = ref_model(ns["data"]).pow(2).mean()
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
    step = "loss = model(data).pow(2).mean()\nopt.zero_grad()\nloss.backward()\nopt.step()"
    run(shell, f"%%repro 7 --verify\n{step}")
    out = capsys.readouterr().out
    # loss, and the model and optimizer the cell changed in place (dropout drew from torch's RNG).
    assert verdict(out) == "reproducible: 3 outputs identical over 2 runs"
    for mine, ref in zip(ns["model"].parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(mine, ref)
    assert ns["opt"].state_dict()["state"][0]["step"] == 1
    assert torch.equal(ns["loss"], loss)


def test_the_namespace_is_as_after_one_run_and_rngs_are_restored(shell, capsys) -> None:
    run(shell, "import numpy as np\ncount = 1\nitems = []")
    before = np.random.get_state()[1].copy()
    run(shell, "%%repro 3 --verify 4\ncount = count + 1\nitems.append(np.random.rand())")
    assert verdict(capsys.readouterr().out) == "reproducible: 2 outputs identical over 4 runs"
    assert shell.user_ns["count"] == 2 and len(shell.user_ns["items"]) == 1
    assert np.array_equal(np.random.get_state()[1], before)  # as after a plain %%repro


def test_keep_leaves_the_seed_applied(shell, capsys) -> None:
    run(shell, "import numpy as np")
    run(shell, "%%repro 11 --keep --verify\nv = np.random.rand()")
    assert verdict(capsys.readouterr().out).startswith("reproducible")
    assert repro.state().seed == 11
    np.random.seed(11)
    np.random.rand()
    assert shell.user_ns["v"] == np.random.RandomState(11).rand()


def test_an_uncopyable_input_is_said_and_the_cell_runs_once(shell, capsys) -> None:
    run(shell, "numbers = (i for i in range(5))")
    run(shell, "%%repro 1 --verify\nfirst = next(numbers)")
    out = capsys.readouterr().out
    assert verdict(out).startswith("cannot verify: numbers (generator) cannot be copied")
    assert shell.user_ns["first"] == 0 and next(shell.user_ns["numbers"]) == 1


def test_a_cell_that_raises_shows_its_error_once(shell, capsys) -> None:
    run(shell, "%%repro 1\ncounter = 1\n1 / 0")
    plain = capsys.readouterr().out
    result = run(shell, "%%repro 1 --verify\ncounter = 1\n1 / 0")
    out = capsys.readouterr().out
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert out.count("ZeroDivisionError") == plain.count("ZeroDivisionError") > 0
    assert "----> 3 1 / 0" in re.sub(r"\x1b\[[0-9;]*m", "", out)  # the user's line, as numbered


def test_bad_arguments_are_usage_errors(shell) -> None:
    with pytest.raises(UsageError, match="runs must be an integer >= 2"):
        shell.run_cell_magic("repro", "1 --verify 1", "never_bound = 1")
    with pytest.raises(UsageError, match="--verify is for the %%repro cell magic"):
        shell.run_line_magic("repro", "1 --verify")
    with pytest.raises(UsageError, match="nonsense"):
        shell.run_cell_magic("repro", "1 -p nonsense --verify", "never_bound = 1")
    assert "never_bound" not in shell.user_ns


# --- the function -------------------------------------------------------------------


def test_verify_a_function() -> None:
    def draw(n: int) -> np.ndarray:
        return np.random.default_rng().random(n)

    report = repro.verify(draw, 5)
    assert not report and report.reproducible is False
    assert report.differing == ("result",)
    (diff,) = report.differences
    assert (diff.differing, diff.total, diff.first_index) == (5, 5, (0,))
    assert "NOT reproducible" in report._repr_html_() and str(report).endswith(report.verdict)
    assert report.as_dict()["differences"][0]["output"] == "result"

    seeded = repro.verify(lambda: torch.rand(3), runs=3, seed=4)
    assert seeded and seeded.reproducible is True
    assert seeded.verdict == "reproducible: 1 output identical over 3 runs"


def test_verify_runs_on_copies_and_compares_mutated_arguments() -> None:
    data = [1.0]

    def grow(values: list) -> None:
        values.append(float(np.random.default_rng().random()))

    report = repro.verify(grow, data)
    assert data == [1.0]
    assert report.differing == ("args[0]",)
    # A short container is shown by value: both lists, whole.
    shown = re.search(r"args\[0\]: \[1\.0, ([\d.]+)\] → \[1\.0, ([\d.]+)\]", str(report))
    assert shown and shown[1] != shown[2], str(report)

    long = [float(i) for i in range(50)]
    report = repro.verify(grow, long)
    assert report.differences[0].where == "[50]"  # too long to show whole: the leaf that differs


def test_verify_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="runs"):
        repro.verify(print, runs=1)
    with pytest.raises(TypeError, match="fn must be callable"):
        repro.verify(3)
    with pytest.raises(ZeroDivisionError):  # every run raised: the error is the answer
        repro.verify(lambda: 1 / 0)


def test_compare_describes_the_first_difference() -> None:
    d = compare("a", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 3.5]))
    assert d is not None
    assert (d.what, d.differing, d.total, d.max_abs, d.first_index) == ("values", 2, 3, 0.5, (1,))
    assert compare("a", np.zeros(2), np.zeros(2)) is None
    assert compare("a", np.zeros(2), np.zeros(3)).what == "dtype/shape"
    assert compare("a", np.array([0.0]), np.array([-0.0])).what == "bits"
    inner = compare("m", {"w": torch.ones(2), "b": 1}, {"w": torch.tensor([1.0, 0.0]), "b": 2})
    assert (inner.where, inner.leaves) == ("['w']", 2)


def test_displayed_outputs_are_compared_and_shown_once(shell, capsys) -> None:
    run(shell, "import numpy as np\nfrom IPython.display import display")
    run(shell, "%%repro 1 --verify\ndisplay(np.random.default_rng().random(2))\nlabel = 'x'")
    out = capsys.readouterr().out
    assert verdict(out) == "NOT reproducible: 1 of 2 outputs differs: display() outputs"
    assert out.count("array([") == 1 + 2  # shown once, then in the difference line
    run(shell, "%%repro 1 --verify\ndisplay(np.random.rand(2))")
    out = capsys.readouterr().out
    assert verdict(out) == "reproducible: 1 output identical over 2 runs"
    assert out.count("array([") == 1


def test_a_value_that_cannot_be_read_is_said(shell, capsys) -> None:
    run(shell, "import torch\nghost = torch.empty(3, device='meta')")
    run(shell, "%%repro 1 --verify\nshape = ghost.shape\nghost.add_(1)\nsize = 3")
    out = capsys.readouterr().out
    assert verdict(out).startswith("cannot verify: ghost: ")
    assert shell.user_ns["size"] == 3  # the cell still ran, once


def test_a_cell_that_raises_only_in_the_ordinary_run_is_flagged(shell, capsys) -> None:
    # A closure is shared between the runs (a documented limit): its hidden counter makes
    # the second execution raise, as a flaky cell would.
    run(
        shell,
        "def make():\n    n = [0]\n    def flaky():\n        n[0] += 1\n        assert n[0] < 2\n"
        "    return flaky\nflaky = make()",
    )
    result = run(shell, "%%repro 1 --verify\nflaky()")
    captured = capsys.readouterr()
    assert isinstance(result.error_in_exec, AssertionError)
    assert "NOT reproducible: run 2 raised AssertionError, run 1 did not" in captured.err
    assert repro.state().last_verify.startswith("NOT reproducible: run 2 raised")


def test_verify_holds_at_most_one_extra_copy_of_the_outputs(shell, capsys) -> None:
    import tracemalloc

    run(shell, "import numpy as np\nbig = np.zeros(4_000_000)")  # 32 MB, trained in place
    size = shell.user_ns["big"].nbytes
    peaks = {}
    for runs in (2, 4):
        tracemalloc.start()
        try:
            run(shell, f"%%repro 1 --verify {runs}\nbig += np.random.rand(1).item()")
            _, peaks[runs] = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        out = capsys.readouterr().out
        assert verdict(out) == f"reproducible: 1 output identical over {runs} runs"
    # Two runs: one copy (the extra run's, kept to compare with the ordinary run). More
    # runs: each later extra run needs its own copy while the first one is kept.
    assert size < peaks[2] < 1.25 * size
    assert peaks[4] < 2.25 * size


def test_a_function_changing_a_global_runs_on_copies_in_the_extra_runs(shell, capsys) -> None:
    run(
        shell,
        "import numpy as np\nlog = []\n"
        "def draw():\n    return np.random.rand()\n"
        "def record(x):\n    log.append(draw() + x)",
    )
    run(shell, "%%repro 3 --verify 3\nrecord(1)")
    out = capsys.readouterr().out
    assert verdict(out) == "reproducible: 1 output identical over 3 runs"  # log, via record
    assert len(shell.user_ns["log"]) == 1  # one ordinary run's worth
    assert "record, draw ran on copies of the globals they use" in out


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("loss = f(x)\nloss.backward()", {"f", "x"}),
        ("x = x + 1", {"x"}),
        ("total += step", {"total", "step"}),
        ("if ready:\n    z = 1\nprint(z)", {"ready", "print", "z"}),  # z unbound if not ready
        ("if a:\n    z = 1\nelse:\n    z = 2\nz", {"a"}),
        (
            "for step in range(3):\n    loss = model(x)\n    loss.backward()\nloss.item()",
            {"range", "model", "x"},  # a loop's body is taken to run at least once
        ),
        ("import numpy as np\nnp.zeros(3)", set()),
        ("def f():\n    return w\nw = 1\nf()", {"w"}),  # read when called: counted
        ("with open(p) as fh:\n    text = fh.read()\ntext", {"open", "p"}),
    ],
)
def test_inputs_are_the_names_read_before_they_are_bound(code: str, expected: set) -> None:
    import ast

    from repro._verify.cell import inputs

    assert set(inputs(ast.parse(code).body)) == expected


def test_a_loader_built_with_workers_in_an_earlier_cell_is_named_where_it_is_used() -> None:
    from repro._verify.advice import DATALOADER, loader_in_use

    earlier = "ds = Noisy()\nloader = DataLoader(ds, batch_size=4,\n    num_workers=2)\n"
    cause = loader_in_use(earlier, "batches = [b for b in loader]")
    assert cause is not None and cause.name == DATALOADER.name and "num_workers=2" in str(cause)
    assert loader_in_use(earlier, "batches = [b for b in other]") is None  # not this loader
    assert loader_in_use(earlier.replace("num_workers=2", "num_workers=0"), "list(loader)") is None
