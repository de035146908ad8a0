"""Beyond one process: DDP with repro.launch (gloo on CPU), per-rank streams, seed_from_env.

Starting a process that imports torch costs seconds here, so the expensive runs are
shared: the "two runs" of one training cell are one under torchrun (seeded through the
environment) and one launched with repro.launch from a real kernel, so that they also
show that the same function gives the same bits both ways.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

import repro

# The module's launches share two module-scoped runs: keep it on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("distributed")

#: A training function as a user writes it in a notebook cell: two processes, DDP, a few
#: steps; each rank draws its own batch and augmentation from NumPy and Python random.
TRAIN_CELL = """
def train(rank, steps=3):
    import random

    import numpy as np
    import torch
    from torch.nn.parallel import DistributedDataParallel

    import repro

    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    # Read before DDP broadcasts rank 0's weights: what torch's shared seed gave this rank.
    initial = torch.cat([p.detach().flatten() for p in model.parameters()])
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    draws = []
    for _ in range(steps):
        x = torch.from_numpy(np.random.randn(4, 8).astype("float32"))  # this rank's batch
        flip = random.random() < 0.5  # this rank's augmentation
        draws.append([float(x[0, 0]), flip])
        target = x.sum(dim=1, keepdim=True)
        loss = torch.nn.functional.mse_loss(ddp(-x if flip else x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {
        "rank": rank,
        "header": str(repro.state()).splitlines()[0],
        "initial": initial.tolist(),
        "weights": torch.cat([p.detach().flatten() for p in model.parameters()]).tolist(),
        "draws": draws,
    }
"""

FAILING_CELL = """
def fail_on_rank_1(rank):
    import torch.distributed as dist

    if rank == 1:
        raise KeyError("no such column: 'label'")
    dist.barrier()  # rank 0 waits for a rank that never comes: launch must stop it
"""


#: How the failure tests start their ranks: handling a failure does not depend on it, and
#: here fork starts two ranks in half a second where spawn takes several (spawn's failure
#: path runs in notebook 05, checked by test_notebooks.py).
FAST = "fork"


def cell_function(source: str, name: str) -> Any:
    """The function ``name`` defined by ``source`` as a notebook cell defines it: in no
    importable module, so it can only reach a spawned process by value."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<notebook cell>", "exec"), namespace)
    return namespace[name]


#: The torchrun form of the same cell, as the README gives it.
TORCHRUN_MAIN = """
if __name__ == "__main__":
    import gc
    import json
    import sys

    import torch.distributed as dist

    repro.seed_from_env()
    dist.init_process_group("gloo")
    result = train(dist.get_rank())
    gc.collect()
    dist.destroy_process_group()
    with open(f"{sys.argv[1]}/rank-{result['rank']}.json", "w") as f:
        json.dump(result, f)
"""


@pytest.fixture(scope="module")
def under_torchrun(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Run 1 of 2: the cell as a script under torchrun, the seed handed over by REPRO_SEED."""
    folder = tmp_path_factory.mktemp("torchrun")
    script = folder / "train_ddp.py"
    script.write_text("import repro\n" + TRAIN_CELL + TORCHRUN_MAIN)
    with repro.scope(42):  # exports REPRO_SEED=42 to the child, as %repro 42 does
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        proc = subprocess.run(
            [*torchrun, "--nproc-per-node", "2", str(script), str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr
    return [json.loads((folder / f"rank-{rank}.json").read_text()) for rank in (0, 1)]


@pytest.fixture(scope="module")
def from_kernel() -> list[dict[str, Any]]:
    """Run 2 of 2: the cell in a real kernel, launched with ``repro.launch``."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import json\nimport repro\nrepro.seed(42)"),
        nbformat.v4.new_code_cell(TRAIN_CELL),
        nbformat.v4.new_code_cell("print(json.dumps(repro.launch(train, nprocs=2)))"),
    ]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300).execute()
    out = "".join(o.get("text", "") for o in nb.cells[2].outputs if o.output_type == "stream")
    return json.loads(out.strip().splitlines()[-1])


def test_launch_from_a_kernel_returns_every_ranks_result(
    from_kernel: list[dict[str, Any]],
) -> None:
    assert [r["rank"] for r in from_kernel] == [0, 1]
    assert all(len(r["draws"]) == 3 for r in from_kernel)


def test_ddp_weights_are_identical_across_ranks_and_between_runs(
    under_torchrun: list[dict[str, Any]], from_kernel: list[dict[str, Any]]
) -> None:
    first, second = from_kernel
    # torch's generator is shared: the same initial weights on every rank, before DDP's broadcast.
    assert first["initial"] == second["initial"]
    assert first["weights"] == second["weights"]
    assert first["weights"] != first["initial"]  # it trained
    # The other run, the same function under torchrun, gives the same bits.
    assert [r["weights"] for r in under_torchrun] == [r["weights"] for r in from_kernel]


