"""Why it diverged: the tracer names the first torch op that differs, its line and its cause.

Every case runs real torch (CPU) ops through ``repro.verify(..., trace=True)`` or
``%%repro --verify --trace`` in a real IPython shell. The nondeterministic kernel is
``index_put_(..., accumulate=True)`` on two threads, which sums in another order from
run to run on this CPU; when a machine happens to give equal sums every time, the test
says so and skips rather than pass on nothing.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from IPython.core.error import UsageError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from tests.helpers import run_python

import repro
from repro._verify import trace as tracer
from repro._verify.notebook import verify_notebook
from repro._verify.trace import (
    NONDETERMINISTIC,
    OUTSIDE,
    RANDOM,
    first_op,
    from_data,
    to_data,
    tracing,
)
from repro.cli import main

ATTEMPTS = 10


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def line_of(fn: Callable[..., object], text: str) -> str:
    """``file:lineno`` of the line of ``fn``'s source that contains ``text`` (found, not typed)."""
    lines, start = inspect.getsourcelines(fn)
    matches = [start + i for i, line in enumerate(lines) if text in line]
    assert len(matches) == 1, (text, matches)
    return f"{inspect.getsourcefile(fn)}:{matches[0]}"


def differing_report(fn: Callable[[], object]) -> repro.VerifyReport:
    """A traced verify of ``fn`` whose runs differed (a few tries: a race can tie)."""
    for _ in range(ATTEMPTS):
        report = repro.verify(fn, trace=True)
        if report.reproducible is False:
            return report
    pytest.skip(f"the runs agreed {ATTEMPTS} times on this machine: nothing to explain")


def accumulate() -> torch.Tensor:
    x = torch.zeros(1000)
    idx = torch.randint(0, 1000, (10**6,))
    values = torch.rand(10**6)
    x.index_put_((idx,), values, accumulate=True)
    doubled = x * 2  # differs too, only because x does: not blamed
    return doubled.sum()


def test_a_nondeterministic_kernel_is_named_with_its_line_and_later_ops_are_not_blamed(
    two_threads: None,
) -> None:
    report = differing_report(accumulate)
    op = report.first_op
    assert op is not None, report.trace_note
    assert op.op == "aten.index_put_.default"
    assert op.kind == NONDETERMINISTIC and op.inputs_equal and not op.backward
    assert op.line == line_of(accumulate, "index_put_")
    assert op.code == "x.index_put_((idx,), values, accumulate=True)"
    assert op.later >= 2  # the product and the sum differ as well, and are only counted
    assert op.also == ()  # their inputs differed: consequences, not causes
    # The explanation gives torch's way out as measured on CPU: debug makes it deterministic.
    assert "deterministic implementation on CPU" in op.explanation
    text = str(report)
    assert text.startswith("first differing op: aten.index_put_.default")
    assert text.splitlines()[-1].startswith("NOT reproducible")
    assert report._repr_html_().index("repro-first-op") < report._repr_html_().index("NOT")
    assert report.as_dict()["first_op"]["kind"] == NONDETERMINISTIC


def test_the_debug_profile_makes_index_put_repeat_on_cpu_as_the_explanation_says(
    two_threads: None,
) -> None:
    with repro.scope(0, "debug"):
        reports = [repro.verify(accumulate, trace=True) for _ in range(3)]
    assert all(report.reproducible for report in reports), [str(r) for r in reports]
    assert all(report.first_op is None and report.trace_note is None for report in reports)


def own_generator() -> torch.Tensor:
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))
    noise = torch.rand(100, generator=gen)
    return noise * 2


def test_a_draw_from_a_generator_seeded_from_the_os_is_a_random_draw() -> None:
    report = repro.verify(own_generator, trace=True)
    op = report.first_op
    assert op is not None and op.kind == RANDOM
    assert op.op.startswith("aten.rand.")
    assert op.line == line_of(own_generator, "torch.rand(")
    assert not op.inputs_equal  # the generator's state is one of its inputs
    assert "torch.Generator of your own" in op.explanation
    assert op.later == 1  # noise * 2


def python_random() -> torch.Tensor:
    scale = random.Random().random()  # an unseeded instance of Python's random
    return torch.ones(3) * scale


