"""Deterministic-mode explanations: under the traceback torch's error caused, and once after a
warn-only ``%%repro`` cell.

torch 2.13 on CPU does raise for some ops in deterministic mode (``Tensor.put_`` with
``accumulate=False``, ``MaxUnpool``): the tests use those real errors and warnings. The cuBLAS
error exists only in CUDA builds: its message is tested as ATen's Context.cpp words it, and
the GPU-marked test triggers the real ones.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch

import repro
from repro import _diagnostics
from repro._diagnostics import explain, nondeterministic_ops, summarize_ops

#: ATen's Context.cpp (alertCuBLASConfigNotDeterministic), as raised by CUDA builds of torch 2.x.
CUBLAS_MESSAGE = (
    "Deterministic behavior was enabled with either `torch.use_deterministic_algorithms(True)` "
    "or `at::Context::setDeterministicAlgorithms(true)`, but this operation is not deterministic "
    "because it uses CuBLAS and you have CUDA >= 10.2. To enable deterministic behavior in this "
    "case, you must set an environment variable before running your PyTorch application: "
    "CUBLAS_WORKSPACE_CONFIG=:4096:8 or CUBLAS_WORKSPACE_CONFIG=:16:8. For more information, go "
    "to https://docs.nvidia.com/cuda/cublas/index.html#results-reproducibility"
)


def put_without_accumulate() -> None:
    torch.zeros(5).put_(torch.tensor([1, 1]), torch.tensor([1.0, 2.0]))


def max_unpool() -> None:
    pooled, indices = torch.nn.MaxPool1d(2, return_indices=True)(torch.ones(1, 1, 4))
    torch.nn.MaxUnpool1d(2)(pooled, indices)


def line_of(function: object) -> int:
    """The line of ``function``'s first statement (its body is one line or two)."""
    return function.__code__.co_firstlineno + 1  # type: ignore[attr-defined]


def test_functional_calls_are_named_as_called() -> None:
    pooled, indices = torch.nn.MaxPool1d(2, return_indices=True)(torch.ones(1, 1, 4))
    with repro.scope(1, "final"), nondeterministic_ops() as hits:
        torch.nn.functional.max_unpool1d(pooled, indices, 2)
    ((label, count),) = hits.items()
    assert label.startswith("torch.nn.functional.max_unpool1d (max_unpooling2d_forward_out) at ")
    assert label.endswith(": torch.nn.functional.max_unpool1d(pooled, indices, 2)") and count == 1