def test_augmentation_streams_differ_between_ranks_and_repeat_between_runs(
    under_torchrun: list[dict[str, Any]], from_kernel: list[dict[str, Any]]
) -> None:
    first, second = from_kernel
    assert first["draws"] != second["draws"]
    assert len({d[0] for r in from_kernel for d in r["draws"]}) == 6
    assert [r["draws"] for r in under_torchrun] == [r["draws"] for r in from_kernel]


def test_a_ranks_streams_replay_in_one_process_with_rank_seed(
    from_kernel: list[dict[str, Any]],
) -> None:
    for result in from_kernel:
        repro.seed(repro.rank_seed(42, result["rank"]))
        x = float(np.random.randn(4, 8).astype("float32")[0, 0])
        assert [x, random.random() < 0.5] == result["draws"][0]


def test_the_state_shows_rank_and_world_size_in_a_process_group(
    under_torchrun: list[dict[str, Any]], from_kernel: list[dict[str, Any]]
) -> None:
    for results in (under_torchrun, from_kernel):
        assert [r["header"].rsplit(" · ", 1)[-1] for r in results] == [
            "rank 0 of 2",
            "rank 1 of 2",
        ]
    assert repro.state().rank is None and "rank" not in str(repro.state()).splitlines()[0]


def test_an_error_in_rank_1_is_raised_here_with_its_traceback_and_stops_rank_0() -> None:
    repro.seed(42)
    start = time.perf_counter()
    with pytest.raises(repro.LaunchError) as info:
        repro.launch(cell_function(FAILING_CELL, "fail_on_rank_1"), nprocs=2, start_method=FAST)
    assert info.value.rank == 1
    message = str(info.value)
    assert message.startswith("rank 1 failed:")
    assert "fail_on_rank_1" in message and "KeyError: \"no such column: 'label'\"" in message
    # The traceback starts at the user's function, not in repro's or torch's plumbing.
    assert "_run_rank" not in message and "spawn.py" not in message
    assert not multiprocessing.active_children()
    assert time.perf_counter() - start < 60  # rank 0 was not left waiting in its barrier


#: Two notebook cells: a helper, and the function launched, which calls it.
HELPER_CELL = """
def check_batch(batch):
    if batch == 3:
        raise ValueError(f"batch {batch} has no labels")
"""
LAUNCHED_CELL = """
def train_batches(rank):
    for batch in range(5):
        check_batch(batch)
"""


