"""repro.environment(), the config cell, apply_config() and check(), on the real libraries."""

from __future__ import annotations

import ast
import getpass
import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import repro
from repro import _session, frameworks
from repro._capture import clean_remote, format_environment
from repro._config import CONFIG_KEYS
from repro._environ import RECORDED

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET1",
    "HF_TOKEN": "hf_SECRETabcdefghijklmnopqrstuvwx",
    "GITHUB_TOKEN": "ghp_SECRET0123456789abcdefghijklmnopq",
    "OPENAI_API_KEY": "sk-SECRETproj-0123456789",
    # repro's own prefix is no pass: only the variables it names are read
    "REPRO_API_KEY": "repro-SECRET-key-42",
}
REMOTE_TOKEN = "ghp_REMOTESECRETxyz0123456789"


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; return its stdout."""
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A real git repository with one commit and a remote whose URL holds a token."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "train.py").write_text("print('hi')\n")
    git(tmp_path, "add", "train.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    git(tmp_path, "remote", "add", "origin", f"https://alice:{REMOTE_TOKEN}@github.com/o/r.git")
    return tmp_path


def cell_dict(source: str) -> dict[str, Any]:
    """The ``config`` dict of a config cell, read with ast.literal_eval (nothing executed)."""
    tree = ast.parse(source)
    (assign,) = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "config"
    ]
    return ast.literal_eval(assign.value)


# --- environment() ---------------------------------------------------------------------


def test_environment_reports_versions_flags_threads_and_hashing() -> None:
    repro.setup(42, "debug")
    env = repro.environment()

    assert env["repro"] == repro.__version__
    assert env["captured"].endswith("Z")
    assert env["python"]["version"] == sys.version.split()[0]
    assert env["seed"] == 42
    assert env["profile"] == "debug"
    assert env["backend_flags"] == dict(repro.state().settings)
    assert env["backend_flags"]["deterministic_algorithms"] == "raise"
    assert env["hashing"] == {
        "randomized": repro.hash_seed() is None,
        "seed": repro.hash_seed(),
    }
    numpy_facts = env["frameworks"]["numpy"]
    assert numpy_facts["version"] == np.__version__
    assert numpy_facts["imported"] is True
    torch_facts = env["frameworks"]["torch"]
    assert torch_facts["version"] == torch.__version__
    assert torch_facts["cuda"] == torch.version.cuda
    assert torch_facts["intra_op_threads"] == torch.get_num_threads()
    assert torch_facts["inter_op_threads"] == torch.get_num_interop_threads()
    assert torch_facts["default_dtype"] == "float32"
    assert torch_facts["cuda_available"] is torch.cuda.is_available()
    assert "python" not in env["frameworks"]  # random's version is the interpreter's
    # numpy is imported, so its BLAS is loaded and threadpoolctl sees it
    numpy_blas = [pool for pool in env["blas"] if pool["package"] == "numpy"]
    assert numpy_blas, env["blas"]
    assert all(pool["threads"] >= 1 and pool["library"] for pool in numpy_blas)


def test_environment_is_plain_data() -> None:
    env = repro.environment()
    assert json.loads(json.dumps(env)) == env
    assert ast.literal_eval(repr(env)) == env


def test_environment_reads_only_the_allow_listed_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = repro.environment()
    assert env["environ"]["OMP_NUM_THREADS"] == "3"
    assert set(env["environ"]) <= set(RECORDED)


def test_no_secret_path_host_or_user_name_reaches_any_output(
    monkeypatch: pytest.MonkeyPatch, repository: Path
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(repository)
    repro.setup(42, "debug")

    env = repro.environment()
    outputs = {
        "json": json.dumps(env),
        "text": format_environment(env),
        "cell": repro.config_cell({"lr": 0.001}),
    }
    assert env["git"]["remote"] == "https://github.com/o/r.git"
    forbidden = [*SECRETS.values(), REMOTE_TOKEN, "alice", str(repository)]
    forbidden += [os.path.expanduser("~") + "/", socket.gethostname(), getpass.getuser()]
    for kind, text in outputs.items():
        for secret in forbidden:
            assert secret not in text, f"{secret!r} leaked into the {kind} output"


def test_environment_does_not_import_frameworks_in_a_fresh_process() -> None:
    code = (
        "import json, sys, repro\n"
        "env = repro.environment()\n"
        "print(json.dumps({'env': env, 'loaded': [m for m in ('torch', 'numpy') "
        "if m in sys.modules]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(done.stdout)
    assert result["loaded"] == []
    torch_facts = result["env"]["frameworks"]["torch"]
    assert torch_facts == {
        "version": metadata.version("torch"),
        "imported": False,
        "note": "not imported",
    }
    assert result["env"]["backend_flags"] == {}


def test_gpus_are_described_once_cuda_is_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mocked: there is no GPU here. Only the adapter's reading of torch.cuda is faked.
    class Props:
        def __init__(self, index: int) -> None:
            self.name, self.major, self.minor = f"NVIDIA H100 #{index}", 9, 0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", Props)
    facts = frameworks.get("torch").describe()
    assert facts["gpus"] == [
        {"name": "NVIDIA H100 #0", "capability": "9.0"},
        {"name": "NVIDIA H100 #1", "capability": "9.0"},
    ]


def test_gpus_are_not_read_when_that_would_start_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mocked: there is no GPU here. Reading properties would initialise CUDA, so it must not.
    def would_start_cuda(index: int) -> None:
        raise AssertionError("get_device_properties initialises CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "get_device_properties", would_start_cuda)
    facts = repro.environment()["frameworks"]["torch"]
    assert facts["gpu_count"] == 4
    assert "not initialised" in facts["gpus"]


def test_no_gpu_section_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    facts = repro.environment()["frameworks"]["torch"]
    assert facts["cuda_available"] is False
    assert "gpus" not in facts


# --- git ---------------------------------------------------------------------------------


def test_git_commit_branch_and_dirtiness(repository: Path) -> None:
    head = git(repository, "rev-parse", "HEAD")
    info = repro.environment(repository=repository)["git"]
    assert info == {
        "commit": head,
        "branch": "main",
        "dirty": False,
        "remote": "https://github.com/o/r.git",
    }
    (repository / "notes.txt").write_text("untracked files do not count\n")
    assert repro.environment(repository=repository)["git"]["dirty"] is False
    (repository / "train.py").write_text("print('changed')\n")
    assert repro.environment(repository=repository / ".")["git"]["dirty"] is True


def test_git_packed_refs_detached_head_and_subfolders(repository: Path) -> None:
    head = git(repository, "rev-parse", "HEAD")
    git(repository, "pack-refs", "--all")
    assert not (repository / ".git" / "refs" / "heads" / "main").exists()
    sub = repository / "src" / "deep"
    sub.mkdir(parents=True)
    assert repro.environment(repository=sub)["git"]["commit"] == head
    git(repository, "checkout", "-q", "--detach")
    info = repro.environment(repository=repository)["git"]
    assert (info["commit"], info["branch"]) == (head, None)


def test_outside_a_repository_git_is_none(tmp_path: Path) -> None:
    assert repro.environment(repository=tmp_path)["git"] is None


def test_without_git_installed_the_repository_is_unknown(
    repository: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
    info = repro.environment(repository=repository / "src")["git"]
    assert (info["commit"], info["dirty"]) == (None, None)  # repro asks git, never parses .git
    assert "git is not installed" in info["note"]
    assert repro.environment(repository=tmp_path_factory.mktemp("elsewhere"))["git"] is None


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:ghp_xxx@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://ghp_xxx@github.com/o/r.git", "https://github.com/o/r.git"),
        (
            "https://oauth2:glpat-x@gitlab.com:8443/o/r?private_token=x#f",
            "https://gitlab.com:8443/o/r",
        ),
        ("ssh://deploy:pw@host.example/srv/r.git", "ssh://host.example/srv/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("alice@host.example:o/r.git", "host.example:o/r.git"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
    ],
)
def test_remote_urls_lose_their_credentials(url: str, clean: str) -> None:
    assert clean_remote(url) == clean


def test_local_remote_paths_hide_the_home_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/alice")
    assert clean_remote("/home/alice/src/r.git") == "~/src/r.git"
    assert clean_remote("file:///home/alice/src/r.git") == "~/src/r.git"


# --- the config cell ----------------------------------------------------------------------


def test_config_cell_is_a_header_an_import_one_literal_dict_and_one_call() -> None:
    repro.setup(42, "final")
    source = repro.config_cell({"model": "ResNet18", "optimizer": "AdamW", "lr": 0.001})
    lines = source.splitlines()
    assert lines[0].startswith("# repro config")
    assert f"by repro {repro.__version__}" in source
    tree = ast.parse(source)
    assert [type(node).__name__ for node in tree.body] == ["Import", "Assign", "Assign"]
    assert ast.unparse(tree.body[-1]) == "differences = repro.apply_config(config)"
    config = cell_dict(source)
    assert tuple(config) == CONFIG_KEYS
    assert config["seed"] == 42
    assert config["profile"] == "final"
    assert config["settings"] == repro.get_profile("final").settings.as_dict()
    assert config["params"] == {"model": "ResNet18", "optimizer": "AdamW", "lr": 0.001}
    environment = config["environment"]
    assert environment["frameworks"]["torch"]["version"] == torch.__version__
    assert "seed" not in environment and "profile" not in environment


TRICKY = {
    "quotes": "it's \"quoted\" and 'single'",
    "more doubles": 'say "hi" and "bye"',
    "lines": "one\ntwo\r\nthree\ttab\\backslash",
    "unicode": "héllo wörld — 日本語 🎲",
    "controls": "\x00\x1b[31m\u2028\u200b\ud800",
    "numbers": [0, -1, 2**70, 0.1, -0.0, 1e16, 1e-300, 1.5e300],
    "numpy": [np.float32(0.5), np.int64(7), np.float64(1e-3)],
    "nested": {"tuple": (1,), "pair": ("a", {"b": [None, True, False]}), "empty": ((), [], {})},
    "long": ("x" * 200,),
    "int keys": {1: "one", 2: "two"},
}


def test_config_cell_round_trips_any_literal_params() -> None:
    config = cell_dict(repro.config_cell(TRICKY))
    assert config["params"] == TRICKY
    assert list(config["params"]) == list(TRICKY)  # the user's order is kept


def _ruff(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    return subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_config_cell_is_already_ruff_formatted(tmp_path: Path) -> None:
    import nbformat

    repro.setup(42, "debug")
    source = repro.config_cell(TRICKY)
    project = Path(__file__).resolve().parents[1]
    # As a file (a file ends with a newline; a cell does not): project settings and ruff's own.
    for settings in (["--config", str(project / "pyproject.toml")], ["--isolated"]):
        done = _ruff("format", *settings, "-", stdin=source + "\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout == source + "\n"
    # As the notebook cell it becomes: ruff formats .ipynb cells itself.
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    path = tmp_path / "exported.ipynb"
    nbformat.write(notebook, path)
    done = _ruff("format", "--isolated", "--diff", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_cell_text_is_stable() -> None:
    repro.setup(3, "search")
    first, second = repro.config_cell({"b": 1, "a": 2}), repro.config_cell({"b": 1, "a": 2})

    def without_time(source: str) -> str:
        captured = cell_dict(source)["environment"]["captured"]
        return source.replace(captured, "<time>")

    assert without_time(first) == without_time(second)


@pytest.mark.parametrize(
    ("params", "error", "words"),
    [
        ({"lr": math.nan}, ValueError, "params['lr'] is nan"),
        ({"lr": [1.0, math.inf]}, ValueError, "params['lr'][1] is inf"),
        ({"model": object()}, TypeError, "params['model'] is a object"),
        ({"layers": {1, 2}}, TypeError, "is a set"),
        ({"data": b"bytes"}, TypeError, "is a bytes"),
        ({"bad": {(1, 2): "tuple key"}}, TypeError, "has a key (1, 2)"),
        ({1: "x"}, TypeError, "param names must be strings"),
        ([("lr", 0.1)], TypeError, "params must be a dict"),
    ],
)
def test_config_cell_refuses_what_is_not_a_literal(
    params: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        repro.config_cell(params)


def test_config_cell_refuses_a_list_that_contains_itself() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        repro.config_cell({"loop": loop})


# --- apply_config and check ----------------------------------------------------------------


def _draws() -> tuple[float, list[float], list[float]]:
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_applying_a_cell_restores_seed_profile_flags_and_streams(
    capsys: pytest.CaptureFixture[str],
) -> None:
    repro.setup(42, "debug", deterministic_algorithms="warn")
    flags = dict(repro.state().settings)
    expected = _draws()
    repro.setup(42)  # the streams again, for the export's fingerprints
    source = repro.config_cell({"lr": 0.001})

    repro.setup(7, "production")
    random.random()
    namespace: dict[str, Any] = {}
    exec(compile(source, "<config cell>", "exec"), namespace)  # what running the cell does

    st = repro.state()
    assert (st.seed, st.profile) == (42, "debug")
    assert dict(st.overrides) == {"deterministic_algorithms": "warn"}
    assert dict(st.settings) == flags
    assert _draws() == expected
    assert _session.current().config == cell_dict(source)
    out = capsys.readouterr().out
    assert "applied config: seed 42 · profile debug" in out
    assert "matches the recorded environment" in out


def test_apply_config_returns_one_line_per_difference() -> None:
    repro.setup(42, "debug")
    config = cell_dict(repro.config_cell())
    config["environment"]["frameworks"]["torch"]["version"] = "2.0.0"
    config["environment"]["frameworks"]["numpy"]["version"] = "1.21.0"
    config["environment"]["frameworks"]["torch"]["intra_op_threads"] = 999
    config["environment"]["os"]["release"] = "1.0-old"

    lines = repro.apply_config(config, quiet=True)
    assert lines == [
        "OS release 1.0-old → " + os.uname().release + " (informational)",
        f"numpy 1.21.0 → {np.__version__}",
        f"torch 2.0.0 → {torch.__version__}",
        f"torch intra op threads 999 → {torch.get_num_threads()} (informational)",
    ]
    assert repro.state().seed == 42


def test_a_library_missing_here_is_a_difference() -> None:
    config = cell_dict(repro.config_cell())
    config["environment"]["frameworks"]["jax"] = {"version": "0.4.30", "imported": True}
    assert repro.apply_config(config, quiet=True) == ["jax 0.4.30 → not installed"]


def test_strict_raises_on_what_affects_results_and_changes_nothing() -> None:
    repro.setup(42, "debug")
    config = cell_dict(repro.config_cell())
    config["environment"]["frameworks"]["torch"]["version"] = "2.0.0"
    config["environment"]["backend_flags"]["float32_matmul_precision"] = "medium"
    fixed = repro.state().hash_fixed
    config["environment"]["hashing"] = {"randomized": fixed, "seed": None if fixed else 5}
    config["environment"]["git"] = {"commit": "0" * 40, "dirty": False}
    repro.setup(7, "search")
    random_state = random.getstate()

    with pytest.raises(ValueError) as raised:
        repro.apply_config(config, strict=True)
    message = str(raised.value)
    assert f"torch 2.0.0 → {torch.__version__}" in message
    assert "float32_matmul_precision medium → highest" in message
    assert "str hashing" in message
    assert "git commit" not in message  # informational only
    st = repro.state()
    assert (st.seed, st.profile, _session.current().config) == (7, "search", None)
    assert random.getstate() == random_state
    # Informational differences alone pass strict mode.
    del config["environment"]["backend_flags"]["float32_matmul_precision"]
    config["environment"]["frameworks"]["torch"]["version"] = torch.__version__
    config["environment"]["hashing"] = repro.environment()["hashing"]
    lines = repro.apply_config(config, strict=True, quiet=True)
    assert lines and all(line.endswith("(informational)") for line in lines)
    assert repro.state().seed == 42


@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        ([("seed", 42)], TypeError, "config must be a dict"),
        ({"seed": -1}, ValueError, "0 <= seed < 2\\*\\*32"),
        ({"seed": "42"}, TypeError, "config\\['seed'\\] must be an integer"),
        ({"seed": True}, TypeError, "config\\['seed'\\] must be an integer"),
        ({"profile": "nope"}, ValueError, "unknown profile 'nope'"),
        ({"profile": 3}, TypeError, "profile name is a str"),
        ({"profile": "debug", "settings": {"warp": True}}, TypeError, "unknown setting warp"),
        ({"profile": "debug", "settings": {"cudnn_benchmark": "no"}}, TypeError, "True or False"),
        ({"profile": "debug", "settings": ["x"]}, TypeError, "must be a dict of flags"),
        ({"settings": {"cudnn_benchmark": True}}, ValueError, "needs a profile"),
        ({"seed": 1, "lr": 0.1}, ValueError, "unknown config key 'lr'.*under 'params'"),
        ({"seed": 1, "params": ["lr"]}, TypeError, "config\\['params'\\] must be a dict"),
        ({"seed": 1, "params": {"f": print}}, TypeError, "builtin_function_or_method"),
        ({"seed": 1, "params": {"lr": math.nan}}, ValueError, "is nan"),
    ],
)
def test_bad_configs_are_refused_and_change_nothing(
    config: Any, error: type[Exception], words: str
) -> None:
    random_state = random.getstate()
    with pytest.raises(error, match=words):
        repro.apply_config(config)
    st = repro.state()
    assert (st.seed, st.profile, _session.current().config) == (None, None, None)
    assert random.getstate() == random_state


def test_strict_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="strict must be True or False"):
        repro.apply_config({"seed": 1}, strict="yes")  # type: ignore[arg-type]
    assert repro.state().seed is None


def test_check_compares_the_kernel_with_the_applied_config() -> None:
    with pytest.raises(ValueError, match="no config has been applied"):
        repro.check()
    repro.setup(42, "debug")
    repro.apply_config(cell_dict(repro.config_cell()), quiet=True)
    assert repro.check() == []
    repro.seed(7)
    assert repro.check() == ["seed 42 → 7"]
    repro.use_profile("production")
    lines = repro.check()
    assert "profile debug → production" in lines
    assert "cudnn_benchmark False → True" in lines
    assert "deterministic_algorithms raise → off" in lines


def test_the_config_is_kept_as_applied_not_as_later_mutated() -> None:
    config = cell_dict(repro.config_cell())
    config["seed"] = 5
    repro.apply_config(config, quiet=True)
    config["seed"] = 6
    assert _session.current().config["seed"] == 5
    assert repro.check() == []


# --- the magics ------------------------------------------------------------------------------


def test_export_magic_sets_the_next_input_and_runs_nothing(shell: Any) -> None:
    shell.rl_next_input = None
    shell.user_ns.pop("config", None)
    assert shell.run_cell("%repro 42 -d", store_history=False).success
    result = shell.run_cell(
        "%repro export --param lr=0.001 --param model=ResNet18 --param 'note=a \"b\"'",
        store_history=False,
    )
    assert result.success
    # IPython 9's InteractiveShell.set_next_input stores the text for the next prompt
    # (rl_next_input); ipykernel's sends the set_next_input payload (tests/test_kernel.py).
    source = shell.rl_next_input
    config = cell_dict(source)
    assert config["params"] == {"lr": 0.001, "model": "ResNet18", "note": 'a "b"'}
    assert (config["seed"], config["profile"]) == (42, "debug")
    assert "config" not in shell.user_ns  # exporting evaluates nothing
    assert shell.payload_manager.read_payload() == []


def test_check_magic_reports_a_match_after_running_the_cell(
    shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run_cell("%repro 42 -d", store_history=False).success
    shell.run_cell("%repro export", store_history=False)
    assert shell.run_cell(shell.rl_next_input, store_history=False).success
    capsys.readouterr()
    assert shell.run_cell("%repro check", store_history=False).success
    assert "matches the applied config" in capsys.readouterr().out
