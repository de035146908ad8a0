"""Digests: equal exactly when the values are bitwise equal, and computed without copies.

Throughput is not tested here (a busy machine is not a slow hash): see
``benchmarks/bench_digest.py``.
"""

from __future__ import annotations

import copy
import tracemalloc

import numpy as np
import pytest
import torch

from helpers import run_python
from repro._verify import digest as _digest
from repro._verify.digest import describe, digest, strip_addresses


def test_equal_values_have_equal_digests_and_any_change_shows() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert digest(a) == digest(a.copy())
    b = a.copy()
    b[2, 3] = np.nextafter(b[2, 3], 100)  # one bit of one element
    assert digest(a) != digest(b)
    # The same bytes read as another dtype or shape are another value.
    assert digest(a) != digest(a.view(np.int64))
    assert digest(a) != digest(a.reshape(4, 3))
    assert digest(0.0) != digest(-0.0)
    assert digest(float("nan")) == digest(float("nan"))
    assert digest(1) != digest(1.0) != digest("1")


def test_strided_arrays_hash_as_their_contiguous_copies_in_small_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_digest, "CHUNK_BYTES", 64)  # many chunks, each of a few rows
    a = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    assert digest(a.T) == digest(np.ascontiguousarray(a.T))
    assert digest(a[::3, 1::2]) == digest(a[::3, 1::2].copy())
    t = torch.arange(40 * 30, dtype=torch.float32).reshape(40, 30)
    assert digest(t.T) == digest(t.T.contiguous())
    assert digest(t.T) != digest(t)


def test_a_strided_array_is_copied_one_chunk_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_digest, "CHUNK_BYTES", 2**20)  # 1 MB chunks of a 16 MB view
    a = np.ones((4096, 2048), dtype=np.float32)[:, ::2]
    tracemalloc.start()
    try:
        digest(a)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert a.nbytes == 16 * 2**20
    assert peak < 1.5 * 2**20  # one chunk, never the whole array


def test_device_path_chunks_through_one_host_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    # The GPU code path, run on CPU tensors (no GPU here): chunk by chunk through one host
    # buffer, it must give the same digest as hashing the tensor in place.
    import xxhash

    monkeypatch.setattr(_digest, "CHUNK_BYTES", 100)
    for t in (torch.arange(1000, dtype=torch.float64), torch.arange(600.0).reshape(30, 20).T):
        direct, chunked = xxhash.xxh3_128(), xxhash.xxh3_128()
        _digest._hash_tensor(direct, t, torch)
        chunked.update(f"tensor:{t.dtype}:{tuple(t.shape)}".encode())
        _digest._hash_device_tensor(chunked, t, torch)
        assert direct.hexdigest() == chunked.hexdigest()


@pytest.mark.gpu
def test_cuda_tensor_digest_equals_its_host_copy() -> None:
    t = torch.randn(1000, 300, device="cuda")
    assert digest(t) == digest(t.cpu())
    assert digest(t.T) == digest(t.T.cpu().contiguous())


def test_models_optimizers_and_containers() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.Adam(model.parameters())
    both = {"model": model, "opt": opt}
    before = digest(both)
    assert digest(copy.deepcopy(both)) == before
    model(torch.ones(5, 3)).sum().backward()
    after_backward = digest(both)  # gradients and BatchNorm's running stats moved
    assert after_backward != before
    opt.step()
    assert digest(both) != after_backward  # weights and Adam's state moved
    model.eval()
    assert describe(model) == "Sequential (7 tensors)"
    assert digest({1, 2, 3}) == digest({3, 2, 1})
    assert digest([1, 2]) != digest((1, 2, 3))
    cyclic: list = [1]
    cyclic.append(cyclic)
    assert digest(cyclic) == digest(cyclic)


def test_odd_dtypes_and_shapes() -> None:
    for t in (
        torch.tensor(1.5, dtype=torch.bfloat16),
        torch.zeros(0, 3),
        torch.tensor([1 + 2j]).conj(),
        torch.tensor([True, False]),
    ):
        assert digest(t) == digest(t.clone())
    assert digest(torch.tensor([1.0, -2.0]).neg()) == digest(torch.tensor([-1.0, 2.0]))
    assert digest(np.array(["a", None], dtype=object)) == digest(["a", None])


def test_random_generators_are_compared_by_state() -> None:
    rng = np.random.default_rng(1)
    twin = copy.deepcopy(rng)
    assert digest(rng) == digest(twin)
    rng.random()
    assert digest(rng) != digest(twin)
    g = torch.Generator().manual_seed(3)
    assert digest(g) == digest(torch.Generator().manual_seed(3))


def test_addresses_are_not_part_of_an_opaque_value() -> None:
    assert strip_addresses("<object object at 0x7f3a12cd>") == "<object object at 0x…>"
    assert digest(object()) == digest(object())