def strip(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_torchs_own_error_is_explained() -> None:
    with repro.scope(1, "debug"), pytest.raises(RuntimeError) as caught:
        put_without_accumulate()
    assert "does not have a deterministic implementation" in str(caught.value)  # torch's words
    hint = explain(caught.value)
    assert hint is not None and hint.startswith("repro: put_ has no deterministic implementation")
    assert "-p final" in hint and "--warn-only" in hint


def test_the_cublas_error_is_explained_also_when_wrapped() -> None:
    hint = explain(RuntimeError(CUBLAS_MESSAGE))
    assert hint is not None and "CUBLAS_WORKSPACE_CONFIG=:4096:8" in hint
    assert "repro kernel install" in hint
    try:  # torch.compile wraps it (BackendCompilerFailed): the cause is still found
        try:
            raise RuntimeError(CUBLAS_MESSAGE)
        except RuntimeError as inner:
            raise ValueError("backend='inductor' raised") from inner
    except ValueError as outer:
        assert explain(outer) == hint


def test_other_errors_get_no_explanation() -> None:
    assert explain(RuntimeError("CUDA out of memory")) is None
    assert explain(None) is None


def test_the_explanation_is_printed_under_the_untouched_traceback(shell, capsys) -> None:
    shell.run_cell("import torch\n%repro 1 -d -q")
    capsys.readouterr()
    result = shell.run_cell("torch.zeros(5).put_(torch.tensor([1]), torch.tensor([1.0]))")
    captured = capsys.readouterr()
    assert isinstance(result.error_in_exec, RuntimeError)
    assert "does not have a deterministic implementation" in strip(captured.out)  # traceback
    assert "repro: put_ has no deterministic implementation" in captured.err
    # Not for an ordinary error, and not twice after %reload_ext.
    shell.run_cell("%reload_ext repro")
    shell.run_cell("%reload_ext repro")
    shell.run_cell("torch.zeros(5).put_(torch.tensor([1]), torch.tensor([1.0]))")
    assert capsys.readouterr().err.count("repro: put_ has") == 1
    shell.run_cell("1 / 0")
    assert "repro:" not in capsys.readouterr().err


def test_unload_removes_the_explanations(shell, capsys) -> None:
    failing = f"raise RuntimeError('index_add_ {_diagnostics.NO_DETERMINISTIC}')"
    capsys.readouterr()
    shell.run_cell(failing)
    explained = capsys.readouterr().err
    assert "repro: index_add_" in explained
    shell.run_cell("%unload_ext repro")
    shell.run_cell(failing)
    assert "repro:" not in capsys.readouterr().err
    shell.run_cell("%load_ext repro")
    shell.run_cell("%reload_ext repro")
    shell.run_cell(failing)
    assert capsys.readouterr().err == explained  # once, however often it was loaded


def test_warn_only_ops_are_listed_once_after_the_cell(shell, capsys) -> None:
    shell.run_cell("import torch, warnings")
    capsys.readouterr()
    cell = (
        "%%repro 1 -p final\n"
        "for _ in range(3):\n"
        "    torch.zeros(5).put_(torch.tensor([1]), torch.tensor([1.0]))\n"
        "pooled, idx = torch.nn.MaxPool1d(2, return_indices=True)(torch.ones(1, 1, 4))\n"
        "torch.nn.MaxUnpool1d(2)(pooled, idx)\n"
        "warnings.warn('an unrelated warning')"
    )
    # Other warnings pass through at once (here to pytest's recorder, in Jupyter to stderr).
    with pytest.warns(UserWarning, match="an unrelated warning") as seen:
        assert shell.run_cell(cell).success
    assert [str(w.message) for w in seen] == ["an unrelated warning"]
    captured = capsys.readouterr()
    assert captured.out.count("repro: 2 nondeterministic operations ran in this cell") == 1
    # Named as the user called them, at the user's line: torch's kernel name only in brackets.
    put = "torch.zeros(5).put_(torch.tensor([1]), torch.tensor([1.0]))"
    assert f"  put_ at line 3: {put} (3 times)\n" in captured.out
    unpool = "torch.nn.MaxUnpool1d(2)(pooled, idx)"
    assert (
        f"  torch.nn.MaxUnpool1d (max_unpooling2d_forward_out) at line 5: {unpool}\n"
        in captured.out
    )
    assert "does not have a deterministic implementation" not in captured.err
    assert not torch.are_deterministic_algorithms_enabled()  # the cell's profile was restored


def test_collecting_outside_ipython() -> None:
    with repro.scope(1, "final"), nondeterministic_ops() as hits:
        put_without_accumulate()
        max_unpool()
        put_without_accumulate()
    put = "torch.zeros(5).put_(torch.tensor([1, 1]), torch.tensor([1.0, 2.0]))"[:57] + "..."
    put_line = f"put_ at test_diagnostics.py:{line_of(put_without_accumulate)} in " + (
        f"put_without_accumulate: {put}"
    )
    unpool_line = (
        "torch.nn.MaxUnpool1d (max_unpooling2d_forward_out) at "
        f"test_diagnostics.py:{line_of(max_unpool) + 1} in max_unpool: "
        "torch.nn.MaxUnpool1d(2)(pooled, indices)"
    )
    assert dict(hits) == {put_line: 2, unpool_line: 1}
    assert summarize_ops(hits).splitlines()[1:3] == [f"  {put_line} (2 times)", f"  {unpool_line}"]
    assert summarize_ops(hits.__class__()) is None
    with warnings.catch_warnings(record=True) as seen:  # outside the block: torch's warnings again
        warnings.simplefilter("always")
        with repro.scope(1, "final"):
            put_without_accumulate()
    assert any("does not have a deterministic implementation" in str(w.message) for w in seen)


@pytest.mark.gpu
def test_real_cuda_errors_are_explained() -> None:
    # On a CUDA machine: interpolate's backward and histc raise only on the GPU.
    x = torch.randn(1, 1, 8, 8, device="cuda", requires_grad=True)
    with repro.scope(1, "debug"), pytest.raises(RuntimeError) as caught:
        torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear").sum().backward()
    hint = explain(caught.value)
    assert hint is not None and "has no deterministic implementation" in hint
    with repro.scope(1, "debug"), pytest.raises(RuntimeError) as caught:
        torch.ones(10, device="cuda").histc()  # listed by torch as raising on CUDA
    assert explain(caught.value) is not None


def test_a_verified_cell_lists_the_ordinary_runs_ops_once(shell, capsys) -> None:
    shell.run_cell("import torch")
    capsys.readouterr()
    cell = (
        "%%repro 1 -p final --verify 3\n"
        "z = torch.zeros(5).put_(torch.tensor([1]), torch.tensor([1.0]))"
    )
    assert shell.run_cell(cell).success
    out = capsys.readouterr().out
    assert out.count("repro: 1 nondeterministic operation ran in this cell") == 1
    # once: the extra runs' warnings are not counted
    line = "z = torch.zeros(5).put_(torch.tensor([1]), torch.tensor([1.0]))"
    assert f"  put_ at line 2: {line[:57]}...\n" in out  # long lines are cut at 60
    assert "reproducible: 1 output identical over 3 runs" in out
