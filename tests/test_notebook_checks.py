"""Verify where notebooks are already checked: ``pytest --repro``, ``repro verify`` on several
notebooks, the pre-commit hook and the GitHub Actions example.

Every check here is the real thing: pytest in a subprocess with the plugin (under
pytest-xdist ``-n 2`` and with ``--junitxml``), the ``repro`` command, the hook's entry
and ``pre-commit try-repo`` where pre-commit is installed. Each notebook verification
starts real kernels (a second or two each), so one pytest session is shared by the
tests that read it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from repro._notebook_checks import recording_for, trace_available

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("notebook-checks")]

ROOT = Path(__file__).resolve().parents[1]

#: The plugin as pytest finds it: through the installed ``pytest11`` entry point, or,
#: where this checkout is not the installed one, named on the command line.
INSTALLED = any(ep.value == "repro._pytest_plugin" for ep in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "repro._pytest_plugin"]


def write(path: Path, *sources: str) -> Path:
    """A notebook: a markdown cell first (so positions count it, as JupyterLab does)."""
    cells = [new_markdown_cell(f"# {path.stem}"), *(new_code_cell(s) for s in sources)]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def seeded(path: Path, scale: int = 2) -> Path:
    return write(
        path,
        "import numpy as np",
        f"x = np.random.default_rng(7).normal(size=4) * {scale}\nprint(x.sum())",
    )


def unseeded(path: Path) -> Path:
    # Cell 3 (counting the markdown cell) draws from a generator seeded by the OS.
    return write(
        path, "import numpy as np", "noise = np.random.default_rng().normal(size=4)", "noise * 2"
    )


def path_with_scripts() -> dict[str, str]:
    """This environment, with this interpreter's scripts (``repro``) first on PATH."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}


def tagged(path: Path, ignored_output_draws: bool = False) -> Path:
    """nbval's tags: a cell that would fail is skipped; a cell whose printout varies is kept.

    With ``ignored_output_draws`` the ignored-output cell also binds an OS-seeded value:
    its variables are still compared, so cell 4 differs.
    """
    draw = "\nnoise = np.random.default_rng().normal(size=3)" if ignored_output_draws else ""
    cells = [
        new_markdown_cell(f"# {path.stem}"),
        new_code_cell("import time\nimport numpy as np"),
        new_code_cell("raise RuntimeError('never runs')", metadata={"tags": ["nbval-skip"]}),
        new_code_cell(
            f"print('took', time.perf_counter_ns()){draw}",
            metadata={"tags": ["nbval-ignore-output"]},
        ),
        new_code_cell("x = np.random.default_rng(3).normal(size=3)\nx"),
    ]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def pytest_run(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m pytest`` in ``folder`` (its own rootdir: no ini file of this project)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *PLUGIN, "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with reproducible, non-reproducible, tagged and recorded notebooks."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "notebooks").mkdir()
    seeded(folder / "notebooks" / "good.ipynb")
    unseeded(folder / "notebooks" / "bad.ipynb")
    tagged(folder / "notebooks" / "tagged.ipynb")
    tagged(folder / "notebooks" / "tagged-draws.ipynb", ignored_output_draws=True)
    recorded = seeded(folder / "notebooks" / "recorded.ipynb")
    from repro.cli import main

    assert main(["verify", str(recorded), "--save", "-q"]) == 0
    return folder


@pytest.fixture(scope="module")
def session(project: Path) -> tuple[subprocess.CompletedProcess, ET.Element]:
    """``pytest --repro -n 2 --junitxml`` on the project's notebooks."""
    proc = pytest_run(project, "--repro", "-n", "2", "-v", "--junitxml=out.xml", "notebooks")
    return proc, ET.parse(project / "out.xml").getroot()


def cases_of(root: ET.Element) -> dict[str, ET.Element]:
    return {
        case.get("classname", "") + "::" + case.get("name", ""): case
        for case in root.iter("testcase")
    }


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_save_without_file_writes_the_recording_beside_the_notebook(project: Path) -> None:
    recorded = project / "notebooks" / "recorded.ipynb"
    assert recording_for(recorded) == project / "notebooks" / "recorded.repro.json"
    assert recording_for(recorded).is_file()
    assert sorted(p.name for p in (project / "notebooks").iterdir() if p.suffix == ".json") == [
        "recorded.repro.json"
    ]


def test_one_test_per_notebook_under_xdist(session: tuple) -> None:
    proc, root = session
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = cases_of(root)
    assert len(cases) == 5, cases.keys()
    assert all(name.endswith("::reproducible") for name in cases)
    # Two workers took notebooks: they ran side by side.
    workers = set(re.findall(r"\[(gw\d+)\][^\n]* (?:PASSED|FAILED) ", proc.stdout))
    assert workers == {"gw0", "gw1"}, proc.stdout
    assert re.search(r"PASSED notebooks/good\.ipynb::reproducible", proc.stdout)
    assert re.search(r"FAILED notebooks/bad\.ipynb::reproducible", proc.stdout)


