"""The package as users get it: the sdist and the wheel, built, checked and installed.

The rest of the suite imports repro from the source tree (an editable install), which
hides what a real wheel lacks. Here ``python -m build`` makes both files, ``twine check``
passes on them, the wheel holds LICENSE and py.typed, and it is installed (not
editable) into a fresh virtual environment, where IPython's ``%load_ext repro``,
``%repro 42 -d`` and the ``repro info`` command run. The venv sees the packages of the
environment running the tests, so torch and IPython are not installed again; repro
itself must come from the venv's own site-packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import repro

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]

ROOT = Path(__file__).resolve().parents[1]
README_IMAGE = "https://raw.githubusercontent.com/jupyter-repro/jupyter-repro/main/docs/panel.png"


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    # Without PYTHONPATH: the tests run with the source tree on it, which would hide the wheel.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built from this tree with ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: hatchling comes from the test extra, so the build downloads nothing.
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_twine_check_passes_on_both(dist: dict[str, Path]) -> None:
    out = _run(sys.executable, "-m", "twine", "check", "--strict", dist["sdist"], dist["wheel"])
    assert out.count("PASSED") == 2, out


def test_the_wheel_holds_license_types_and_an_absolute_readme_image(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = wheel.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(info).decode()
    assert "repro/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "License-Expression: BSD-3-Clause" in metadata
    assert "License-File: LICENSE" in metadata
    # The README is the package index's page: its screenshot must load from there.
    assert f"]({README_IMAGE})" in metadata and "](docs/panel.png)" not in metadata
    assert f"Version: {repro.__version__}" in metadata
    with tarfile.open(dist["sdist"]) as sdist:
        members = sdist.getnames()
    assert any(m.endswith("/LICENSE") for m in members)
    assert any(m.endswith("/src/repro/py.typed") for m in members)


def test_the_wheel_installed_in_a_fresh_venv_works(dist: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    # The dependencies (torch, IPython, ...) come from the environment running the tests,
    # seen through a .pth file after the venv's own site-packages. Not through
    # --system-site-packages: inside a venv (the README's set-up) that would be the base
    # Python's, without them. Plain paths: the .pth files there (the editable install of
    # repro) are not run, so repro can only come from the wheel.
    outer = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "outer-environment.pth").write_text("\n".join(outer) + "\n")
    # This Python's pip installs into the venv: the wheel only, its dependencies are
    # already visible.
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--force-reinstall", "--no-index", dist["wheel"],
    )  # fmt: skip
    code = """
import json, io, contextlib
import repro
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    ok = [shell.run_cell(c).success for c in ("%load_ext repro", "%repro 42 -d")]
state = repro.state()
print(json.dumps([repro.__file__, ok, state.seed, state.profile, out.getvalue()]))
"""
    where, ok, seed, profile, printed = json.loads(_run(python, "-c", code).splitlines()[-1])
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    assert Path(where).is_relative_to(site), f"repro came from {where}, not the venv's {site}"
    assert ok == [True, True] and seed == 42 and profile == "debug"
    assert "repro: seed 42" in printed
    info = _run(venv / "bin" / "repro", "info", "--json")
    assert json.loads(info)["repro"] == repro.__version__
    assert (site / "repro" / "py.typed").is_file()
    # pytest finds `pytest --repro` through the wheel's pytest11 entry point (no -p option).
    import nbformat

    (tmp_path / "notebooks").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "a.ipynb")
    found = _run(
        python, "-m", "pytest", "--repro", "--collect-only", "-q", "-p", "no:cacheprovider",
        "notebooks", cwd=tmp_path,
    )  # fmt: skip
    assert "notebooks/a.ipynb::reproducible" in found, found