def numpy_unseeded() -> torch.Tensor:
    batch = np.random.default_rng().normal(size=3)
    return torch.from_numpy(batch) + 1


@pytest.mark.parametrize(
    ("fn", "text", "said"),
    [
        (python_random, "torch.ones(3) * scale", "a Python value that differed"),
        (numpy_unseeded, "torch.from_numpy(batch)", "a tensor that no torch op"),
    ],
)
def test_values_from_outside_torch_are_named_as_such(
    fn: Callable[[], object], text: str, said: str
) -> None:
    report = repro.verify(fn, trace=True)
    op = report.first_op
    assert op is not None and op.kind == OUTSIDE and not op.inputs_equal
    assert op.line == line_of(fn, text)
    assert said in op.explanation and "repro.rng()" in op.explanation


class Gather(torch.autograd.Function):
    """x[idx] whose backward accumulates with index_put_ (nondeterministic on two threads)."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(idx)  # type: ignore[attr-defined]
        ctx.size = x.shape[0]  # type: ignore[attr-defined]
        return x[idx]

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (idx,) = ctx.saved_tensors  # type: ignore[attr-defined]
        out = torch.zeros(ctx.size)  # type: ignore[attr-defined]
        out.index_put_((idx,), grad, accumulate=True)
        return out, None


def gather_backward() -> torch.Tensor:
    weights = torch.rand(1000, requires_grad=True)
    idx = torch.randint(0, 1000, (10**6,))
    picked = Gather.apply(weights, idx)
    (picked * torch.rand(10**6)).sum().backward()
    return weights.grad


def test_a_divergence_in_backward_is_named_with_the_forward_line(two_threads: None) -> None:
    report = differing_report(gather_backward)
    op = report.first_op
    assert op is not None, report.trace_note
    assert op.op == "aten.index_put_.default" and op.backward and op.node == "GatherBackward"
    assert op.kind == NONDETERMINISTIC and op.inputs_equal
    assert op.line == line_of(gather_backward, "Gather.apply(")  # the forward line
    assert op.called_from == line_of(Gather.backward, "index_put_")  # your backward's line
    assert str(op).startswith(
        f"first differing op: aten.index_put_.default (backward of {op.line})"
    )


def train_mlp() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    scratch = torch.empty(16)  # uninitialized memory: never compared by its bytes
    scratch.fill_(1.0)
    for _ in range(3):
        optimizer.zero_grad()
        view = model(x)[:, :1].t()  # views and in-place ops on views
        view.mul_(1.0)
        torch.nn.functional.cross_entropy(model(x) + scratch[:2], y).backward()
        optimizer.step()
    return model


def test_a_reproducible_function_traced_twice_has_identical_traces() -> None:
    with repro.scope(5), tracing() as first:
        train_mlp()
    with repro.scope(5), tracing() as second:
        train_mlp()
    assert len(first.ops) > 100 and not first.truncated
    assert [op[0].name for op in first.ops] == [op[0].name for op in second.ops]
    found = first_op(first, second)
    assert isinstance(found, str) and found.startswith("every torch op")
    report = repro.verify(train_mlp, trace=True)
    assert report.reproducible and report.first_op is None and report.trace_note is None


def unusual_tensors() -> list[torch.Tensor]:
    with torch.inference_mode():
        frozen = torch.arange(6.0) * 2  # an inference tensor: no version counter
        frozen.add_(1)
    shape_only = torch.empty(3, 4, device="meta") + 1  # no data at all
    sparse = torch.eye(3).to_sparse() * 2
    complex_view = torch.view_as_complex(torch.ones(3, 2)).conj() * 1j
    return [frozen, shape_only.shape, sparse.to_dense(), complex_view]


def leaf_hashes(*tensors: torch.Tensor) -> list[int]:
    """The hash the tracer gives each tensor at first sight (the input of a clone)."""
    with tracing() as trace:
        for t in tensors:
            t.clone()
    return [op[tracer._INPUTS][0] for op in trace.ops]


def test_a_tensor_is_hashed_by_its_values_wherever_they_lie() -> None:
    values = torch.randn(64, 32)
    big = torch.zeros(3 * 64 * 32)
    big[100 : 100 + 64 * 32] = values.flatten()
    offset = big[100 : 100 + 64 * 32].view(64, 32)  # read where it lies, from an offset
    flipped = values.clone()
    flipped.view(torch.int32)[40, 7] ^= 1  # one bit of one float
    wide = torch.randn(64, 64)
    gapped = wide[:, ::2]  # not one block: read through a copy, gaps left out
    other_gaps = wide.clone()
    other_gaps[:, 1::2] = 7.0
    changed = wide.clone()
    changed[3, 4] += 1.0
    column_order = torch.empty_strided((64, 32), (1, 64)).copy_(values)
    a, b, c, d, e, e2, f, g, h = leaf_hashes(
        values,
        offset,
        flipped,
        values.t(),  # dense in another axis order: read where it lies
        values.t().contiguous().t(),
        column_order,
        gapped,
        other_gaps[:, ::2],
        changed[:, ::2],
    )
    assert a == b and a != c
    assert d != a  # the same values in another memory order and strides
    assert e == e2 and e != a  # the same values in column order: their own strides
    assert f == g and f != h
    assert leaf_hashes(values.t())[0] == d  # the same again in another trace


def test_inference_meta_sparse_and_complex_tensors_are_traced_without_a_crash() -> None:
    with tracing() as first:
        unusual_tensors()
    with tracing() as second:
        unusual_tensors()
    assert len(first.ops) >= 8
    assert isinstance(first_op(first, second), str)  # every op agreed
    assert repro.verify(unusual_tensors, trace=True).reproducible


def test_a_difference_outside_torch_is_a_sentence_and_the_verdict_stands() -> None:
    report = repro.verify(lambda: np.random.default_rng().random(3), trace=True)
    assert report.reproducible is False and report.differing == ("result",)
    assert report.first_op is None
    assert report.trace_note is not None and "outside torch's ops" in report.trace_note
    assert str(report).splitlines()[0] == f"trace: {report.trace_note}"


def test_the_thread_count_changes_a_float32_sum_and_the_sum_is_named() -> None:
    """Across machines: sum over 10**7 float32 differs between 1 and 2 threads on torch 2.13."""
    values = torch.rand(10**7, generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    traces = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with tracing() as recorded:
                total = values.sum()
            traces.append((recorded, total))
    finally:
        torch.set_num_threads(before)
    if torch.equal(traces[0][1], traces[1][1]):
        pytest.skip("this CPU sums 10**7 float32 alike on 1 and 2 threads")
    op = first_op(traces[0][0], traces[1][0])
    assert not isinstance(op, str)
    assert op.op == "aten.sum.default" and op.kind == NONDETERMINISTIC and op.inputs_equal
    assert "thread count" in op.explanation


def test_the_trace_stops_at_its_bound_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracer, "MAX_OPS", 5)
    with tracing() as first:
        for _ in range(10):
            torch.ones(3).add_(1)
    with tracing() as second:
        for _ in range(10):
            torch.ones(3).add_(1)
    assert len(first.ops) == 5 and first.untraced == 15 and first.truncated
    found = first_op(first, second)
    assert isinstance(found, str) and "the trace stops there" in found


def test_trace_must_be_a_bool_and_nothing_runs_otherwise() -> None:
    calls = []
    with pytest.raises(TypeError, match=r"^trace must be True or False, got str 'yes'$"):
        repro.verify(lambda: calls.append(1), trace="yes")
    assert calls == []


# --- the cell magic -----------------------------------------------------------------------


def test_the_cell_magic_names_the_first_op_and_its_cell_line(shell, capsys, two_threads) -> None:
    cell = (
        "x = torch.zeros(1000)\n"
        "idx = torch.randint(0, 1000, (10**6,))\n"
        "x.index_put_((idx,), torch.rand(10**6), accumulate=True)\n"
        "total = x.sum()\n"
    )
    shell.run_cell("import torch")
    for _ in range(ATTEMPTS):
        capsys.readouterr()
        result = shell.run_cell(f"%%repro 42 --verify 2 --trace\n{cell}")
        assert result.success
        out = capsys.readouterr().out
        if "NOT reproducible" in out:
            break
    else:
        pytest.skip(f"the runs agreed {ATTEMPTS} times on this machine: nothing to explain")
    first = out.splitlines()[0]
    assert first.startswith("first differing op: aten.index_put_.default (")
    # Named as IPython's tracebacks name a cell; line 4 counts the %%repro line, as shown.
    assert re.search(r"\(Cell In\[\d+\], line 4\): nondeterministic kernel$", first), first
    assert out.splitlines()[1].strip() == "x.index_put_((idx,), torch.rand(10**6), accumulate=True)"


def test_trace_without_verify_is_one_usage_error(shell) -> None:
    for line in ("%%repro 42 --trace\nnot_run = 1", "%repro --trace"):
        result = shell.run_cell(line)
        assert isinstance(result.error_in_exec, UsageError), line
    assert "not_run" not in shell.user_ns


# --- no torch -----------------------------------------------------------------------------


def test_without_torch_a_traced_verify_says_so_in_a_sentence() -> None:
    out = run_python(
        """
        import sys
        class Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Missing())
        import random
        import repro
        report = repro.verify(lambda: random.Random().random(), trace=True)
        print(report.reproducible, report.first_op, report.trace_note, sep="|")
        """
    )
    assert out.strip() == "False|None|torch is not installed, so no op could be traced"


# --- GPU (skipped without a CUDA device) --------------------------------------------------


def scatter_on_cuda() -> torch.Tensor:
    x = torch.zeros(100, device="cuda")
    idx = torch.randint(0, 100, (10**6,), device="cuda")
    x.scatter_add_(0, idx, torch.rand(10**6, device="cuda"))
    return x.sum()


def index_add_on_cuda() -> torch.Tensor:
    x = torch.zeros(100, device="cuda")
    idx = torch.randint(0, 100, (10**6,), device="cuda")
    x.index_add_(0, idx, torch.rand(10**6, device="cuda"))
    return x.sum()


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("fn", "name"), [(scatter_on_cuda, "scatter_add_"), (index_add_on_cuda, "index_add_")]
)
def test_cuda_atomics_are_named_under_search(fn: Callable[[], object], name: str) -> None:
    with repro.scope(0, "search"):
        report = differing_report(fn)
    op = report.first_op
    assert op is not None and op.op.startswith(f"aten.{name}") and op.kind == NONDETERMINISTIC
    assert op.inputs_equal and "deterministic implementation on CUDA" in op.explanation


@pytest.mark.gpu
@pytest.mark.parametrize("fn", [scatter_on_cuda, index_add_on_cuda])
def test_cuda_atomics_repeat_under_debug(fn: Callable[[], object]) -> None:
    # torch 2.13 lists scatter_add_ and index_add_ on CUDA among the ops debug makes
    # deterministic (they do not raise): the explanation above says so.
    with repro.scope(0, "debug"):
        assert all(repro.verify(fn, trace=True) for _ in range(3))


def cumsum_on_cuda() -> torch.Tensor:
    return torch.rand(10**6, device="cuda").cumsum(0)


@pytest.mark.gpu
def test_a_cuda_op_without_a_deterministic_kernel_raises_under_debug_and_is_explained() -> None:
    from repro._diagnostics import explain

    with repro.scope(0, "debug"), pytest.raises(RuntimeError) as raised:
        cumsum_on_cuda()
    assert "has no deterministic implementation" in (explain(raised.value) or "")
    with repro.scope(0, "search"):
        report = repro.verify(cumsum_on_cuda, trace=True)
    if report.first_op is not None:
        assert "under the debug profile it raises" in report.first_op.explanation


# --- a notebook: repro verify NB --trace, --save --trace, --against ---------------------

THREADS = "REPRO_TEST_TRACE_THREADS"


def trace_notebook(path: Path) -> Path:
    """Cell 3 (markdown counted) draws from a generator seeded by the OS; cell 4 sums 10**7
    float32 on as many threads as the environment says."""
    cells = [
        new_markdown_cell("# Why it diverged"),
        new_code_cell(
            "import os\nimport torch\n"
            f"torch.set_num_threads(int(os.environ.get({THREADS!r}, '1')))\n"
            "torch.manual_seed(0)"
        ),
        new_code_cell(
            "gen = torch.Generator().manual_seed(int(os.environ.get('REPRO_TEST_GEN', '0'))"
            " or int.from_bytes(os.urandom(8), 'little'))\n"
            "noise = torch.rand(5, generator=gen)\nscaled = noise * 2"
        ),
        new_code_cell(
            "values = torch.rand(10**7, generator=torch.Generator().manual_seed(1))\n"
            "total = values.sum()"
        ),
    ]
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.mark.slow
def test_the_notebook_command_names_the_first_op_of_the_first_differing_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = trace_notebook(tmp_path / "diverges.ipynb")
    code = main(["verify", str(path), "--trace", "--json", "--jobs", "1"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["first_differing_cell"] == 3
    op = report["first_differing_op"]
    assert op["op"] == "aten.rand.generator" and op["kind"] == RANDOM
    assert op["cell"] == 3 and op["line"] == "cell 3, line 2"
    assert op["code"] == "noise = torch.rand(5, generator=gen)"
    assert op["inputs_equal"] is False


@pytest.mark.slow
def test_several_notebooks_are_traced_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`repro verify A B --trace` traces each notebook that differs (it once dropped --trace)."""
    steady = tmp_path / "steady.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), steady)
    path = trace_notebook(tmp_path / "diverges.ipynb")
    code = main(["verify", str(steady), str(path), "--trace", "--json", "--jobs", "1"])
    first, second = json.loads(capsys.readouterr().out)
    assert code == 1 and first["reproducible"] is True and first["first_differing_op"] is None
    op = second["first_differing_op"]
    assert op is not None and op["op"] == "aten.rand.generator" and op["line"] == "cell 3, line 2"


