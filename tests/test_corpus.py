"""Issue 18's judge: ``repro verify`` on notebooks nobody on the project wrote, and on traps.

The notebooks in ``tests/corpus/`` come from public repositories (``SOURCES.md``), the
traps from ``tests/corpus/traps/build.py``.  Their truths were established by hand, without
repro (``tests/corpus/establish.py`` runs a notebook twice with plain nbclient and compares
every cell; the cause was then read in the code), and live in ``tests/corpus/truths.json``:
the verdict, the cell where the divergence starts (not the later cell whose print differs)
and why.  Each case runs the real command line, ``python -m repro verify --json``, in fresh
kernels, and checks verdict and named cell against that file.

``REPRO_CORPUS_TABLE=FILE`` appends one JSON line per case (truth, verdict, cell named,
seconds) for ``tests/corpus/table.py``, which writes the README's table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

import repro

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).parent / "corpus"
TRUTHS = json.loads((CORPUS / "truths.json").read_text(encoding="utf-8"))


def _public_corpus() -> Path | None:
    """Where the public notebooks lie: they are not in this repository.

    Code fetched from other repositories is never committed here (the workplace's rule), so
    the notebooks of ``SOURCES.md`` and their data files are looked for, in order, in
    ``$REPRO_CORPUS``, in ``shared/corpus`` beside the checkout (where CI finds the shared
    folder), and in ``~/.cache/repro-corpus``. The traps are repro's own and always run.
    """
    candidates = [os.environ.get("REPRO_CORPUS")]
    candidates += [CORPUS.parents[2] / "shared" / "corpus", Path.home() / ".cache/repro-corpus"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "autograd.ipynb").is_file():
            return Path(candidate)
    return None


PUBLIC = _public_corpus()


def _located(name: str) -> Path:
    """A case's notebook or data file: the traps here, the public notebooks in PUBLIC."""
    if name.startswith("traps/"):
        return CORPUS / name
    if PUBLIC is None:
        pytest.skip(
            "the public corpus is not here (fetched code is never committed): set "
            "REPRO_CORPUS to a folder holding the notebooks of tests/corpus/SOURCES.md"
        )
    return PUBLIC / name


SEED_CELL = "%load_ext repro\n%repro 0"


def _case_id(case: dict[str, Any]) -> str:
    return case["case"]


def prepare(case: dict[str, Any], folder: Path) -> Path:
    """The case's notebook in ``folder`` (with the data files it reads), seeded if asked."""
    source = _located(case["notebook"])
    for data in case.get("data", []):
        shutil.copy(_located(data), folder / data)
    nb = nbformat.read(source, as_version=4)
    if case["variant"] == "seeded":
        cell = nbformat.v4.new_code_cell(SEED_CELL)
        cell["id"] = "repro-seed"
        nb.cells.insert(0, cell)
    path = folder / Path(case["notebook"]).name
    nbformat.write(nb, path)
    return path


def verify(path: Path, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any], float]:
    """``python -m repro verify PATH --json ARGS`` with this checkout's repro first on the path."""
    src = str(Path(repro.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "repro", "verify", str(path), "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=timeout,
    )
    seconds = time.perf_counter() - start
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"no JSON report (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
        )
    return done.returncode, report, seconds


def named_cell(report: dict[str, Any]) -> str | None:
    """The id of the cell the report names as the first that differs."""
    return report.get("first_differing_cell_id")