def test_failure_is_verifys_report_naming_the_cell(session: tuple) -> None:
    proc, root = session
    (bad,) = [case for name, case in cases_of(root).items() if "bad" in name]
    failure = bad.find("failure")
    assert failure is not None
    text = failure.text or ""
    verdict = properties(bad)["repro_verdict"]
    assert re.match(r"NOT reproducible: cell 3\b", verdict)
    assert properties(bad)["repro_first_differing_cell"] == "3"
    assert text.startswith(verdict + "\n")  # the verdict first, then verify's report
    assert "noise: ndarray float64 (4,)" in text
    # The short summary leads with the verdict, not a traceback.
    assert "FAILED notebooks/bad.ipynb::reproducible - NOT reproducible: cell 3" in proc.stdout


def test_nbvals_tags_are_honoured(session: tuple) -> None:
    _, root = session
    cases = cases_of(root)
    (passing,) = [case for name, case in cases.items() if "tagged.ipynb" in name]
    (draws,) = [case for name, case in cases.items() if "tagged-draws.ipynb" in name]
    # nbval-skip: the raising cell did not run; nbval-ignore-output: the time printed is not
    # compared...
    assert passing.find("failure") is None, passing.find("failure").text
    # ...but that cell's variables are.
    failure = draws.find("failure")
    assert failure is not None
    assert properties(draws)["repro_first_differing_cell"] == "4"
    assert "noise" in (failure.text or "")


def test_passing_and_recorded_notebooks(session: tuple) -> None:
    _, root = session
    cases = cases_of(root)
    (good,) = [case for name, case in cases.items() if "good" in name]
    (recorded,) = [case for name, case in cases.items() if "recorded" in name]
    assert good.find("failure") is None and recorded.find("failure") is None
    assert properties(good)["repro_verdict"].startswith("reproducible")
    assert "repro.json" not in properties(good)["repro_verdict"]
    assert "repro_recording" not in properties(good)
    assert properties(recorded)["repro_recording"] == "recorded.repro.json"
    assert properties(recorded)["repro_verdict"].startswith("reproducible")
    assert "against recorded.repro.json" in properties(recorded)["repro_verdict"]


def test_a_recording_that_no_longer_matches_after_a_code_change(
    tmp_path: Path, project: Path
) -> None:
    source = project / "notebooks" / "recorded.ipynb"
    notebook = Path(shutil.copy(source, tmp_path / source.name))
    shutil.copy(recording_for(source), recording_for(notebook))
    assert pytest_run(tmp_path, "--repro", "-n", "0").returncode == 0  # the same code: passes
    # Cell 3 now scales by 3 (the same cell, its id kept): its x and its printout differ.
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("* 2", "* 3")
    nbformat.write(nb, notebook)
    proc = pytest_run(tmp_path, "--repro", "-n", "0")
    assert proc.returncode == 1, proc.stdout
    assert re.search(r"NOT reproducible: cell 3\b.* against recorded\.repro\.json", proc.stdout)
    assert re.search(r"^  x: ndarray float64 \(4,\): 4 of 4 elements differ", proc.stdout, re.M)


def test_without_repro_the_plugin_collects_nothing(tmp_path: Path) -> None:
    seeded(tmp_path / "a.ipynb")
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    # What the run loaded: verify's engine, nbclient, or the plugin's helpers would cost time.
    (tmp_path / "conftest.py").write_text(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        "    heavy = ('nbclient', 'nbformat', 'repro._verify', 'repro._notebook_checks')\n"
        "    print('LOADED', sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    proc = pytest_run(tmp_path, "-n", "0", "-s")
    assert proc.returncode == 0, proc.stdout
    assert "collected 1 item" in proc.stdout  # the .py test, not the notebook
    assert "LOADED []" in proc.stdout
    listed = pytest_run(tmp_path, "--help")
    assert "--repro-runs=N" in listed.stdout  # yet the plugin is loaded: its options are there


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("--repro-runs=1", "--runs must be an integer >= 2, got '1'"),
        ("--repro-hash-seed=-3", "hash seed"),
        ("--repro-timeout=0", "must be a number of seconds > 0, got '0'"),
    ],
)
def test_bad_options_are_one_usage_error(project: Path, option: str, said: str) -> None:
    proc = pytest_run(project, "--repro", option, "notebooks")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert said in proc.stderr
    assert not (project / "notebooks" / "good.repro.json").exists()


def test_repro_trace_says_whether_it_is_available(project: Path) -> None:
    proc = pytest_run(project, "--repro", "--repro-trace", "--co", "notebooks")
    if trace_available():
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        assert proc.returncode == pytest.ExitCode.USAGE_ERROR
        assert "--repro-trace: not available in this version of repro" in proc.stderr


