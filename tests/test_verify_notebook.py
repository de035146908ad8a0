"""``repro verify NOTEBOOK``: real notebooks run in real kernels (nbclient), compared cell by cell.

Kernels cost a second or two each: the notebooks are written once per module and each
verification here is one call of the command, its result shared by the tests that read it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from repro._verify.notebook import (
    CellRecord,
    Run,
    compare_environments,
    compare_runs,
    normalize_outputs,
    verify_notebook,
)
from repro.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("verify-notebook")]

WORDS = [
    "apple",
    "banana",
    "cherry",
    "damson",
    "elder",
    "fig",
    "grape",
    "hazel",
    "ivy",
    "juniper",
    "kiwi",
    "lime",
]


def notebook(path: Path, noisy: bool) -> Path:
    """Markdown and code cells; cell 5 (counting markdown) draws noise when ``noisy``."""
    rng = "np.random.default_rng()" if noisy else "np.random.default_rng(7)"
    cells = [
        new_markdown_cell("# A small analysis"),
        new_code_cell("import random\nimport numpy as np\nx = np.arange(6.0)"),  # cell 2
        new_code_cell(f"order = list({set(WORDS)!r})\norder[:3]"),  # 3: set order, by hash seed
        new_markdown_cell("Some noise:"),
        new_code_cell(f"gen = {rng}\nnoise = gen.normal(size=6)\nbig = gen.normal(size=5000)"),  # 5
        new_code_cell("total = float((x + noise).sum())\nprint(round(total, 4))"),  # 6
        new_code_cell("object()"),  # 7: an address, ignored
        new_code_cell("print(get_ipython().execution_count)"),  # 8: silent reads do not count
    ]
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module")
def clean(folder: Path) -> Path:
    return notebook(folder / "clean.ipynb", noisy=False)


def verify(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def noisy_result(folder: Path) -> dict[str, Any]:
    path = notebook(folder / "noisy.ipynb", noisy=True)
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "verify", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {"code": proc.returncode, "report": json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def saved(clean: Path, folder: Path) -> dict[str, Any]:
    recording = folder / "clean.json"
    code = main(["verify", str(clean), "--save", str(recording), "-q"])
    return {"code": code, "recording": recording, "clean": clean}


def plain_last_output(path: Path) -> str:
    """The last cell's printed text when ``path`` runs in a plain kernel, without repro."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()


def test_the_first_nondeterministic_cell_is_named_and_no_earlier_one(noisy_result) -> None:
    report = noisy_result["report"]
    assert noisy_result["code"] == 1
    assert report["first_differing_cell"] == 5  # counting the markdown cells, as JupyterLab does
    assert report["verdict"] == "NOT reproducible: cell 5 is the first that differs over 2 runs"
    by_name = {d["name"]: d["detail"] for d in report["differences"]}
    assert set(by_name) == {"gen", "noise", "big"}
    assert by_name["noise"].startswith("ndarray float64 (6,): 6 of 6 elements differ")
    # Too large to travel element by element: described by mean, min and max.
    assert by_name["big"].startswith("ndarray float64 (5000,): values differ: mean ")
    assert report["downstream_cells"] == [6]  # the printed total; not the object() cell
    assert report["ignored"]["object addresses (at 0x...)"] == 2


def test_a_deterministic_notebook_passes_and_the_fingerprints_are_silent(saved) -> None:
    assert saved["code"] == 0
    recording = json.loads(saved["recording"].read_text())
    cells = recording["cells"]
    assert [c["position"] for c in cells] == [2, 3, 5, 6, 7, 8]
    # The kernel counted as many executions as in a plain run of the same notebook (measured
    # here: IPython 8 and 9 count differently): verify's reads were silent.
    assert cells[-1]["outputs_text"] == plain_last_output(saved["clean"])
    assert recording["environment"]["frameworks"]["numpy"]["imported"] is True
    assert "noise" in cells[2]["variables"] and "_" not in cells[2]["variables"]
    assert "values" in cells[2]["variables"]["noise"]  # changed by the cell: values sent
    assert "values" not in cells[3]["variables"]["noise"]  # unchanged after: fingerprint only


def test_against_a_recording_round_trips(saved, clean: Path, capsys) -> None:
    code, out, _ = verify([str(clean), "--against", str(saved["recording"])], capsys)
    assert code == 0, out
    assert out.strip().endswith("reproducible: 6 code cells identical against clean.json")
    assert "the environments differ" not in out


def test_a_doctored_recording_shows_the_cell_and_the_environment(
    saved, clean: Path, folder: Path, capsys
) -> None:
    data = json.loads(saved["recording"].read_text())
    data["environment"]["frameworks"]["numpy"]["version"] = "1.0.0"
    data["hash_seed"] = "42"
    data["cells"][3]["outputs"] = "0" * 32  # cell 6's printed total, as another machine had it
    doctored = folder / "doctored.json"
    doctored.write_text(json.dumps(data))
    code, out, _ = verify([str(clean), "--against", str(doctored)], capsys)
    assert code == 1
    assert "cell 6 (id " in out and "cell 5" not in out
    assert "frameworks.numpy.version: '1.0.0' recorded" in out
    assert "PYTHONHASHSEED: 42 recorded, 0 here" in out


