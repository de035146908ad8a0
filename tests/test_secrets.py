"""Secrets and trust: nothing repro shows carries a secret; hostile configs run nothing.

Secret-looking variables are planted in the environment (cloud keys, tokens, a database
URL with its password) and credentials in git remotes (a real repository in tmp_path);
no planted value may appear in ``repro.environment()``, the config cell, ``repro info``
(text and JSON, in-process and as a command), the panel's HTML, the state's text and
HTML, or an error message. ``repro.apply_config`` on hostile data (deep nesting, huge
strings and lists, code disguised as strings, wrong types) is rejected with a clear
``TypeError``/``ValueError``, runs nothing, changes nothing and returns quickly.

Verify's reports (``repro.verify``, ``%%repro --verify``, ``repro verify NOTEBOOK`` with
``--json`` and ``--save``) show the user's own differing values: a value read from a
secret-looking variable is shown as ``$NAME``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from tests.reliability import differences, kernel_state, record

import repro
from repro import cli

#: Names real secrets go by. Each gets a random value, so a match in the output is a leak.
SECRET_NAMES = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITLAB_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "WANDB_API_KEY",
    "COMET_API_KEY",
    "NEPTUNE_API_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_API_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "KAGGLE_KEY",
    "NPM_TOKEN",
    "PYPI_TOKEN",
    "TWINE_PASSWORD",
    "SLACK_BOT_TOKEN",
    "STRIPE_SECRET_KEY",
    "SECRET_KEY",
    "JWT_SECRET",
    "SSH_AUTH_SOCK",
    "REDIS_URL",
]
#: Variables whose value holds a secret inside something that looks harmless.
SECRET_URLS = {
    "DATABASE_URL": "postgres://admin:{}@db.internal:5432/prod",
    "CELERY_BROKER_URL": "amqp://worker:{}@rabbit:5672//",
    "HTTPS_PROXY": "http://proxyuser:{}@proxy.corp:3128",
    "PIP_INDEX_URL": "https://__token__:{}@pypi.corp/simple",
}
#: Git remotes carrying credentials: the secret part must go, the repository stay.
REMOTES = {
    "https://x-access-token:{}@github.com/owner/repo.git": "https://github.com/owner/repo.git",
    "https://oauth2:{}@gitlab.com/group/repo.git": "https://gitlab.com/group/repo.git",
    "https://{}@github.com/owner/repo.git": "https://github.com/owner/repo.git",
    "https://github.com/owner/repo.git?access_token={}": "https://github.com/owner/repo.git",
    "ssh://deploy:{}@git.corp:2222/team/repo.git": "ssh://git.corp:2222/team/repo.git",
    "http://user:{}@10.0.0.5/repo.git#{}": "http://10.0.0.5/repo.git",
}


def _secret(name: str) -> str:
    # Random, so that it cannot appear in any output by chance.
    return f"{name.lower().replace('_', '-')}-{secrets.token_hex(8)}"


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The secret-looking variables set in os.environ; yields the secret values."""
    values = []
    for name in SECRET_NAMES:
        value = _secret(name)
        monkeypatch.setenv(name, value)
        values.append(value)
    for name, template in SECRET_URLS.items():
        password = _secret(name)
        monkeypatch.setenv(name, template.format(password))
        values.append(password)
    assert len(values) >= 25
    yield values


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A real git repository with one commit."""
    folder = tmp_path / "project"
    folder.mkdir()
    _git(folder, "init", "-q", "-b", "main")
    (folder / "train.py").write_text("print('hi')\n")
    _git(folder, "add", "train.py")
    _git(folder, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "one")
    return folder


def _assert_clean(text: str, values: list[str], where: str) -> None:
    leaked = [value for value in values if value in text]
    assert not leaked, f"{where} leaks {leaked}"


def _panel_html(shell: Any) -> str:
    import ipywidgets

    p = repro.panel()
    try:
        p.export_button.click()  # no frontend here: the panel shows the config cell's code
        p.seed_text.value = "not a seed"
        p.apply_button.click()  # an error message in the status line
        parts = []
        stack = [p]
        while stack:
            widget = stack.pop()
            if isinstance(widget, ipywidgets.Box):
                stack.extend(widget.children)
            for attribute in ("value", "description", "tooltip", "placeholder"):
                value = getattr(widget, attribute, None)
                if isinstance(value, str):
                    parts.append(value)
        return "\n".join(parts)
    finally:
        p.close()


def _errors(shell: Any) -> str:
    """The messages of errors a user meets, collected."""
    messages = []
    for call in (
        lambda: repro.seed(-1),
        lambda: repro.use_profile("nope"),
        lambda: repro.apply_config({"seed": "x"}),
        lambda: repro.apply_config({"environment": {"environ": {"X": 1}}, "extra": 1}),
        lambda: repro.check(),
        lambda: shell.run_line_magic("repro", "--profile nope"),
        lambda: shell.run_line_magic("repro", "export --param"),
    ):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                call()
        except (TypeError, ValueError, UsageError) as exc:
            messages.append(str(exc))
    # strict=True lists what differs from a config recorded in another environment.
    config = ast.literal_eval(repro.config_cell().split("config = ", 1)[1].rsplit("\n", 1)[0])
    config["environment"]["environ"] = {"CUBLAS_WORKSPACE_CONFIG": ":16:8"}
    config["environment"]["python"]["version"] = "2.7.18"
    with pytest.raises(ValueError) as info:
        repro.apply_config(config, strict=True)
    messages.append(str(info.value))
    return "\n".join(messages)


def test_no_planted_secret_appears_anywhere(
    shell: Any, planted: list[str], repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _secret("git-token")
    _git(
        repository, "remote", "add", "origin", f"https://x-access-token:{token}@github.com/o/r.git"
    )
    values = [*planted, token]
    monkeypatch.chdir(repository)
    repro.setup(42, "final")

    env = repro.environment()
    _assert_clean(json.dumps(env), values, "repro.environment()")
    assert env["git"]["remote"] == "https://github.com/o/r.git"
    cell = repro.config_cell({"lr": 1e-3})
    _assert_clean(cell, values, "the config cell")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        repro.apply_config(ast.literal_eval(cell.split("config = ", 1)[1].rsplit("\n", 1)[0]))
    _assert_clean(printed.getvalue(), values, "apply_config's report")
    st = repro.state()
    _assert_clean(str(st) + st._repr_html_(), values, "repro.state()")
    for argv in (["info"], ["info", "--json"], ["info", "--import"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(argv) == 0
        _assert_clean(out.getvalue(), values, f"repro {' '.join(argv)}")
    _assert_clean(_panel_html(shell), values, "the panel")
    _assert_clean(_errors(shell), values, "error messages")
    record("secrets-planted", secrets_planted=len(values), leaked=0)


def test_repro_info_command_shows_no_secret(planted: list[str], repository: Path) -> None:
    token = _secret("git-token")
    _git(repository, "remote", "add", "origin", f"https://user:{token}@github.com/o/r.git")
    for argv in (["info"], ["info", "--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "repro", *argv],
            capture_output=True,
            text=True,
            cwd=repository,
            env=os.environ,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        _assert_clean(proc.stdout + proc.stderr, [*planted, token], f"repro {' '.join(argv)}")
        assert "github.com/o/r.git" in proc.stdout


@pytest.mark.parametrize("template", list(REMOTES))
def test_git_remote_credentials_are_stripped(repository: Path, template: str) -> None:
    token = _secret("remote")
    _git(repository, "remote", "add", "origin", template.format(token, token))
    # A second remote with credentials of its own: only origin is reported, cleaned.
    _git(repository, "remote", "add", "upstream", f"https://bot:{token}-up@example.org/u.git")
    remote = repro.environment(repository=repository)["git"]["remote"]
    assert token not in remote
    assert remote == REMOTES[template]


# --- hostile configs ----------------------------------------------------------------


def _nested(depth: int, container: type = list) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value] if container is list else {"k": value}
    return value


MARKER = "repro_hostile_marker"

#: name -> (a function making the config, the exception it must raise); made when the test
#: runs, so that collecting the tests builds no 50 MB string.
HOSTILE: dict[str, tuple[Callable[[], Any], type[Exception]]] = {
    "lists nested 100,000 deep": (lambda: {"params": {"x": _nested(100_000)}}, ValueError),
    "dicts nested 100,000 deep": (lambda: {"params": _nested(100_000, dict)}, ValueError),
    "environment nested 100,000 deep": (
        lambda: {"environment": _nested(100_000, dict)},
        ValueError,
    ),
    "a 50 MB string": (lambda: {"params": {"blob": "x" * 50_000_000}}, ValueError),
    "a 50 MB key": (lambda: {"params": {"k" * 50_000_000: 1}}, ValueError),
    "a list of 5 million items": (lambda: {"params": {"xs": [0] * 5_000_000}}, ValueError),
    "a dict of 1 million keys": (
        lambda: {"params": {str(i): i for i in range(1_000_000)}},
        ValueError,
    ),
    "code as the seed": (lambda: {"seed": f"__import__('os').system('touch {MARKER}')"}, TypeError),
    "code as the profile": (
        lambda: {"profile": f"__import__('pathlib').Path('{MARKER}').touch()"},
        ValueError,
    ),
    "code as a flag": (
        lambda: {"profile": "debug", "settings": {"cudnn_benchmark": "True"}},
        TypeError,
    ),
    "code as a flag name": (
        lambda: {"profile": "debug", "settings": {f"__import__('os').system('touch {MARKER}')": 1}},
        TypeError,
    ),
    "a lambda": (lambda: {"params": {"f": lambda: Path(MARKER).touch()}}, TypeError),
    "a set": (lambda: {"params": {"s": {1, 2}}}, TypeError),
    "bytes": (lambda: {"params": {"b": b"\x00"}}, TypeError),
    "a float seed": (lambda: {"seed": 42.0}, TypeError),
    "a bool seed": (lambda: {"seed": True}, TypeError),
    "a huge seed": (lambda: {"seed": 10**4000}, ValueError),
    "NaN": (lambda: {"params": {"lr": float("nan")}}, ValueError),
    "settings as a list": (lambda: {"profile": "debug", "settings": [1]}, TypeError),
    "params as a str": (lambda: {"params": "x"}, TypeError),
    "environment as a list": (lambda: {"environment": [1]}, TypeError),
    "an unknown key": (lambda: {"exec": "print(1)"}, ValueError),
    "an int key": (lambda: {1: 2}, ValueError),
    "a list": (lambda: [("seed", 1)], TypeError),
    "a str": (lambda: "{'seed': 1}", TypeError),
    "None": (lambda: None, TypeError),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_config_is_rejected_fast_and_runs_nothing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, expected = HOSTILE[name]
    config = make()
    monkeypatch.chdir(tmp_path)
    repro.setup(7, "final")
    before = kernel_state()
    started = time.perf_counter()
    with pytest.raises(expected) as info:
        repro.apply_config(config, quiet=True)
    took = time.perf_counter() - started
    message = str(info.value)
    assert message and len(message) < 500 and "\n" not in message, message
    assert took < 2.0, f"{name}: rejected after {took:.1f} s"  # a guard, not a benchmark
    assert not (tmp_path / MARKER).exists(), f"{name}: code in the config ran"
    assert differences(before, kernel_state()) == []
    assert repro.state().seed == 7  # and check() still compares with no config applied
    record(f"hostile-{name.replace(' ', '-').replace(',', '')}", hostile_configs=1)


def test_hostile_params_to_config_cell_are_rejected_fast() -> None:
    for params in ({"x": _nested(100_000)}, {"blob": "x" * 50_000_000}, {"xs": [0] * 5_000_000}):
        started = time.perf_counter()
        with pytest.raises(ValueError, match="params"):
            repro.config_cell(params)
        assert time.perf_counter() - started < 2.0


def test_a_config_at_the_limits_still_applies() -> None:
    # The bounds are generous: a config with deep-ish, long, large params is accepted.
    params = {"nested": _nested(50), "prompt": "x" * 100_000, "grid": list(range(10_000))}
    cell = repro.config_cell(params)
    config = ast.literal_eval(cell.split("config = ", 1)[1].rsplit("\n", 1)[0])
    with contextlib.redirect_stdout(io.StringIO()):
        repro.apply_config(config)
    assert repro.check() == []


def test_verify_reports_show_no_secret(
    shell: Any, planted: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    leaky = "os.environ['HF_TOKEN'] + ' ' + str(random.SystemRandom().random())"
    report = repro.verify(eval(f"lambda: {leaky}", {"os": os, "random": __import__("random")}))
    assert not report.reproducible
    _assert_clean(str(report) + report._repr_html_(), planted, "repro.verify's report")
    assert "$HF_TOKEN" in str(report)  # the value is named, not shown

    assert shell.run_cell("import os, random").success
    capsys.readouterr()
    assert shell.run_cell(f"%%repro 1 --verify\ntoken = {leaky}\ntoken").success
    shown = capsys.readouterr()
    verdicts = shown.out.splitlines()[-1:]  # the cell's own output (the token) shows once, as typed
    _assert_clean("\n".join(verdicts) + shown.err, planted, "%%repro --verify's report")
    assert "NOT reproducible" in shown.out
    _assert_clean(repro.state()._repr_html_(), planted, "the state's last verdict")

    path = tmp_path / "leaky.ipynb"
    cells = [new_code_cell(f"import os, random\ntoken = {leaky}\nprint(token)")]
    nbformat.write(new_notebook(cells=cells), path)
    recording = tmp_path / "recording.json"
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "verify", str(path), "--json", "--save", str(recording)],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    _assert_clean(proc.stdout + proc.stderr, planted, "repro verify --json")
    _assert_clean(recording.read_text(), planted, "repro verify --save's recording")
    assert "$HF_TOKEN" in proc.stdout
