"""The ``repro`` command: ``info`` and ``kernel install``, exit codes and error lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

import repro
from repro.cli import main

SECRET = "hf_CLISECRETabcdefghijklmnop"


def test_info_json_is_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch  # noqa: F401  (imported, so that its facts are read from the library)

    monkeypatch.setenv("HF_TOKEN", SECRET)
    repro.setup(42, "final")
    assert main(["info", "--json"]) == 0
    out = capsys.readouterr().out
    env = json.loads(out)
    assert (env["seed"], env["profile"]) == (42, "final")
    assert env["frameworks"]["torch"]["imported"] is True
    assert set(env) == set(repro.environment())
    assert SECRET not in out


def test_info_text_is_for_people(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^python +CPython {re.escape(sys.version.split()[0])}$", out, re.M)
    assert re.search(rf"^torch +{re.escape(torch.__version__)}$", out, re.M)
    assert "str hashing" in out
    assert SECRET not in out


def test_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in ("info", "kernel", "verify"):
        assert re.search(rf"^\s+{command}\s+\S", out, re.M), out  # listed, with its help
    assert "verify that a notebook repeats" in out  # and the description says what it is for


def test_python_dash_m_repro_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "repro", "info", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    assert env["frameworks"]["torch"]["note"] == "not imported"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "choose a command: info, kernel"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["kernel"], "choose a command: install"),
        (
            ["kernel", "install", "--hash-seed", "-1"],
            "hash seed must be an integer with 0 <= seed < 2**32",
        ),
        (["kernel", "install", "--hash-seed", "4294967296"], "got 4294967296"),
        (["kernel", "install", "--hash-seed", "zero"], "must be an integer"),
        (["kernel", "install", "--name", "my kernel"], "kernel name may hold only"),
        (["kernel", "install", "--user", "--prefix", "/tmp/x"], "not allowed with argument"),
        (["info", "--yaml"], "unrecognized arguments: --yaml"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("repro") and "error:" in lines[0]
    assert words in lines[0]


def test_kernel_install_writes_a_spec_for_this_python(tmp_path: Path) -> None:
    assert main(["kernel", "install", "--prefix", str(tmp_path), "--hash-seed", "7"]) == 0
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    spec = KernelSpecManager(kernel_dirs=[str(kernels)]).get_kernel_spec("repro")
    assert spec.argv[0] == sys.executable
    assert spec.env == {"PYTHONHASHSEED": "7", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    assert spec.display_name == "Python 3 (repro, hash seed 7)"
    assert "ipykernel_launcher" in spec.argv


def test_kernel_install_name_display_name_and_user_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --user (the default) writes into Jupyter's data dir, pointed at a temporary folder here.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    argv = ["kernel", "install", "--name", "Exp-1", "--display-name", "Experiment 1"]
    assert main(argv) == 0
    spec = json.loads((tmp_path / "kernels" / "exp-1" / "kernel.json").read_text())
    assert spec["display_name"] == "Experiment 1"
    assert spec["env"]["PYTHONHASHSEED"] == "0"


def test_kernel_install_failure_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """As a user sees it, in a fresh process: ipykernel 6 imports debugpy with its
    kernelspec, whose four-line frozen-modules warning once came first."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if k != "PYDEVD_DISABLE_FILE_VALIDATION"}
    done = subprocess.run(
        [sys.executable, "-m", "repro", "kernel", "install", "--prefix", str(blocker)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("repro: error: could not install kernel 'repro'")


def test_kernel_install_leaves_the_environment_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYDEVD_DISABLE_FILE_VALIDATION", raising=False)
    before = dict(os.environ)
    assert main(["kernel", "install", "--prefix", str(tmp_path)]) == 0
    assert dict(os.environ) == before