# --- repro verify on several notebooks, the pre-commit hook ------------------------------

HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def test_the_hook_is_declared_for_notebooks() -> None:
    (hook,) = [h for h in HOOKS if h["id"] == "repro-verify"]
    files = re.compile(hook["files"])
    assert files.search("notebooks/a.ipynb") and not files.search("a.ipynb.py")
    assert shlex.split(hook["entry"])[:2] == ["repro", "verify"]


def test_the_hooks_entry_on_several_notebooks(project: Path) -> None:
    """What pre-commit runs: the entry with the staged notebooks; a line each, the worst exit."""
    (hook,) = [h for h in HOOKS if h["id"] == "repro-verify"]
    argv = shlex.split(hook["entry"])
    env = path_with_scripts()
    assert shutil.which(argv[0], path=env["PATH"]), f"{argv[0]} is not on PATH"
    proc = subprocess.run(
        [*argv, "notebooks/good.ipynb", "notebooks/bad.ipynb", "notebooks/recorded.ipynb"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert lines[0].startswith("ok   notebooks/good.ipynb: reproducible")
    assert re.match(r"FAIL notebooks/bad\.ipynb: NOT reproducible: cell 3\b", lines[1])
    assert re.search(r"^    cell 3\b.*differs", proc.stdout, re.M)  # its report, indented
    assert any(
        line.startswith("ok   notebooks/recorded.ipynb:")
        and line.endswith("against recorded.repro.json")
        for line in lines
    )
    assert lines[-1] == "3 notebooks: 2 reproducible, 1 not reproducible, 0 undecided"


def test_several_notebooks_refuse_one_file_for_all(project: Path, capsys) -> None:
    from repro.cli import main

    nbs = [str(project / "notebooks" / n) for n in ("good.ipynb", "bad.ipynb")]
    assert main(["verify", *nbs, "--save", "x.json"]) == 2
    assert "--save FILE takes one notebook" in capsys.readouterr().err
    assert main(["verify", *nbs, str(project / "nope.ipynb")]) == 2
    assert "no notebook" in capsys.readouterr().err
    assert not Path("x.json").exists()


@pytest.mark.skipif(shutil.which("pre-commit") is None, reason="pre-commit is not installed")
def test_pre_commit_try_repo(tmp_path: Path) -> None:
    """pre-commit itself runs the hook from this checkout on a repository's notebooks."""
    if not (ROOT / ".git").exists():
        pytest.skip("this checkout is not a git repository (pre-commit clones it)")
    unseeded(tmp_path / "bad.ipynb")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "notebooks"], cwd=tmp_path, check=True)
    env = {**path_with_scripts(), "PRE_COMMIT_HOME": str(tmp_path / ".pre-commit-home")}
    proc = subprocess.run(
        ["pre-commit", "try-repo", str(ROOT), "repro-verify", "--files", "bad.ipynb"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "- hook id: repro-verify" in proc.stdout
    assert re.search(r"NOT reproducible: cell 3\b", proc.stdout)


# --- the GitHub Actions example ------------------------------------------------------

WORKFLOW = ROOT / "docs" / "examples" / "github-actions.yml"


def workflow_commands() -> list[list[str]]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["reproducible"]["steps"]
    return [shlex.split(step["run"]) for step in steps if "run" in step]


def test_the_workflow_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```yaml\n{WORKFLOW.read_text()}```" in readme


def test_the_workflows_commands_are_real(tmp_path: Path) -> None:
    """Its pytest command, with --collect-only, is accepted and collects the notebooks."""
    commands = workflow_commands()
    install = next(c for c in commands if c[:2] == ["pip", "install"])
    assert "jupyter-repro" in install and "pytest-xdist" in install
    (check,) = [c for c in commands if c[0] == "pytest"]
    (tmp_path / "notebooks").mkdir()
    seeded(tmp_path / "notebooks" / "a.ipynb")
    proc = pytest_run(tmp_path, *check[1:], "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "notebooks/a.ipynb::reproducible" in proc.stdout


def test_the_readmes_three_lines_are_real(tmp_path: Path) -> None:
    """The README's adoption block: each command parses as the real CLI or pytest reads it."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("adopts verify in three lines:\n\n```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    assert [c[0] for c in commands] == ["pip", "repro", "pytest"]
    assert "jupyter-repro" in commands[0]
    from repro.cli import _parser

    args = _parser().parse_args(commands[1][1:])
    assert args.command == "verify" and args.save == ""  # --save without FILE
    (tmp_path / "notebooks").mkdir()
    seeded(tmp_path / "notebooks" / "a.ipynb")
    proc = pytest_run(tmp_path, *commands[2][1:], "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "notebooks/a.ipynb::reproducible" in proc.stdout