@pytest.mark.slow
def test_save_trace_then_against_names_the_sum_that_the_thread_count_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = trace_notebook(tmp_path / "threads.ipynb")
    recording = tmp_path / "one-thread.json"
    monkeypatch.setenv("REPRO_TEST_GEN", "5")  # cell 3 repeats: only the thread count differs
    monkeypatch.setenv(THREADS, "1")
    saved = verify_notebook(path, runs=2, jobs=1, save=recording, trace=True)
    assert saved.reproducible, str(saved)
    cells = json.loads(recording.read_text())["cells"]
    assert all(cell["trace"] is not None for cell in cells)
    assert len(recording.read_text()) < 100 * sum(len(c["trace"]["ops"]) for c in cells) + 20_000
    monkeypatch.setenv(THREADS, "2")
    report = verify_notebook(path, against=recording, trace=True)
    if report.reproducible:
        pytest.skip("this CPU sums 10**7 float32 alike on 1 and 2 threads")
    assert report.first == 4
    op = report.first_op
    assert op is not None, report.trace_note
    assert op.op == "aten.sum.default" and op.kind == NONDETERMINISTIC and op.inputs_equal
    assert op.line == "cell 4, line 2" and op.code == "total = values.sum()"
    assert str(report).startswith("first differing op: aten.sum.default (cell 4, line 2)")


def test_an_altered_recorded_trace_names_the_op_whose_inputs_were_equal() -> None:
    """The comparison --against makes, on a trace turned into data and two digests altered."""
    with tracing() as recorded:
        a = torch.ones(4)
        b = a * 3
        c = b.sum()
    data = to_data(recorded)
    altered = json.loads(json.dumps(data))
    names = data["names"]
    index = next(i for i, op in enumerate(altered["ops"]) if names[op[0]] == "aten.mul.Tensor")
    last = len(altered["ops"]) - 1  # the sum: altered too, its inputs left equal
    for i in (index, last):
        altered["ops"][i][7] = format(int(altered["ops"][i][7], 16) ^ 1, "016x")
    op = first_op(from_data(data), from_data(altered))
    assert not isinstance(op, str)
    assert op.op == "aten.mul.Tensor" and op.inputs_equal and op.kind == NONDETERMINISTIC
    assert op.code == "b = a * 3" and c.item() == 12
    assert op.later == 1 and len(op.also) == 1 and op.also[0].startswith("aten.sum.default at ")
    assert "later, also on equal inputs: aten.sum.default at " in str(op)
    with pytest.raises(ValueError, match=r"^not a repro trace"):
        from_data({"names": []})