def test_random_hash_seeds_catch_set_order(clean: Path, capsys) -> None:
    report = verify_notebook(clean, hash_seed="random", progress=True)
    err = capsys.readouterr().err
    assert report.first == 3 and report.exit_code == 1
    assert [item.name for item in report.items] == ["order", "outputs"]
    assert "run 1/2" in err and "run 2/2" in err and "6/6 cells" in err


def test_a_cell_that_raises_exits_2_showing_the_error(folder: Path, capsys) -> None:
    path = folder / "broken.ipynb"
    cells = [new_code_cell("a = 1"), new_markdown_cell("then"), new_code_cell("1 / 0")]
    nbformat.write(new_notebook(cells=cells), path)
    code, out, _ = verify([str(path), "--runs", "3"], capsys)
    assert code == 2
    assert "cell 3 raised" in out and "ZeroDivisionError: division by zero" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--runs", "1"],
        ["--hash-seed", "-3"],
        ["--hash-seed", "sometimes"],
        ["--kernel", "no-such-kernel"],
        ["--against", "missing.json"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], clean: Path, capsys) -> None:
    try:
        code, _, err = verify([str(clean), *argv], capsys)
    except SystemExit as exit:  # argparse's own usage errors
        code, err = exit.code, capsys.readouterr().err
    assert code == 2
    if "--kernel" not in argv:
        assert len(err.strip().splitlines()) == 1, err


def test_missing_notebook_exits_2(capsys) -> None:
    code, _, err = verify(["nowhere.ipynb"], capsys)
    assert code == 2 and err.strip() == "repro verify: error: no notebook 'nowhere.ipynb'"


def test_environment_differences() -> None:
    recorded = {
        "captured": "x",
        "blas": [{"package": "numpy", "library": "openblas", "threads": 8}],
    }
    here = {"captured": "y", "blas": [{"package": "numpy", "library": "openblas", "threads": 2}]}
    assert compare_environments(recorded, here) == [
        "blas[numpy/openblas].threads: 8 recorded, 2 here"
    ]


def test_outputs_ignore_what_varies_between_identical_runs() -> None:
    import repro

    repro.seed(1)
    exported = repro.config_cell()  # the real export, with its timestamp
    later = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "2031-01-02T03:04:05Z", exported)
    assert later != exported

    def outputs(text: str, model_id: str, count: int) -> list[dict[str, Any]]:
        widget = {"model_id": model_id, "version_major": 2}
        return [
            {"output_type": "stream", "name": "stdout", "text": text},
            {
                "output_type": "execute_result",
                "execution_count": count,
                "data": {
                    "text/plain": f"<Net object at 0x{count:x}f3a>",
                    "application/vnd.jupyter.widget-view+json": widget,
                },
            },
        ]

    first, second = Counter(), Counter()
    a = normalize_outputs(outputs(exported, "a1", 3), first)
    b = normalize_outputs(outputs(later, "b2", 9), second)
    assert a == b
    assert first == {
        "repro export timestamps": 2,
        "execution counts": 1,
        "object addresses (at 0x...)": 1,
        "widget model ids": 1,
    }
    changed = normalize_outputs(outputs(exported.replace("seed", "SEED"), "a1", 3), Counter())
    assert changed != a


def record(position: int, variables: dict[str, Any], rng: str, changed: list[str]) -> CellRecord:
    return CellRecord(position, None, "out", "", variables, {"NumPy": rng}, changed)


def test_comparison_rules_without_a_kernel() -> None:
    same = {"digest": "f1", "kind": "int", "value": 1}
    odd = {"digest": "", "kind": "Opaque", "unreadable": "TypeError: no"}
    # Cell 2: a stream that differs from the start (never seeded) is not this cell's result.
    # Cell 3: the stream was equal before, and this cell made it differ: named.
    first = Run(
        [
            record(2, {"a": same, "x": odd}, "s0", ["a", "x"]),
            record(3, {"a": same, "x": odd}, "s1", []),
        ],
        "0",
    )
    second = Run(
        [
            record(2, {"a": same, "x": odd}, "t0", ["a", "x"]),
            record(3, {"a": same, "x": odd}, "t1", []),
        ],
        "0",
    )
    report = compare_runs("nb.ipynb", first, second, 2)
    assert report.first is None  # the streams differed from the start: nothing to name
    second.cells[0].rng["NumPy"] = "s0"
    report = compare_runs("nb.ipynb", first, second, 2)
    assert report.first == 3 and [str(i) for i in report.items] == ["RNG NumPy: state s1 → t1"]
    assert "variable x, unreadable (TypeError: no)" in report.ignored
