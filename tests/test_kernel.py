"""End to end: ``repro kernel install`` into a temporary prefix, a real kernel started from it.

One kernel serves every test here (starting one costs seconds): it checks the fixed
str hashing, the ``%repro export`` payload, and a config cell exported in this
process re-applied in that fresh kernel, with numpy and torch imported after it (so
repro seeds them, and switches torch's flags, at their import).
"""

from __future__ import annotations

import ast
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

import repro
from repro.cli import main

# One kernel for the module: its tests stay on one pytest-xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("kernel")]

HASH_SEED = 123
KERNEL_NAME = "repro-test"
TIMEOUT_S = 600  # generous: a loaded machine can take minutes to import torch


class Kernel:
    """A started kernel and a blocking client; :meth:`run` executes code and collects output."""

    def __init__(self, manager: KernelManager) -> None:
        self.manager = manager
        self.client = manager.client()

    def run(self, code: str, cell_id: str | None = None) -> tuple[dict[str, Any], str]:
        """Execute ``code``; return the execute_reply's content and everything printed.

        With ``cell_id``, the request carries it in its metadata, as a notebook frontend's does.
        """
        printed: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                printed.append("\n".join(msg["content"]["traceback"]))

        if cell_id is None:
            reply = self.client.execute_interactive(code, output_hook=collect, timeout=TIMEOUT_S)
        else:
            content = {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            }
            msg = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id})
            self.client.shell_channel.send(msg)
            while True:
                out = self.client.get_iopub_msg(timeout=TIMEOUT_S)
                if out["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                    continue
                if out["msg_type"] == "status" and out["content"]["execution_state"] == "idle":
                    break
                collect(out)
            reply = self.client.get_shell_msg(timeout=TIMEOUT_S)
            assert reply["parent_header"]["msg_id"] == msg["header"]["msg_id"]
        content = reply["content"]
        assert content["status"] == "ok", "".join(printed)
        return content, "".join(printed)

    def value(self, expression: str) -> Any:
        """The JSON value of ``expression`` evaluated in the kernel."""
        _, printed = self.run(f"import json as _json\nprint(_json.dumps({expression}))")
        return json.loads(printed)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    prefix = tmp_path_factory.mktemp("prefix")
    argv = ["kernel", "install", "--prefix", str(prefix), "--name", KERNEL_NAME]
    assert main([*argv, "--hash-seed", str(HASH_SEED)]) == 0
    specs = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    # The kernel starts in the repository, as a notebook in it would.
    manager.start_kernel(cwd=str(Path(__file__).resolve().parents[1]))
    started = Kernel(manager)
    try:
        started.client.start_channels()
        started.client.wait_for_ready(timeout=TIMEOUT_S)
        yield started
    finally:
        started.client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_the_installed_kernel_hashes_str_with_the_chosen_seed(kernel: Kernel) -> None:
    env = {**os.environ, "PYTHONHASHSEED": str(HASH_SEED)}
    fresh = subprocess.run(
        [sys.executable, "-c", "print(hash('repro'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    inside = kernel.value("hash('repro')")
    assert inside == int(fresh.stdout)
    # and not by chance: another seed hashes differently
    assert inside != int(
        subprocess.run(
            [sys.executable, "-c", "print(hash('repro'))"],
            env={**env, "PYTHONHASHSEED": str(HASH_SEED + 1)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    kernel.run("import repro")
    assert kernel.value("[repro.hash_seed(), repro.state().hash_fixed]") == [HASH_SEED, True]
    assert kernel.value("repro.environment()['hashing']") == {
        "randomized": False,
        "seed": HASH_SEED,
    }
    assert kernel.value("__import__('os').environ['CUBLAS_WORKSPACE_CONFIG']") == ":4096:8"


def test_a_config_cell_exported_here_reapplies_in_the_fresh_kernel(kernel: Kernel) -> None:
    repro.setup(42, "debug", deterministic_algorithms="warn")
    flags = dict(repro.state().settings)
    expected = [random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()]
    source = repro.config_cell({"model": "ResNet18", "lr": 0.001, "batch_size": 64})

    # Run the cell first, import the libraries after: repro seeds them at their import.
    _, printed = kernel.run(source)
    assert "applied config: seed 42 · profile debug" in printed
    kernel.run("import random, numpy as np, torch")
    draws = kernel.value("[random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()]")
    assert draws == expected
    # torch.use_deterministic_algorithms imports torch._inductor (a minute on a slow machine);
    # repro sets the same flags without it.
    assert kernel.value("'torch._inductor.config' not in __import__('sys').modules")
    st = kernel.value(
        "{'seed': repro.state().seed, 'profile': repro.state().profile, "
        "'overrides': dict(repro.state().overrides), 'flags': dict(repro.state().settings)}"
    )
    assert st == {
        "seed": 42,
        "profile": "debug",
        "overrides": {"deterministic_algorithms": "warn"},
        "flags": flags,
    }
    # Only the kernel's hashing differs from this pytest process's in what affects results.
    lines = kernel.value("repro.check()")
    affecting = [line for line in lines if not line.endswith("(informational)")]
    here = (
        "randomized" if repro.hash_seed() is None else f"fixed (PYTHONHASHSEED={repro.hash_seed()})"
    )
    assert affecting == [f"str hashing {here} → fixed (PYTHONHASHSEED={HASH_SEED})"]


def test_export_magic_sends_a_set_next_input_payload_that_replaces_nothing(
    kernel: Kernel,
) -> None:
    kernel.run("%load_ext repro\n%repro 42 -p final\nconfig = 'mine'")
    # As JupyterLab and Notebook 7 send it: the request names its cell, so a notebook inserts it.
    content, printed = kernel.run(
        "%repro export --param lr=0.001 --param model=ResNet18", cell_id="a1b2c3"
    )
    assert printed == "repro: config cell inserted below\n"
    (payload,) = content["payload"]
    assert payload["source"] == "set_next_input"
    assert payload["replace"] is False
    tree = ast.parse(payload["text"])
    config = ast.literal_eval(tree.body[1].value)
    assert (config["seed"], config["profile"]) == (42, "final")
    assert config["params"] == {"lr": 0.001, "model": "ResNet18"}
    assert config["environment"]["hashing"] == {"randomized": False, "seed": HASH_SEED}
    # the text was only sent: nothing of it ran in the kernel
    assert kernel.value("config") == "mine"


def test_export_magic_from_a_client_that_names_no_cell_prints_the_cell(kernel: Kernel) -> None:
    # nbclient and consoles send no cell id: no notebook inserts the cell, so it is printed.
    kernel.run("%load_ext repro\n%repro 42 -p final")
    content, printed = kernel.run("%repro export --param lr=0.001")
    assert "inserted" not in printed
    assert printed.startswith("repro: no notebook here can insert a cell")
    source = printed.split("\n\n", 1)[1].rstrip("\n")
    assert source.endswith("differences = repro.apply_config(config)")
    config = ast.literal_eval(ast.parse(source).body[1].value)
    assert (config["seed"], config["profile"], config["params"]) == (42, "final", {"lr": 0.001})
    # A console that acts on set_next_input still gets it: the same cell.
    (payload,) = content["payload"]
    assert payload["text"] == source