def test_digesting_imports_neither_numpy_nor_torch() -> None:
    out = run_python(
        """
        import sys
        from repro._verify.digest import digest
        digest({"a": [1, 2.5, "x", None], "b": (b"raw", {3})})
        print(sorted({"numpy", "torch"} & set(sys.modules)))
        """
    )
    assert out.strip() == "[]"


class Scaler:
    """A callable object with state, like a transform: walked through its attributes."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, x: float) -> float:
        return x * self.factor


def test_objects_are_walked_through_their_attributes() -> None:
    assert digest(Scaler(2.0)) == digest(Scaler(2.0))
    assert digest(Scaler(2.0)) != digest(Scaler(3.0))
    assert digest(print) == digest(print)


def test_a_librarys_object_is_walked_one_level_the_same_in_every_process() -> None:
    # A matplotlib line holds its figure's whole graph, with caches keyed by id(): two
    # processes drawing the same line must still agree (and quickly).
    code = """
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        from repro._verify.digest import digest
        fig, ax = plt.subplots()
        (line,) = ax.plot(np.arange(10.0) * {k})
        print(digest([fig, ax, line]))
        """
    first, second = run_python(code.format(k=1)), run_python(code.format(k=1))
    assert first == second
    assert run_python(code.format(k=2)) != first  # the line's own data is compared


def test_a_masked_array_is_compared_by_its_visible_values_and_its_mask() -> None:
    # Its memory view took the mask along and failed, so the variable went uncompared (every
    # fitted GridSearchCV holds masked arrays in cv_results_).
    data = np.arange(8.0)
    m = np.ma.masked_less(data, 3)
    assert digest(m) == digest(np.ma.masked_less(data.copy(), 3))
    assert digest(m) != digest(np.ma.masked_less(data + 1, 3))  # a visible value changed
    assert digest(m) != digest(np.ma.masked_less(data, 4))  # the mask changed
    hidden = data.copy()
    hidden[0] = -99.0  # behind the mask: not a value anyone sees
    assert digest(m) == digest(np.ma.masked_less(hidden, 3))
    assert digest(m) != digest(data)


def test_a_pandas_index_is_part_of_its_series_or_frame() -> None:
    import pandas as pd

    values = [1.0, 2.0, 3.0]
    assert digest(pd.Series(values, index=[0, 1, 2])) != digest(pd.Series(values, index=[2, 0, 1]))
    frame = pd.DataFrame({"a": values}, index=["x", "y", "z"])
    assert digest(frame) == digest(pd.DataFrame({"a": values}, index=["x", "y", "z"]))
    assert digest(frame) != digest(pd.DataFrame({"a": values}, index=["z", "y", "x"]))
    times = pd.date_range("2026-01-01", periods=3)
    assert digest(pd.Series(values, index=times)) != digest(
        pd.Series(values, index=times + pd.Timedelta("1s"))
    )


def test_a_fitted_search_is_compared_without_the_durations_scikit_learn_measured() -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    x, y = make_classification(random_state=0)

    def search(c: float = 0.1) -> GridSearchCV:
        return GridSearchCV(LogisticRegression(), {"C": [c, 1.0]}, cv=3).fit(x, y)

    a, b = search(), search()
    assert a.refit_time_ != b.refit_time_ or not np.array_equal(
        a.cv_results_["mean_fit_time"], b.cv_results_["mean_fit_time"]
    )  # the clock's figures differ...
    assert digest(a) == digest(b)  # ...and are not what the search found
    shown = {leaf.path: leaf.value for leaf in _digest.leaves(a)}
    assert shown[".refit_time_"] == _digest.DURATION
    assert shown[".cv_results_['mean_fit_time']"] == _digest.DURATION
    assert digest(a) != digest(search(c=0.01))  # another grid: other scores, compared
    # A duration in your own dict stays compared (the advice names it as a timing instead).
    assert digest({"fit_time": 1.0}) != digest({"fit_time": 2.0})


def test_what_timeit_dash_o_returns_is_compared_as_the_figures_timeit_prints(shell) -> None:
    """`r = %timeit -o ...` in a real shell: the figures are left out of outputs, so the
    object that holds them is too; the value timed is not in it."""
    shell.run_cell("a = %timeit -q -o -n 5 -r 3 sum(range(50))")
    shell.run_cell("b = %timeit -q -o -n 7 -r 2 sum(range(5000))")
    a, b = shell.user_ns["a"], shell.user_ns["b"]
    assert (a.loops, a.all_runs) != (b.loops, b.all_runs)
    assert digest(a) == digest(b)
    assert [leaf.value for leaf in _digest.leaves(a)] == [_digest.TIMEIT]


def test_threads_and_pools_are_compared_by_type_and_their_results_by_value() -> None:
    """A thread pool started as many threads as the timing asked for, each with an OS id: how
    the work ran. What it computed is compared."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    class Worker(threading.Thread):
        pass

    def pool_and_results(tasks: int) -> tuple[ThreadPoolExecutor, list[int]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(abs, range(-tasks, 0)))
        return pool, results

    (one, a), (other, b) = pool_and_results(3), pool_and_results(40)
    assert digest(one) == digest(other)
    assert digest({"pool": one, "out": a}) != digest({"pool": other, "out": b})
    first, second = Worker(), Worker()
    first.start(), first.join()
    assert digest(first) == digest(second)  # one ran, with an id; the other never started
    assert digest(first) != digest(threading.Thread())  # another type