def _record(case: dict[str, Any], report: dict[str, Any], seconds: float) -> None:
    """One JSON line for the README's table (``REPRO_CORPUS_TABLE``)."""
    table = os.environ.get("REPRO_CORPUS_TABLE")
    if not table:
        return
    row = {
        "case": case["case"],
        "notebook": case["notebook"],
        "variant": case["variant"],
        "args": case.get("args", []),
        "truth": case["reproducible"],
        "truth_cell": (case.get("cause") or {}).get("id"),
        "verdict": report.get("reproducible"),
        "cell": named_cell(report),
        "position": report.get("first_differing_cell"),
        "seconds": round(seconds, 1),
        "text": report.get("verdict"),
        "fix": case.get("fix"),
        "causes": [c.get("cause") for c in report.get("causes", [])],
        "fixes": " ".join(str(c.get("fix", "")) for c in report.get("causes", [])),
    }
    with open(table, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def _params(says: bool = False) -> list[Any]:
    """One param per case; ``says``: the cases whose report must name something."""
    params = []
    for case in TRUTHS["cases"]:
        if says and not (case.get("fix") or case.get("mentions")):
            continue
        wrong = case.get("engine_wrong_report" if says else "engine_wrong")
        marks = [pytest.mark.xfail(strict=True, reason=wrong)] if wrong else []
        params.append(pytest.param(case, id=_case_id(case), marks=marks))
    return params


@pytest.fixture
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all xdist workers of this session share, and no other session: each case is
    verified once per session (without xdist, the base temp's parent is shared by sessions)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp()
    folder = base.parent / f"corpus-reports-{run}" if run else base / "corpus-reports"
    folder.mkdir(exist_ok=True)
    return folder


def run_case(
    case: dict[str, Any], folder: Path, reports: Path
) -> tuple[int, dict[str, Any], float]:
    """Verify the case once; the verdict test and the report test read the same report."""
    saved = reports / f"{case['case']}.json"
    if saved.exists():
        return tuple(json.loads(saved.read_text(encoding="utf-8")))  # type: ignore[return-value]
    code, report, seconds = verify(prepare(case, folder), *case.get("args", []))
    _record(case, report, seconds)
    saved.write_text(json.dumps([code, report, seconds]), encoding="utf-8")
    return code, report, seconds


@pytest.mark.parametrize("case", _params())
def test_verdict_and_cause(case: dict[str, Any], tmp_path: Path, reports: Path) -> None:
    code, report, _ = run_case(case, tmp_path, reports)
    assert report.get("error") is None, report["error"]
    assert report["reproducible"] is case["reproducible"], json.dumps(report, indent=1)
    assert code == (0 if case["reproducible"] else 1)
    if case["reproducible"]:
        assert named_cell(report) is None
        return
    cause = case["cause"]
    chance = case.get("by_chance")
    if chance and named_cell(report) in chance["later"]:
        # Every run agreed at the truth cell, by chance (memory that came out alike in every
        # kernel): nothing differed there to see. The cell named is the next where the same
        # cause shows, and the report says that cause.
        said = [c.get("cause", "") for c in report.get("causes", [])]
        assert any(text.startswith(chance["cause"]) for text in said), said
        return
    assert named_cell(report) == cause["id"], json.dumps(report, indent=1)
    # The position as the report counts it: every cell, markdown included, 1-based; and
    # In [N] as JupyterLab shows it after running top to bottom.
    assert report["first_differing_cell"] == cause["index"] + 1
    assert report["first_differing_cell_execution_count"] == cause["execution_count"]


@pytest.mark.parametrize("case", _params(says=True))
def test_report_says(case: dict[str, Any], tmp_path: Path, reports: Path) -> None:
    """Issue 18: the fix for the cause (the fixes the issue lists), what it ignored, hashing."""
    _, report, _ = run_case(case, tmp_path, reports)
    if case.get("fix"):
        fixes = " ".join(str(c.get("fix", "")) for c in report.get("causes", []))
        assert case["fix"] in fixes, json.dumps(report.get("causes"), indent=1)
    text = json.dumps(report).lower()
    for word in case.get("mentions", []):
        assert word.lower() in text, json.dumps(report, indent=1)


def test_training_cell_verified_twice(tmp_path: Path) -> None:
    """``%%repro 0 --verify 3`` around a training loop, run twice in a row in a real kernel:
    the second run must verify too (``loss`` is bound before it is read: no input)."""
    import nbclient

    nb = nbformat.read(CORPUS / "traps" / "verify_twice.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    texts = []
    for cell in nb.cells[2:4]:
        text = "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")
        assert "cannot verify" not in text, text
        texts.append(text)
    # Same seed, same start: the same loss, and both say reproducible over 3 runs.
    assert texts[0] == texts[1], texts
    assert "final loss" in texts[0] and "reproducible" in texts[0].lower(), texts[0]
    assert "not reproducible" not in texts[0].lower(), texts[0]


def _edit(source: Path, target: Path, *, markdown: bool = True, code: bool = False) -> Path:
    nb = nbformat.read(source, as_version=4)
    if markdown:  # a reworded heading and a new paragraph: every code cell moves down one
        nb.cells[0].source = "# Recorded, then reworded\nThe same analysis, explained better."
        cell = nbformat.v4.new_markdown_cell("A paragraph added after the recording.")
        cell["id"] = "added-prose"
        nb.cells.insert(1, cell)
    if code:
        last = next(c for c in nb.cells if c.get("id") == "cell-4")
        last.source = "m = float(x.mean()) * 2\nm"
    nbformat.write(nb, target)
    return target


def test_against_after_a_markdown_edit(tmp_path: Path) -> None:
    """``--against`` compares a notebook edited only in markdown: no refusal, no code change."""
    base = tmp_path / "analysis.ipynb"
    shutil.copy(CORPUS / "traps" / "against_base.ipynb", base)
    recording = tmp_path / "author.json"
    code, report, _ = verify(base, "--save", str(recording))
    assert code == 0 and report["reproducible"] is True, report
    edited = _edit(base, tmp_path / "reworded.ipynb")
    code, report, _ = verify(edited, "--against", str(recording))
    assert report.get("error") is None, report
    assert (code, report["reproducible"]) == (0, True), json.dumps(report, indent=1)
    assert report.get("changes") == [], report.get("changes")


def test_against_after_a_code_edit(tmp_path: Path) -> None:
    """A code edit since the recording is reported as one, and its cell differs."""
    base = tmp_path / "analysis.ipynb"
    shutil.copy(CORPUS / "traps" / "against_base.ipynb", base)
    recording = tmp_path / "author.json"
    assert verify(base, "--save", str(recording))[0] == 0
    edited = _edit(base, tmp_path / "changed.ipynb", code=True)
    code, report, _ = verify(edited, "--against", str(recording))
    assert (code, report["reproducible"]) == (1, False), json.dumps(report, indent=1)
    assert named_cell(report) == "cell-4"
    changes = report.get("changes") or []
    assert len(changes) == 1 and changes[0].startswith("edited") and "cell-4" in changes[0], changes