def test_a_failing_rank_shows_the_cells_lines_and_none_of_repros_frames(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["repro"] = repro
    for cell in (HELPER_CELL, LAUNCHED_CELL):
        assert shell.run_cell(cell).success
    repro.seed(42)
    capsys.readouterr()
    # Spawned, the rank starts with no trace of the cells: only what launch carries over.
    result = shell.run_cell("repro.launch(train_batches, nprocs=1)")
    error = result.error_in_exec
    assert isinstance(error, repro.LaunchError), error
    lines = error.traceback.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    # Each of the user's frames with its line, as a cell's traceback shows them, and nothing else.
    assert [line.strip() for line in lines[2:6:2]] == [
        "check_batch(batch)",
        'raise ValueError(f"batch {batch} has no labels")',
    ]
    assert lines[-1] == "ValueError: batch 3 has no labels" and len(lines) == 6
    shown = capsys.readouterr().out  # IPython's rendering of the failed cell
    assert "LaunchError" in shown and "batch 3 has no labels" in shown
    assert "_launch.py" not in shown and "torch/multiprocessing" not in shown


WAITING_CELL = """
def wait_forever(rank, folder):
    import os
    import time

    with open(os.path.join(folder, f"{rank}.pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(0.1)
"""


def test_ctrl_c_in_the_parent_stops_every_rank(tmp_path: Any) -> None:
    repro.seed(42)
    pids: list[int] = []

    def interrupt_once_both_run(signum: int, frame: Any) -> None:
        written = [p.read_text() for p in tmp_path.glob("*.pid")]
        # A rank may have created its file and not yet written it: wait for both pids.
        if not pids and len(written) == 2 and all(written):
            pids.extend(map(int, written))
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt_once_both_run)
    signal.setitimer(signal.ITIMER_REAL, 0.2, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            fn = cell_function(WAITING_CELL, "wait_forever")
            repro.launch(fn, str(tmp_path), nprocs=2, start_method=FAST)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(pids) == 2 and not multiprocessing.active_children()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


PROFILE_CELL = """
def session_here(rank):
    import torch

    import repro

    state = repro.state()
    return state.seed, state.profile_label, torch.are_deterministic_algorithms_enabled()
"""


def test_a_profile_registered_in_the_notebook_reaches_the_ranks() -> None:
    repro.register_profile("ddp-check", "a profile only this process knows", base="final")
    repro.setup(7, "ddp-check", deterministic_algorithms="raise")
    [(seed, label, algorithms)] = repro.launch(
        cell_function(PROFILE_CELL, "session_here"), nprocs=1
    )
    assert (seed, label, algorithms) == (7, "ddp-check (deterministic_algorithms=raise)", True)


DRAW_CELL = """
def first_draws(rank):
    import random

    import numpy as np
    import torch

    return random.random(), float(np.random.rand()), torch.rand(1).item()
"""


def test_fork_before_cuda_gives_each_rank_its_streams_too() -> None:
    repro.seed(42)
    forked = repro.launch(cell_function(DRAW_CELL, "first_draws"), nprocs=2, start_method="fork")
    for rank, (py, nump, torch_draw) in enumerate(forked):
        repro.seed(repro.rank_seed(42, rank))
        assert (py, nump) == draws()[:2]
        repro.seed(42)
        assert torch_draw == torch.rand(1).item()


def test_fork_is_refused_once_cuda_is_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU here: torch is told CUDA is up, the one fact launch reads before forking.
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(ValueError, match=r"fork.*CUDA"):
        repro.launch(print, nprocs=2, start_method="fork")
    assert not multiprocessing.active_children()


def test_launch_checks_its_arguments_before_starting_anything() -> None:
    with pytest.raises(ValueError, match="nprocs"):
        repro.launch(print, nprocs=0)
    with pytest.raises(ValueError, match="start_method"):
        repro.launch(print, start_method="thread")
    with pytest.raises(TypeError, match="fn must be callable"):
        repro.launch(42)  # type: ignore[arg-type]


# --- rank-aware seeding in one process ---------------------------------------------


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_a_rank_shares_torch_and_has_its_own_python_and_numpy_streams() -> None:
    repro.seed(42)
    plain = draws()
    repro.seed(42, rank=0)
    rank0 = draws()
    repro.seed(42, rank=1)
    rank1 = draws()
    assert plain[2] == rank0[2] == rank1[2]  # model initialisation: the same everywhere
    assert len({plain[:2], rank0[:2], rank1[:2]}) == 3
    repro.seed(42, rank=1)
    assert draws() == rank1  # stable from run to run
    state = repro.state()
    seeds = {s.stream: s.seed for s in state.sources}
    assert seeds["torch (CPU)"] == 42 and seeds["NumPy"] == seeds[
        "Python random"
    ] == repro.rank_seed(42, 1)


def test_rank_seed_is_spawned_not_added() -> None:
    # seed + rank would make rank 1 of seed 42 equal to rank 0 of seed 43.
    assert repro.rank_seed(42, 1) != repro.rank_seed(43, 0)
    expected = np.random.SeedSequence(42, spawn_key=(1,)).generate_state(1)[0]
    assert repro.rank_seed(42, 1) == int(expected)


def test_rank_is_checked() -> None:
    with pytest.raises(ValueError, match="rank must be"):
        repro.seed(1, rank=-1)
    with pytest.raises(TypeError, match="rank must be"):
        repro.setup(1, "debug", rank="1")  # type: ignore[arg-type]
    assert repro.state().seed is None and repro.state().profile is None  # nothing changed


# --- the environment hand-over -----------------------------------------------------

CHILD = """
    import json, random
    import numpy as np
    import torch
    import repro

    def draws():
        return [random.random(), float(np.random.rand()), torch.rand(1).item()]

    imported = {"seed": repro.state().seed, "draws": draws()}
    seed = repro.seed_from_env()
    print(json.dumps({
        "imported": imported,
        "seed": seed,
        "draws": draws(),
        "profile": repro.state().profile_label,
        "deterministic": torch.backends.cudnn.deterministic,
    }))
"""


def test_seed_from_env_in_a_child_gives_the_parents_streams_and_import_alone_does_not() -> None:
    repro.setup(42, "final", cudnn_benchmark=False)
    parent = list(draws())
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    child = json.loads(proc.stdout)
    assert child["imported"]["seed"] is None and child["imported"]["draws"] != parent
    assert child["seed"] == 42 and child["draws"] == parent
    assert child["profile"] == "final (cudnn_benchmark=False)" and child["deterministic"]


def test_the_distributed_api_loads_nothing_heavy_until_called() -> None:
    code = (
        "import sys, repro; repro.launch, repro.seed_from_env, repro.LaunchError; "
        "print([m for m in ('torch', 'numpy', 'cloudpickle') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_framework_imported_after_seed_from_env_on_a_rank_gets_the_ranks_stream() -> None:
    code = "import repro; repro.seed_from_env(); import numpy as np; print(np.random.rand())"
    env = {**os.environ, "REPRO_SEED": "42", "RANK": "1"}  # as torchrun sets RANK
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    np.random.seed(repro.rank_seed(42, 1))
    assert float(proc.stdout) == np.random.rand()


def test_pl_global_seed_is_honoured_and_repro_seed_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REPRO_SEED", "PL_GLOBAL_SEED", "REPRO_PROFILE", "REPRO_OVERRIDES", "RANK"):
        monkeypatch.delenv(name, raising=False)
    assert repro.seed_from_env() is None and repro.state().seed is None
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    assert repro.seed_from_env() == 7
    lightning = draws()
    repro.seed(7)
    assert draws() == lightning
    monkeypatch.setenv("REPRO_SEED", "11")
    assert repro.seed_from_env() == 11 and repro.state().seed == 11


def test_seed_from_env_names_the_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPRO_SEED", "forty-two")
    with pytest.raises(ValueError, match="REPRO_SEED"):
        repro.seed_from_env()
    monkeypatch.setenv("REPRO_SEED", "42")
    monkeypatch.setenv("REPRO_PROFILE", "debug")
    monkeypatch.setenv("REPRO_OVERRIDES", "[1]")
    with pytest.raises(ValueError, match="REPRO_OVERRIDES"):
        repro.seed_from_env()
    assert repro.state().seed is None  # nothing applied


def test_a_profile_is_exported_for_children_and_scope_restores_it() -> None:
    import os

    repro.use_profile("debug", deterministic_algorithms="warn")
    assert os.environ["REPRO_PROFILE"] == "debug"
    assert json.loads(os.environ["REPRO_OVERRIDES"]) == {"deterministic_algorithms": "warn"}
    with repro.scope(1, "search"):
        assert os.environ["REPRO_PROFILE"] == "search" and "REPRO_OVERRIDES" not in os.environ
    assert os.environ["REPRO_PROFILE"] == "debug" and "REPRO_OVERRIDES" in os.environ


# --- DataLoader workers on ranks ----------------------------------------------------


class Augmented(Dataset):
    """Each item draws from Python random, NumPy and torch, as augmentations do."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> tuple[int, int, float, float, float]:
        worker = torch.utils.data.get_worker_info()
        return (
            index,
            worker.id,
            random.random(),
            float(np.random.rand()),
            torch.rand(1).item(),
        )


def items(rank: int, context: str) -> list[tuple]:
    repro.seed(42, rank=rank)
    dataset = Augmented()
    sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(
        dataset,
        batch_size=2,
        sampler=sampler,
        num_workers=2,
        multiprocessing_context=context,
        **repro.dataloader_kwargs(),
    )
    out = []
    for batch in loader:
        out.extend(zip(*(column.tolist() for column in batch), strict=True))
    return out


@pytest.mark.slow
def test_dataloader_streams_differ_per_rank_and_worker_and_spawn_equals_fork() -> None:
    rank0, rank1 = items(0, "fork"), items(1, "fork")
    # The DistributedSampler splits the data: each index on exactly one rank.
    assert sorted(i for i, *_ in rank0 + rank1) == list(range(16))
    assert {w for _, w, *_ in rank0} == {w for _, w, *_ in rank1} == {0, 1}
    # Every (rank, worker) pair draws its own numbers in random, NumPy and torch.
    for column in (2, 3, 4):
        values = [item[column] for item in rank0 + rank1]
        assert len(set(values)) == len(values)
    # Workers started with spawn know nothing of this process, yet repeat fork's streams
    # (which also shows that a second run repeats the first).
    assert items(1, "spawn") == rank1


# --- GPU ----------------------------------------------------------------------------

GPU_CELL = """
def train_on_gpu(rank):
    import numpy as np
    import torch
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    model = torch.nn.Linear(32, 4).to(device)
    ddp = DistributedDataParallel(model, device_ids=[rank])
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    for _ in range(3):
        x = torch.from_numpy(np.random.randn(16, 32).astype("float32")).to(device)
        loss = ddp(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()]).cpu().tolist()
"""


@pytest.mark.gpu
def test_nccl_training_repeats_on_gpus() -> None:
    nprocs = min(torch.cuda.device_count(), 2)  # nccl needs one GPU per rank
    fn = cell_function(GPU_CELL, "train_on_gpu")
    runs = []
    for _ in range(2):
        repro.setup(42, "debug")
        runs.append(repro.launch(fn, nprocs=nprocs, backend="nccl"))
    assert runs[0] == runs[1]
    assert all(weights == runs[0][0] for weights in runs[0])
