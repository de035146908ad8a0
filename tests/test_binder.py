"""binder/ builds a working environment: the CPU torch, repro itself, JupyterLab with widgets.

The quick tests read the files as repo2docker will; the slow one builds the environment
from them in a fresh venv (scripts/check_binder.sh) and runs the quickstart notebook in it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def requirement_names() -> set[str]:
    names = set()
    for line in requirement_lines():
        if not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_torch_is_the_cpu_build_from_pytorchs_cpu_index() -> None:
    # A plain "torch" would resolve to PyPI's CUDA build: gigabytes on every Binder launch.
    lines = requirement_lines()
    torch = [line for line in lines if re.match(r"torch\b", line)]
    assert torch and all(re.fullmatch(r"torch==\d+\.\d+\.\d+\+cpu", line) for line in torch), torch
    assert f"--extra-index-url {CPU_INDEX}" in lines


def test_requirements_cover_jupyterlab_widgets_the_bridge_and_the_notebooks() -> None:
    wanted = {"jupyterlab", "ipywidgets", "ipylab", "ipykernel", "numpy", "matplotlib"}
    assert wanted <= requirement_names()


def test_post_build_installs_the_repository_root_with_the_lab_extra() -> None:
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK), "repo2docker runs postBuild as ./binder/postBuild"
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert 'pip install --no-cache-dir -e ".[lab]"' in text
    # repo2docker runs it from the repository root; it also works from anywhere else.
    assert 'cd "$(dirname "${BASH_SOURCE[0]}")/.."' in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "lab" in project["optional-dependencies"]


def test_runtime_python_is_one_the_package_supports() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match, runtime
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = int(re.fullmatch(r">=3\.(\d+)", requires).group(1))
    assert int(match.group(1)) >= minimum


def test_binder_opens_on_a_notebook_that_exists() -> None:
    # The badge's urlpath: lab/tree/notebooks/01-quickstart.ipynb
    assert (ROOT / "notebooks" / "01-quickstart.ipynb").is_file()


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    os.environ.get("REPRO_TEST_BINDER_BUILD") != "1",
    reason="builds a whole environment (many minutes): opt in with REPRO_TEST_BINDER_BUILD=1, "
    "or run scripts/check_binder.sh",
)
def test_binder_environment_builds_from_scratch_and_runs_the_quickstart(tmp_path: Path) -> None:
    """The whole Binder build, here: fresh venv, requirements, postBuild, the quickstart."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_binder.sh"), str(tmp_path / "venv")],
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=1780,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    assert "torch 2.13.0+cpu" in result.stdout
    assert "cells ran without error" in result.stdout