def test_markup_in_a_variable_is_compared_without_the_ids_libraries_draw() -> None:
    """An animation's HTML (cached on the object too), plotly's to_html(): uuid4 element ids
    drawn afresh each time, as in displayed markup. Text that is not markup keeps its ids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from matplotlib.animation import FuncAnimation

    def animation(last: float) -> FuncAnimation:
        fig, ax = plt.subplots()
        (line,) = ax.plot([0.0, last])
        ani = FuncAnimation(fig, lambda i: line.set_ydata([0.0, last * i]), frames=2)
        ani.to_jshtml()  # cached in the object
        plt.close(fig)
        return ani

    one, two = animation(1.0), animation(1.0)
    assert one._html_representation != two._html_representation  # the ids differ...
    assert digest(one) == digest(two)  # ...and the drawing does not
    assert digest(one) != digest(animation(2.0))
    fig = go.Figure(go.Scatter(y=[1, 3, 2]))
    assert fig.to_html() != fig.to_html() and digest(fig.to_html()) == digest(fig.to_html())
    run_a, run_b = "2c4ee0c6-5c0b-4b52-bb1a-ef84e0d29e47", "9f0e5d1a-0c2b-4d4e-8f3a-1b2c3d4e5f60"
    assert digest(f"run {run_a} < 2") != digest(f"run {run_b} < 2")  # not markup: compared


def test_a_fitted_tree_and_a_forests_trees_are_compared_by_their_nodes() -> None:
    """scikit-learn's Tree is compiled: no __dict__, and a repr without its nodes. It is
    compared by its pickled state, and a forest's trees are walked, as the results they are."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y = make_classification(n_samples=300, random_state=0)

    def tree(seed: int) -> DecisionTreeClassifier:
        return DecisionTreeClassifier(random_state=seed).fit(x, y)

    def forest(seed: int) -> RandomForestClassifier:
        return RandomForestClassifier(n_estimators=5, random_state=seed).fit(x, y)

    assert digest(tree(0).tree_) == digest(tree(0).tree_)
    assert digest(tree(0).tree_) != digest(tree(1).tree_)
    # Its nodes are a structured array: compared field by field, so a difference names it.
    paths = [leaf.path for leaf in _digest.leaves(tree(0).tree_)]
    assert "['nodes']['threshold']" in paths and "['values']" in paths
    assert digest(tree(0)) != digest(tree(1))
    assert digest(forest(0)) == digest(forest(0))
    # The forests' trees differ; estimators_ is a list of estimators, two levels down.
    one, other = forest(0), forest(1)
    one.random_state = other.random_state = None
    for a, b in zip(one.estimators_, other.estimators_, strict=True):
        b.random_state = a.random_state
    assert digest(one) != digest(other)


def test_a_legacy_random_state_is_compared_and_a_global_stream_held_is_not() -> None:
    """np.random.RandomState() (compiled, its state by __getstate__) is compared: unseeded it
    differs. scipy's distributions hold NumPy's global stream: compared as the stream (by
    the run's RNG record), never as the variable that refers to it."""
    import random

    from scipy.stats import loguniform

    assert digest(np.random.RandomState()) != digest(np.random.RandomState())
    assert digest(np.random.RandomState(3)) == digest(np.random.RandomState(3))
    before = digest(loguniform)
    np.random.rand(3)
    assert digest(loguniform) == before  # the global stream moved on; the variable did not
    for stream in (np.random.mtrand._rand, random._inst, torch.default_generator):
        assert next(leaf.value for leaf in _digest.leaves({"held": stream})).startswith(
            "<the global"
        )


def test_a_dataframe_is_compared_column_by_column() -> None:
    import pandas as pd

    frame = pd.DataFrame({"score": [0.9, 0.8], "mean_fit_time": [0.01, 0.02]})
    paths = [leaf.path for leaf in _digest.leaves(frame)]
    assert "['score']" in paths and "['mean_fit_time']" in paths
    other = frame.assign(mean_fit_time=[0.03, 0.02])
    differ = {
        leaf.path
        for leaf, twin in zip(_digest.leaves(frame), _digest.leaves(other), strict=True)
        if digest(leaf.value) != digest(twin.value)
    }
    assert differ == {"['mean_fit_time']"}
    # Duplicate column names cannot be told apart: the whole table is one leaf, still compared.
    twice = pd.DataFrame([[1, 2]], columns=["a", "a"])
    assert digest(twice) != digest(pd.DataFrame([[1, 3]], columns=["a", "a"]))
