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

from repro._verify import advice
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
    if noisy:  # 9: a source of its own, after the first
        cells.append(new_code_cell("picked = random.Random().random()"))
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
        [sys.executable, "-m", "repro", "verify", str(path), "--json", "--hash-seed", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {"code": proc.returncode, "report": json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def saved(clean: Path, folder: Path) -> dict[str, Any]:
    recording = folder / "clean.json"
    code = main(["verify", str(clean), "--save", str(recording), "-q", "--hash-seed", "0"])
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
    assert report["first_differing_cell_execution_count"] == 3  # In [3]: the third code cell
    assert report["first_differing_cell_id"]
    assert report["verdict"] == (
        f"NOT reproducible: cell 5 (In [3], id {report['first_differing_cell_id']}) "
        "is the first that differs over 2 runs"
    )
    by_name = {d["output"]: d["text"] for d in report["differences"]}
    assert set(by_name) == {"gen", "noise", "big"}
    assert by_name["noise"].startswith("noise: ndarray float64 (6,): 6 of 6 elements differ")
    # Too large to travel element by element: described by mean, min and max.
    assert by_name["big"].startswith("big: ndarray float64 (5000,): values differ: mean ")
    assert report["downstream_cells"] == [6, 9]  # the printed total; not the object() cell
    # Cell 9 is not only downstream: its own code draws from a generator seeded by the OS.
    [[later]] = report["later_causes"].values()
    assert list(report["later_causes"]) == ["9"] and later["evidence"] == "`Random()`"
    assert later["cause"] == "a generator seeded from the operating system"
    assert "repro.rng()" in later["fix"]
    assert any("object addresses (at 0x...) (2)" in line for line in report["ignored"])
    # The cause, found in the cell's code, and its fix.
    [cause] = report["causes"]
    assert cause["cause"] == "a generator seeded from the operating system"
    assert cause["evidence"] == "`default_rng()`" and "repro.rng()" in cause["fix"]


def test_a_deterministic_notebook_passes_and_the_fingerprints_are_silent(saved) -> None:
    assert saved["code"] == 0
    recording = json.loads(saved["recording"].read_text())
    cells = recording["cells"]
    assert [c["position"] for c in cells] == [2, 3, 5, 6, 7, 8]
    # The kernel counted as many executions as in a plain run of the same notebook (measured
    # here: IPython 8 and 9 count differently): verify's reads were silent.
    assert cells[-1]["streams"]["stdout"].strip() == plain_last_output(saved["clean"])
    assert recording["environment"]["frameworks"]["numpy"]["imported"] is True
    assert "noise" in cells[2]["variables"] and "_" not in cells[2]["variables"]
    assert "values" in cells[2]["variables"]["noise"]  # changed by the cell: values sent
    assert "values" not in cells[3]["variables"]["noise"]  # unchanged after: fingerprint only


def test_against_a_recording_round_trips(saved, clean: Path, capsys) -> None:
    code, out, _ = verify([str(clean), "--against", str(saved["recording"])], capsys)
    assert code == 0, out
    assert out.strip().endswith("reproducible: 6 code cells identical against clean.json")
    assert "changed since the recording" not in out
    assert "the environments differ" not in out


def test_a_doctored_recording_shows_the_cell_and_the_environment(
    saved, clean: Path, folder: Path, capsys
) -> None:
    data = json.loads(saved["recording"].read_text())
    data["environment"]["frameworks"]["numpy"]["version"] = "1.0.0"
    data["environment"]["hashing"] = {"randomized": False, "seed": 42}
    data["environment"].setdefault("environ", {})["PYTHONHASHSEED"] = "42"
    data["hash_seed"] = "42"
    data["cells"][3]["outputs"] = "0" * 32  # cell 6's printed total, as another machine had it
    data["cells"][3]["streams"] = {"stdout": "1.0\n"}
    doctored = folder / "doctored.json"
    doctored.write_text(json.dumps(data))
    code, out, _ = verify([str(clean), "--against", str(doctored)], capsys)
    assert code == 1
    assert "cell 6 (In [4], id " in out and "cell 5" not in out
    assert re.search(r"stdout: line 1, column 2: '1\.0\\n' → '1[^']*\\n'", out), out
    assert "numpy 1.0.0 → " in out
    # The hash seed is one fact, said once (the kernel's, not repro's child-process variable).
    # "42" as a number of its own: a random cell id such as 44244d18 holds the digits too.
    assert [line for line in out.splitlines() if re.search(r"(?<![\w.])42(?![\w.])", line)] == [
        "  str hashing fixed (PYTHONHASHSEED=42) → fixed (PYTHONHASHSEED=0)"
    ]


def test_set_order_differs_by_default_and_is_named_str_hashing(clean: Path, capsys) -> None:
    report = verify_notebook(clean, progress=True)
    err = capsys.readouterr().err
    assert report.hash_seeds == ["0", "1"]  # run i gets hash seed i - 1
    assert report.first == 3 and report.exit_code == 1
    assert [item.output for item in report.items] == ["order", "displayed"]
    assert [cause.name for cause in report.causes] == ["str hashing (set order, hash())"]
    assert "sorted(" in str(report) and "--hash-seed 0" in str(report)
    assert "run 1" in err and "run 2" in err and "6/6 cells" in err
    # The same notebook with the hash seed pinned passes: the saved fixture's run.


def test_a_set_beside_an_unseeded_draw_is_named_as_a_second_cause(tmp_path: Path) -> None:
    """The hash-seed rerun cannot tell when a draw varies the cell anyway: the set in the
    code is named after the draw, so that fixing the seed alone is not the whole advice."""
    cells = [
        "import numpy as np",
        "words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta']\n"
        "vocab = list(set(words))\nnoise = np.random.rand(3)\nprint(vocab)",
    ]
    path = tmp_path / "two_causes.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    report = verify_notebook(path, runs=2)
    assert report.first == 2, str(report)
    names = [c.name for c in report.causes]
    assert names == [advice.GLOBAL_STREAMS.name, advice.HASHING.name], str(report)
    assert "`set(` in the cell" in report.causes[1].evidence


def test_a_markdown_edit_keeps_against_working_and_code_changes_are_listed(
    saved, clean: Path, folder: Path, capsys
) -> None:
    nb = nbformat.read(clean, as_version=4)
    nb.cells[0].source = "# A small analysis, retitled"
    nb.cells.insert(1, new_markdown_cell("A new paragraph."))
    nb.cells[-1].source += "  # edited"
    nb.cells.append(new_code_cell("extra = 1"))
    edited = folder / "edited.ipynb"
    nbformat.write(nb, edited)
    code, out, err = verify([str(edited), "--against", str(saved["recording"])], capsys)
    assert code == 0, out + err
    assert "the notebook changed since the recording:" in out
    assert re.search(r"edited: cell 9 \(In \[6\], id \w+\) \(recorded as cell 8", out), out
    assert re.search(r"added: cell 10 \(In \[7\]", out), out
    assert "removed" not in out and out.count("positions") == 0 and err == ""


def test_a_cell_that_raises_is_one_line_and_the_kernel_is_quiet(folder: Path, capsys) -> None:
    path = folder / "broken.ipynb"
    cells = [new_code_cell("a = 1"), new_markdown_cell("then"), new_code_cell("b = 2\n1 / 0")]
    nbformat.write(new_notebook(cells=cells), path)
    code, out, err = verify([str(path), "--runs", "3", "-q"], capsys)
    assert code == 2
    assert re.fullmatch(
        r"cannot verify broken\.ipynb: cell 3 \(In \[2\], id \w+\) raised ZeroDivisionError: "
        r"division by zero \(line 2\)\n",
        out,
    ), out
    assert err == ""


def test_streams_tags_and_ignored_names(folder: Path, capsys) -> None:
    """Loops that print between sleeps, a progress line, a run id, a temporary path, a
    cell that must not run: reproducible, and the report says what it left out and why."""
    cells = [
        new_code_cell(
            "import sys, time, uuid, tempfile\n"
            "for step in range(6):\n"
            "    print('step', step, 'loss', round(1 / (step + 1), 4))\n"
            "    print('warn', step, file=sys.stderr)\n"
            "    time.sleep(0.03)"
        ),
        new_code_cell(
            "for i in range(11):\n"
            "    print(f'\\r{10 * i:3d}%', end='', flush=True)\n"
            "    time.sleep(0.01)\n"
            "print(' done')"
        ),
        new_code_cell(
            "run_id = uuid.uuid4().hex\nprint(run_id)", metadata={"tags": ["repro-ignore"]}
        ),
        new_code_cell(
            "started = 'at ' + str(time.time())\nprint(started)\nsteps = 6",
            metadata={"tags": ["nbval-ignore-output"]},
        ),
        new_code_cell("WORK = tempfile.mkdtemp()\nlabel = 'ok'"),
        new_code_cell("raise RuntimeError('never run')", metadata={"tags": ["nbval-skip"]}),
        new_code_cell("print(label, steps)"),
    ]
    cells[3].metadata["tags"] = ["nbval-ignore-output"]
    path = folder / "tagged.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    code, out, err = verify([str(path), "--ignore", "WORK", "--ignore", "started"], capsys)
    assert code == 0, out + err
    assert out.strip().endswith("reproducible: 6 code cells identical over 2 runs"), out
    assert re.search(r"cell 3 \(In \[3\], id \w+\): tagged repro-ignore, nothing of it", out)
    assert re.search(r"cell 4 \(In \[4\], id \w+\): tagged nbval-ignore-output, its outputs", out)
    assert re.search(r"cell 6 \(id \w+\): tagged nbval-skip, not run", out)
    assert "variable WORK: --ignore, never compared" in out
    assert "Kernel is running" not in out + err and "KeyboardInterrupt" not in out + err

    # Without the tags and names, each varying cell is caught, with the fix said.
    for cell in cells:
        cell.metadata.pop("tags", None)
    del cells[5]
    nbformat.write(new_notebook(cells=cells), path)
    code, out, _ = verify([str(path), "--hash-seed", "0"], capsys)
    assert code == 1
    assert re.search(r"NOT reproducible: cell 3 \(In \[3\]", out), out
    assert "cause: a value that varies by nature" in out and "`uuid4(`" in out
    assert "repro-ignore" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--runs", "1"],
        ["--hash-seed", "-3"],
        ["--hash-seed", "sometimes"],
        ["--kernel", "no-such-kernel"],
        ["--against", "missing.json"],
        ["--jobs", "0"],
        ["--ignore", "not a name"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], clean: Path, capsys) -> None:
    out = ""
    try:
        code, out, err = verify([str(clean), *argv], capsys)
    except SystemExit as exit:  # argparse's own usage errors
        code, err = exit.code, capsys.readouterr().err
    assert code == 2
    if "--kernel" in argv:  # said once, as the verdict
        assert out.count("no kernel named 'no-such-kernel'") == 1 and err == "", out + err
    else:
        assert len(err.strip().splitlines()) == 1, err


def test_missing_notebook_exits_2(capsys) -> None:
    code, _, err = verify(["nowhere.ipynb"], capsys)
    assert code == 2 and err.strip() == "repro verify: error: no notebook 'nowhere.ipynb'"


def test_environment_differences() -> None:
    recorded = {
        "captured": "x",
        "hashing": {"randomized": False, "seed": 42},
        "environ": {"PYTHONHASHSEED": "42"},
        "blas": [{"package": "numpy", "library": "openblas", "version": "0.3", "threads": 8}],
    }
    here = {
        "captured": "y",
        "hashing": {"randomized": True, "seed": None},
        "environ": {},
        "blas": [{"package": "numpy", "library": "openblas", "version": "0.3", "threads": 2}],
    }
    lines = compare_environments(recorded, here)
    assert len(lines) == 2, lines  # the capture time is no difference; the hash seed one fact
    assert lines[0].startswith("str hashing fixed (PYTHONHASHSEED=42) → ")
    assert "threads" in lines[1] and lines[1].endswith("(informational)")


def stream(name: str, text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def test_streams_are_compared_as_the_text_a_person_sees() -> None:
    lines = [f"step {i} loss {1 / (i + 1):.4f}\n" for i in range(30)]
    # ipykernel flushed the same printout in 3 chunks in one run, 8 in the other, with
    # stderr interleaved at other points.
    a = [stream("stdout", "".join(lines[:10])), stream("stderr", "w\n")]
    a += [stream("stdout", "".join(lines[10:]))]
    b = [stream("stdout", "".join(lines[i : i + 4])) for i in range(0, 30, 4)]
    b.insert(3, stream("stderr", "w\n"))
    first, second = normalize_outputs(a, Counter()), normalize_outputs(b, Counter())
    assert first == second and first.digest == second.digest
    # A progress line redrawn with \r, tqdm-style (its timings left out), shows its last state.
    bar = "".join(
        f"\r{p:3d}%|{'#' * (p // 10)}| [00:0{p // 50}<00:01, {p + 0.5}it/s]" for p in (0, 50, 100)
    )
    shown = normalize_outputs([stream("stderr", bar + "\n")], ignored := Counter())
    assert shown.streams["stderr"] == "100%|##########| [<time>]\n"
    assert ignored["progress bar timings (tqdm)"] == 1  # the line on the screen
    assert normalize_outputs([stream("stdout", "abc\bX\n")], Counter()).streams["stdout"] == "abX\n"
    # A real difference still shows, stdout and stderr apart.
    c = [stream("stdout", "".join(lines[:29]) + "step 29 loss 0.0334\n"), stream("stderr", "w\n")]
    assert normalize_outputs(c, Counter()) != first


def test_a_warnings_cell_file_differs_only_by_the_kernels_pid() -> None:
    # torch's UserWarning from a cell, as two kernels print it (sequence_models tutorial).
    def warning(pid: int, cell: str) -> dict[str, Any]:
        return stream("stderr", f"/tmp/ipykernel_{pid}/{cell}.py:27: UserWarning: x\n  y = f()\n")

    ignored: Counter[str] = Counter()
    a = normalize_outputs([warning(3485, "2698526414")], ignored)
    assert a == normalize_outputs([warning(3488, "2698526414")], Counter())
    assert ignored["the kernel's pid in its cells' file names"] == 1
    assert a != normalize_outputs([warning(3488, "1111111111")], Counter())  # another cell


def test_outputs_ignore_what_varies_between_identical_runs() -> None:
    import repro

    repro.seed(1)
    exported = repro.config_cell()  # the real export, with its timestamp
    later = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "2031-01-02T03:04:05Z", exported)
    assert later != exported

    def outputs(text: str, model_id: str, count: int) -> list[dict[str, Any]]:
        widget = {"model_id": model_id, "version_major": 2}
        return [
            stream("stdout", text),
            {
                "output_type": "display_data",
                "data": {"application/vnd.jupyter.widget-view+json": widget},
            },
            {
                "output_type": "execute_result",
                "execution_count": count,
                "data": {"text/plain": f"<Net object at 0x{count:x}f3a>"},
            },
        ]

    first, second = Counter(), Counter()
    a = normalize_outputs(outputs(exported, "a1", 3), first)
    b = normalize_outputs(outputs(later, "b2", 9), second)
    assert a == b
    assert first == {
        "repro export timestamps": 2,
        "object addresses (at 0x...)": 1,
        "widget model ids": 1,
    }
    changed = normalize_outputs(outputs(exported.replace("seed", "SEED"), "a1", 3), Counter())
    assert changed != a


def test_a_text_difference_shows_where_and_never_two_equal_excerpts() -> None:
    from repro._verify.report import text_difference

    long = "".join(f"epoch {i}: loss {0.5 / (i + 1):.6f}\n" for i in range(200))
    other = long.replace("epoch 150: loss 0.003311", "epoch 150: loss 0.003312")
    diff = text_difference("stdout", long, other)
    assert diff.first_index == (151, 24)
    assert diff.first != diff.second and "0.00331" in diff.first
    assert str(diff).startswith("stdout: line 151, column 24: ")
    shorter = text_difference("stdout", long, long[:-1])  # the last newline missing
    assert shorter.first != shorter.second and "(end of text)" in shorter.second


def record(position: int, variables: dict[str, Any], rng: str, changed: list[str]) -> CellRecord:
    return CellRecord(
        position,
        None,
        position - 1,
        f"code{position}",
        [],
        "out",
        {},
        "",
        variables,
        {"NumPy": rng},
        changed,
    )


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
    assert "variable x: unreadable, not compared (TypeError: no)" in report.ignored


def test_a_model_differs_parameter_by_parameter() -> None:
    from repro._verify.recorder import _details

    torch = pytest.importorskip("torch")
    from repro._verify.notebook_report import _variable_differences

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.BatchNorm1d(1))
    b = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.BatchNorm1d(1))
    b[1].load_state_dict(a[1].state_dict())
    entry = lambda m: {"digest": "x" + str(id(m)), "kind": "Sequential", **_details(m)}  # noqa: E731
    found = [str(d) for d in _variable_differences("model", entry(a), entry(b))]
    assert len(found) == 2, found  # the Linear's weight and bias; BatchNorm's all equal
    assert found[0].startswith("model.0.weight: tensor float32 (1, 3) cpu: 3 of 3 elements differ")
    assert found[1].startswith("model.0.bias: tensor float32 (1,) cpu: 1 of 1 elements differ")


def test_a_kernel_that_pins_the_hash_seed_is_read(tmp_path: Path, monkeypatch) -> None:
    from repro._verify.notebook import kernel_hash_seed

    spec = tmp_path / "kernels" / "pinned"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "pinned",
                "language": "python",
                "env": {"PYTHONHASHSEED": "7"},
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    assert kernel_hash_seed("pinned") == "7"
    assert kernel_hash_seed("python3") is None


PROJECT_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.notebooks
@pytest.mark.xdist_group("verify-project-notebooks")
@pytest.mark.parametrize("name", sorted(p.name for p in PROJECT_NOTEBOOKS.glob("*.ipynb")))
def test_each_notebook_of_the_project_passes_repro_verify(name: str) -> None:
    """What the notebooks teach, they pass: each cell left out is tagged, and said."""
    report = verify_notebook(PROJECT_NOTEBOOKS / name)
    assert report.reproducible, str(report)
    assert report.hash_seeds == ["0", "1"]  # the default: each run its own hash seed
    nb = nbformat.read(PROJECT_NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if c.metadata.get("tags")]
    assert len([line for line in report.ignored if "tagged" in line]) == len(tagged)


def test_verify_leaves_no_kernel_running(tmp_path: Path) -> None:
    import psutil

    path = tmp_path / "small.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), path)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    report = verify_notebook(path, runs=2)
    assert report.reproducible
    left = [p for p in me.children(recursive=True) if p.pid not in before]
    _, alive = psutil.wait_procs(left, timeout=10)
    assert not alive, [" ".join(p.cmdline()) for p in alive]


def test_a_widgets_static_fallback_is_not_compared() -> None:
    # repro's panel saves a static picture of itself beside the widget: fingerprints and the
    # kernel's hash seed, which differ between kernels although nothing the notebook computes does.
    def panel(fingerprint: str, model: str) -> dict[str, Any]:
        view = {"version_major": 2, "version_minor": 0, "model_id": model}
        data = {
            "application/vnd.jupyter.widget-view+json": view,
            "text/html": f"<td>{fingerprint}</td>",
            "text/plain": f"repro panel {fingerprint}",
        }
        return {"output_type": "display_data", "data": data, "metadata": {}}

    ignored: Counter[str] = Counter()
    a = normalize_outputs([panel("0550b41e", "m1")], ignored)
    assert a == normalize_outputs([panel("9f3c2a77", "m2")], Counter())
    assert ignored["widgets' static fallbacks (text, HTML)"] == 1
    # An output that is no widget keeps its text compared.
    text = {"output_type": "display_data", "data": {"text/plain": "0550b41e"}, "metadata": {}}
    other = {**text, "data": {"text/plain": "9f3c2a77"}}
    assert normalize_outputs([text], Counter()) != normalize_outputs([other], Counter())


def test_runs_side_by_side_wait_passively_and_a_users_policy_stands(
    tmp_path: Path, monkeypatch
) -> None:
    # Two kernels whose OpenMP pools spin on 2 cores ran 10× slower than one (55.9 s against
    # 5.3 s for the speed benchmark's notebook): runs side by side wait passively, a lone run
    # as the user's kernel would, and a policy the user chose is kept.
    import asyncio

    from repro._verify.notebook import _run_all

    path = tmp_path / "policy.ipynb"
    cell = "import os\nprint(os.environ.get('OMP_WAIT_POLICY'))"
    nbformat.write(new_notebook(cells=[new_code_cell(cell)]), path)

    def policies(seeds: int, jobs: int) -> list[str]:
        runs = asyncio.run(_run_all(path, ["0"] * seeds, "python3", 120, (), jobs, None))
        return [run.cells[0].streams["stdout"].strip() for run in runs]

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert policies(2, 2) == ["PASSIVE", "PASSIVE"]
    assert policies(1, 2) == ["None"]
    assert policies(2, 1) == ["None", "None"]  # one at a time: nothing to share
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert policies(2, 2) == ["ACTIVE", "ACTIVE"]


def test_timings_and_the_ids_that_display_libraries_draw_are_not_differences(
    tmp_path: Path,
) -> None:
    # Each of these cells made verify say NOT reproducible: %timeit's and %time's figures (and
    # the "slowest run" line %timeit adds only sometimes), a pandas Styler's random table id,
    # plotly's element UUIDs in HTML. What they compute is compared as before.
    cells = [
        "%timeit sum(range(100))",
        "%%time\ntotal = sum(range(10**5))",
        "import pandas as pd\n"
        "df = pd.DataFrame({'a': [1.0, 2.0, 3.0], 'b': [3.0, 1.0, 2.0]})\n"
        "df.style.highlight_max()",
        "import plotly.graph_objects as go\n"
        "fig = go.Figure(go.Scatter(y=[1, 3, 2]))\n"
        "fig.show()\n"
        "fig.show(renderer='notebook_connected')",
        "%matplotlib inline\n%config InlineBackend.figure_formats = ['svg']\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2], marker='o')\nplt.imshow([[0, 1], [1, 0]])\nplt.show()",
        "import logging\nlogging.basicConfig(format='%(asctime)s %(levelname)s %(message)s',"
        " level=logging.INFO, force=True)\n"
        "for step in range(3):\n    logging.info('step %d loss %.4f', step, 1 / (step + 1))",
    ]
    path = tmp_path / "displays.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    report = verify_notebook(path, runs=2, hash_seed=0)
    assert report.reproducible, str(report)
    said = "\n".join(report.ignored)
    for label in (
        "timings printed by %time and %timeit",
        "pandas Styler table ids",
        "element ids in HTML and JavaScript",
        "SVG figure dates and element ids (matplotlib)",
        "logging timestamps (%(asctime)s)",
    ):
        assert label in said, said


def test_nested_progress_bars_compare_as_the_screen_they_leave() -> None:
    """Real tqdm, an epoch bar over batch bars that vanish (leave=False): how often each
    redraws is the clock's (here: every step, or once), the cursor moves up to redraw in
    place, and the screen left at the end is the same. A different screen still differs."""
    import io

    from tqdm import trange

    def bars(mininterval: float, epochs: int = 3) -> str:
        out = io.StringIO()
        for _ in trange(epochs, file=out, mininterval=mininterval, desc="epoch", ascii=True):
            for _ in trange(40, file=out, mininterval=mininterval, desc="batch", leave=False):
                pass
        return out.getvalue()

    def screen(text: str) -> Any:
        return normalize_outputs(
            [{"output_type": "stream", "name": "stderr", "text": text}], Counter()
        )

    often, once = bars(0), bars(10)
    assert often != once and "\x1b[A" in often
    assert screen(often) == screen(once)
    assert screen(often).streams["stderr"] == "epoch: 100%|##########| 3/3 [<time>]\n"
    assert screen(bars(0, epochs=4)) != screen(once)


def test_a_tqdm_widget_bar_is_compared_by_its_label_and_count(tmp_path: Path) -> None:
    """tqdm.auto draws a widget in a kernel; its text is the bar (label, count, timings). A
    label drawn from an unseeded stream differs; seeded, the bars agree, timings left out."""
    bar = "for _ in tqdm(range(3), desc=f'run {random.random():.3f}'):\n    pass"
    found = {}
    for name, setup in (("unseeded", ""), ("seeded", "\nrandom.seed(0)")):
        path = tmp_path / f"{name}.ipynb"
        cells = [f"from tqdm.auto import tqdm\nimport random{setup}", bar, "print('done')"]
        nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
        found[name] = verify_notebook(path, runs=2, hash_seed=0)
    unseeded, seeded = found["unseeded"], found["seeded"]
    assert not unseeded.reproducible and unseeded.first == 2, str(unseeded)
    assert "run 0." in str(unseeded)  # the two labels, shown
    assert seeded.reproducible, str(seeded)
    assert "progress bar timings (tqdm)" in "\n".join(seeded.ignored)


def test_widget_fallbacks_are_left_out_but_a_tqdm_bar_is_kept() -> None:
    widget = {"version_major": 2, "version_minor": 0, "model_id": "9d51e68e155141089f49729824b0"}

    def shown(text: str) -> Any:
        data = {"text/plain": text, "application/vnd.jupyter.widget-view+json": widget}
        return normalize_outputs(
            [{"output_type": "display_data", "data": data, "metadata": {}}], Counter()
        )

    meter = "run {label}:  40%|####      | 4/10 [00:0{s}<00:02, 3.51it/s]"
    assert shown(meter.format(label="0.844", s=1)) == shown(meter.format(label="0.844", s=2))
    assert shown(meter.format(label="0.844", s=1)) != shown(meter.format(label="0.420", s=1))
    # Any other widget's text is a picture of it when drawn (repro's panel: the hash seed).
    assert shown("ReproPanel(seed=42, hash seed 0)") == shown("ReproPanel(seed=42, hash seed 1)")


def test_a_clock_read_in_an_earlier_function_is_not_blamed_beside_a_draw(tmp_path: Path) -> None:
    """`stamp = datetime.now()` unused inside the function the cell calls, beside an unseeded
    draw: the draw is the cause, and tagging the outputs away (the clock's fix) would hide it.
    Where the clock is all there is, it stays the cause."""
    define = "import numpy as np\nfrom datetime import datetime\ndef main():\n"
    reports = {}
    for name, body in (
        ("draw", "    stamp = datetime.now()  # never used\n    return np.random.rand()"),
        ("clock", "    print(datetime.now())\n    return 1"),
    ):
        path = tmp_path / f"{name}.ipynb"
        cells = [new_code_cell(define + body), new_code_cell("x = main()\nprint(x)")]
        nbformat.write(new_notebook(cells=cells), path)
        reports[name] = verify_notebook(path, runs=2, hash_seed=0)
    draw, clock = reports["draw"], reports["clock"]
    assert draw.first == 2 and [c.name for c in draw.causes] == [advice.GLOBAL_STREAMS.name]
    assert clock.first == 2 and [c.name for c in clock.causes] == [advice.VARYING.name]
    assert "`main`, an earlier cell's" in clock.causes[0].evidence


def test_a_figure_that_differs_beside_a_timing_is_shown_and_not_tagged_away(
    tmp_path: Path,
) -> None:
    """A cell times itself and plots unseeded draws: the figure's difference is listed beside
    the printed time, and the clock's fix does not tag the cell (the tag would hide the
    figure): the timing goes to a cell of its own."""
    cells = [
        "%matplotlib inline\nimport time, random\nimport matplotlib.pyplot as plt",
        "t0 = time.time()\nplt.plot([random.random() for _ in range(5)])\n"
        "print(f'took {time.time() - t0:.3f}s')",
    ]
    path = tmp_path / "timed_plot.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    report = verify_notebook(path, runs=2, hash_seed=0)
    assert report.first == 2, str(report)
    assert "display 1 image/png" in [i.output for i in report.items], str(report)
    names = [c.name for c in report.causes]
    assert names == [advice.GLOBAL_STREAMS.name, advice.VARYING.name], str(report)
    clock = report.causes[1]
    assert "`--ignore t0`" in clock.fix and "a cell of its own" in clock.fix
    assert "tag it `repro-ignore`" not in clock.fix
    # Timed, not printed: only the variable is the clock's; the figure is not printed text.
    nbformat.write(
        new_notebook(cells=[new_code_cell(cells[0]), new_code_cell(cells[1].rsplit("\n", 1)[0])]),
        path,
    )
    report = verify_notebook(path, runs=2, hash_seed=0)
    clock = next(c for c in report.causes if c.name == advice.VARYING.name)
    assert "`--ignore t0`" in clock.fix and "repro-ignore" not in clock.fix, clock.fix


def test_a_pandas_stylers_drawn_id_is_not_a_difference() -> None:
    """A Styler held in a variable draws a random uuid (its HTML's T_<id>): left out; its data
    still compared. Its HTML printed as text leaves the ids out too, as displayed HTML does."""
    import pandas as pd

    from repro._verify.digest import digest

    frame = pd.DataFrame({"a": [1, -2]})
    one, two = frame.style.highlight_max(), frame.style.highlight_max()
    assert one.uuid != two.uuid
    assert digest(one) == digest(two)
    assert digest(one) != digest(pd.DataFrame({"a": [1, -3]}).style.highlight_max())

    def printed(text: str) -> Any:
        return normalize_outputs(
            [{"output_type": "stream", "name": "stdout", "text": text}], Counter()
        )

    assert printed(one.to_html()) == printed(two.to_html())
    assert printed(one.to_html()) != printed(frame.assign(a=[1, -3]).style.to_html())
    assert printed(f"table {one.uuid}\n") != printed(f"table {two.uuid}\n")  # not markup


def test_timing_lines_are_left_out_but_what_a_cell_prints_is_kept() -> None:
    def shown(text: str, mime: str | None = None) -> Any:
        out = (
            {"output_type": "stream", "name": "stdout", "text": text}
            if mime is None
            else {"output_type": "display_data", "data": {mime: text}, "metadata": {}}
        )
        return normalize_outputs([out], Counter())

    cached = (
        "The slowest run took 5.12 times longer than the fastest. This could mean that an "
        "intermediate result is being cached.\n"
        "3.1 µs ± 2.9 µs per loop (mean ± std. dev. of 7 runs, 100,000 loops each)\n"
    )
    plain = "2.9 µs ± 21 ns per loop (mean ± std. dev. of 7 runs, 10,000 loops each)\n"
    assert shown(cached) == shown(plain)
    greek = "1.23 \u03bcs ± 185 ns per loop (mean ± std. dev. of 7 runs, 1,000,000 loops each)\n"
    assert shown(greek) == shown(plain)  # IPython 9 writes the Greek mu, 8 the micro sign
    assert shown("Compiler : 123 ms\nCPU times: user 2 s, sys: 0 ns, total: 2 s\n") == shown(
        "CPU times: user 1 s, sys: 3 ns, total: 1 s\n"
    )
    # Numbers a cell prints itself, and a run id outside markup, still differ.
    assert shown("took 2.1 s\n") != shown("took 2.3 s\n")
    run_a, run_b = "2c4ee0c6-5c0b-4b52-bb1a-ef84e0d29e47", "9f0e5d1a-0c2b-4d4e-8f3a-1b2c3d4e5f60"
    assert shown(run_a) != shown(run_b)
    assert shown(run_a, "text/plain") != shown(run_b, "text/plain")
    assert shown(f'<div id="{run_a}"></div>', "text/html") == shown(
        f'<div id="{run_b}"></div>', "text/html"
    )
    # logging's own timestamps; the message, and a datetime the cell prints, still differ.
    log = "2026-12-01 19:13:{s},{ms} INFO step 3 loss {loss}\n"
    assert shown(log.format(s="45", ms="123", loss="0.25")) == shown(
        log.format(s="46", ms="007", loss="0.25")
    )
    assert shown(log.format(s="45", ms="123", loss="0.25")) != shown(
        log.format(s="45", ms="123", loss="0.26")
    )
    assert shown("2026-12-01 19:13:45.123456\n") != shown("2026-12-01 19:13:46.007001\n")
    # memory_profiler's %memit: what the process held.
    assert shown("peak memory: 67.35 MiB, increment: 2.62 MiB\n") == shown(
        "peak memory: 67.26 MiB, increment: -0.5 MiB\n"
    )
    # Matplotlib's SVG: the date and the salted ids vary, the drawing does not.
    svg = (
        "<svg><metadata><dc:date>{date}</dc:date></metadata>"
        '<clipPath id="{id}"><rect x="0"/></clipPath><path d="{d}" clip-path="url(#{id})"/></svg>'
    )
    one = svg.format(date="2026-12-01T15:44:38.189706", id="p3be165d4d1", d="M 0 1")
    two = svg.format(date="2026-12-01T15:44:38.155122", id="p70b2af20ea", d="M 0 1")
    other = svg.format(date="2026-12-01T15:44:38.155122", id="p70b2af20ea", d="M 0 2")
    assert shown(one, "image/svg+xml") == shown(two, "image/svg+xml")
    assert shown(one, "image/svg+xml") != shown(other, "image/svg+xml")


def test_a_plot_or_html_that_differs_is_shown_by_display_and_kind(tmp_path: Path) -> None:
    # Only a rich output differs (the text/plain of a figure and of HTML is the same in every
    # run): the report says which display and which kind, an HTML by line and column, an
    # image by its size, never two digests alone.
    setup = (
        "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
        "import numpy as np\nfrom IPython.display import HTML, display"
    )
    html = (
        "display(HTML('<p>fixed</p>'))\n"
        "display(HTML(f'<p>drawn:\\n<b>{np.random.rand():.6f}</b></p>'))"
    )
    plot = "%matplotlib inline\nplt.plot(np.random.rand(50))\nplt.show()"
    found = []
    for name, cell in (("html", html), ("plot", plot)):
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(new_notebook(cells=[new_code_cell(setup), new_code_cell(cell)]), path)
        report = verify_notebook(path, runs=2, hash_seed=0)
        assert report.first == 2, str(report)
        found += [str(item) for item in report.items]
    assert len(found) == 2, found
    assert re.match(r"display 2 text/html: line 2, column \d+: '<b>0\.\d+</b></p>' → ", found[0])
    assert re.match(r"display 1 image/png: [\d,]+ bytes(, digest \w+)? → [\d,]+ bytes", found[1])


def test_rich_outputs_missing_or_of_equal_size_are_told_apart() -> None:
    from repro._verify.notebook_report import _rich_items, rich_outputs

    png = {"image/png": "iVBORw0KGgo" + "A" * 40, "text/plain": "<Figure>"}
    other = {"image/png": "iVBORw0KGgo" + "B" * 40, "text/plain": "<Figure>"}
    items = [str(d) for d in _rich_items(rich_outputs([png]), rich_outputs([other]))]
    assert len(items) == 1 and items[0].startswith("display 1 image/png: 38 bytes, digest ")
    assert items[0].split("digest ")[1][:8] != items[0].split("digest ")[2][:8]
    items = [str(d) for d in _rich_items(rich_outputs([png]), rich_outputs([png, png]))]
    assert items == ["display 2: absent in run 1, a display (image/png) in run 2"]
    widget = {"application/json": {"b": 1, "a": [1, 2]}}
    assert (
        _rich_items(
            rich_outputs([widget]), rich_outputs([{"application/json": {"a": [1, 2], "b": 1}}])
        )
        == []
    )


def test_the_clues_a_cells_code_gives() -> None:
    from repro._verify import advice

    def named(code: str) -> list[str]:
        return [c.name for c in advice.causes_in_code(code)]

    varying, empty = advice.VARYING.name, advice.UNINITIALIZED.name
    assert named("from time import time\nt0 = time()") == [varying]
    assert named("start = perf_counter()") == [varying]
    assert named("now = pd.Timestamp.now()") == [varying]
    assert named("stamp = np.datetime64('now')") == [varying]
    assert named("t = timeit.default_timer()") == [varying]
    # A benchmark: timeit's Timer, torch.utils.benchmark's, and their autorange.
    assert named("print(f'{t0.timeit(100) / 100 * 1e6:>5.1f} us')") == [varying]
    assert named("m = benchmark.Timer(stmt='f(x)').blocked_autorange()") == [varying]
    assert named("y = x.repeat(3)\nz = np.repeat(x, 2)") == []
    assert named("from timeit import timeit\nprint(timeit('f()', number=9), 'seconds')") == [
        varying
    ]
    assert named("t = record.time()\nfrom datetime import time\nnoon = time(12)") == []
    assert named("x = torch.empty(2, 3)") == [empty]
    assert named("y = np.empty_like(a)\nz = t.new_empty((2,))") == [empty]
    assert named("x = torch.zeros(2, 3)") == []
    threads = advice.THREADS.name
    assert named("with ThreadPoolExecutor(4) as p:\n    p.map(f, L)") == [threads]
    assert named("thread_map(partial(f, x=1), L, max_workers=4)") == [threads]
    assert named("t = threading.Thread(target=work)\nt.start()") == [threads]
    assert named("for f in as_completed(futures):\n    out.append(f.result())") == [threads]
    assert named("with ProcessPoolExecutor() as p:\n    p.map(f, L)") == []
    workers = advice.WORKERS.name
    assert named("cross_val_score(SGDClassifier(), X, y, cv=3, n_jobs=2)") == [workers]
    assert named("GridSearchCV(est, grid, n_jobs=-1)") == [workers]
    assert named("cross_val_score(m, X, y, n_jobs=1)\nf(n_jobs=None)") == []
    boot = advice.BOOTSTRAP.name
    assert named("ax = sns.barplot(x=np.arange(3), y=[1, 2, 3])") == [boot]
    assert named("sns.pointplot(x=x, errorbar='ci')") == [boot]
    assert named("sns.regplot(x=f(a), y=b, seed=0)") == []
    assert named("sns.lineplot(x=x, y=y, errorbar=None)") == []
    assert named("sns.scatterplot(x=x, y=y)\nsns.histplot(x)") == []


def test_a_clue_inside_a_function_an_earlier_cell_defined_is_followed() -> None:
    from repro._verify import advice

    earlier = (
        "%matplotlib inline\n"
        "import numpy as np\n"
        "def draw(n):\n    rng = np.random.default_rng()\n    return rng.random(n)\n"
        "def estimate(n):\n    return draw(n).mean()\n"
        "def unused():\n    return 1\n"
    )
    found = dict(advice.definitions_used(earlier, "estimate(100)"))
    assert sorted(found) == ["draw", "estimate"]  # followed through estimate to draw
    assert "default_rng()" in found["draw"]
    assert advice.definitions_used("def broken(:\n", "broken()") == []
    # A clock read that nothing reads back is no clue; one that is printed or kept is.
    unused = "def main():\n    stamp = datetime.now()  # never used\n    return 1\n"
    timed = "def bench():\n    t0 = time()\n    fit()\n    print(time() - t0)\n"
    assert advice.clues("main()", unused) == []
    assert [c.name for c in advice.clues("bench()", timed)] == [advice.VARYING.name]


def test_durations_a_library_measured_are_named_as_varying() -> None:
    from repro._verify import advice
    from repro._verify.report import Difference

    def item(output: str, where: str = "") -> Difference:
        return Difference(output, 2, "values", where, 1, "1.0", "2.0")

    timed = advice.timing_leaves(
        [item("search", ".cv_results_['mean_fit_time']"), item("search", ".refit_time_")]
    )
    assert timed is not None and timed.name == advice.VARYING.name
    assert "mean_fit_time" in timed.evidence
    assert advice.timing_leaves([item("search", ".best_score_"), item("elapsed")]) is None
    assert advice.timing_leaves([item("stdout")]) is None


def _two_runs(source_variables: dict[str, tuple[str, str]]) -> tuple[Run, Run]:
    """Two one-cell runs (cell 2) whose variables differ as given: name → (digest 1, digest 2)."""
    first, second = [
        Run(
            [
                record(
                    2,
                    {
                        n: {"digest": d[i], "kind": "float", "value": i}
                        for n, d in source_variables.items()
                    },
                    "s0",
                    list(source_variables),
                )
            ],
            str(i),
        )
        for i in (0, 1)
    ]
    return first, second


def test_str_hashing_is_not_claimed_where_the_code_draws_by_chance() -> None:
    from repro._verify import advice
    from repro._verify.notebook_report import causes

    first, second = _two_runs({"flip": ("a", "b")})
    report = compare_runs("nb.ipynb", first, second, 2)
    assert report.first == 2
    source = "flip = np.random.default_rng().integers(0, 2)"
    # The hash-seed reruns gave each run's result back, by luck (a coin has two sides).
    named = [c.name for c in causes(report, first, second, source, hashing=True)]
    assert named == [advice.OS_SEEDED.name]
    plain = "flip = sorted(words)[0]"  # no clue of chance: the reruns speak
    assert [c.name for c in causes(report, first, second, plain, hashing=True)] == [
        advice.HASHING.name
    ]


def test_a_varying_value_held_in_variables_is_left_out_by_name() -> None:
    from repro._verify import advice
    from repro._verify.notebook_report import causes

    first, second = _two_runs({"tic": ("a", "b"), "toc": ("c", "d")})
    report = compare_runs("nb.ipynb", first, second, 2)
    source = "tic = time.time()\nsum(range(10**6))\ntoc = time.time()"
    (cause,) = causes(report, first, second, source, hashing=None)
    assert cause.name == advice.VARYING.name
    assert "`--ignore tic` `--ignore toc`" in cause.fix and "repro-ignore`" in cause.fix
    assert "repro-ignore-output" not in cause.fix  # nothing it printed differs
    # A search fitted from an OS-seeded generator, and timed: `search` differs for the other
    # cause; leaving it out would hide it. Only `start` is named.
    first, second = _two_runs({"start": ("a", "b"), "search": ("c", "d")})
    report = compare_runs("nb.ipynb", first, second, 2)
    source = (
        "rng = np.random.RandomState()\nstart = time()\nsearch = fit(rng)\nprint(time() - start)"
    )
    found = {c.name: c for c in causes(report, first, second, source, hashing=None)}
    assert set(found) == {advice.OS_SEEDED.name, advice.VARYING.name}
    fix = found[advice.VARYING.name].fix
    assert "`--ignore start`" in fix and "search" not in fix


def test_a_generator_from_the_os_inside_an_earlier_function_is_the_cause(tmp_path: Path) -> None:
    cells = [
        "import numpy as np",
        "def estimate(n):\n    rng = np.random.default_rng()\n    return rng.random(n).mean()",
        "estimate(100)",
    ]
    path = tmp_path / "function.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    report = verify_notebook(path, runs=2, hash_seed=0)
    assert report.first == 3, str(report)
    (cause,) = report.causes
    assert cause.name == "a generator seeded from the operating system", str(report)
    assert "`estimate`, an earlier cell's" in cause.evidence


def test_an_html_difference_deep_in_a_long_repr_is_shown_and_a_recording_keeps_its_start() -> None:
    from repro._verify.notebook_report import _RICH_TEXT, _rich_items, rich_outputs

    rows = "".join(f"<tr><td>{i}</td></tr>\n" for i in range(5000))
    a = rich_outputs([{"text/html": rows + "<p>fit 0.0010</p>"}])
    b = rich_outputs([{"text/html": rows + "<p>fit 0.0011</p>"}])
    (item,) = _rich_items(a, b)
    assert str(item).startswith("display 1 text/html: line 5001, column 13: ")
    kept = record(2, {}, "s", [])
    kept.rich = a
    assert len(kept.as_dict()["rich"][0]["text/html"]["text"]) == _RICH_TEXT


def test_a_scikit_learn_diagram_is_left_to_the_estimators_variable() -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(random_state=0)
    fitted = LogisticRegression().fit(x, y)
    ignored: Counter[str] = Counter()
    bundle = dict(fitted._repr_mimebundle_())
    out = {"output_type": "execute_result", "data": bundle, "metadata": {}, "execution_count": 1}
    shown = normalize_outputs([out], ignored)
    assert list(shown.displays[0]) == ["text/plain"]  # the parameters: still compared
    assert sum(n for label, n in ignored.items() if "scikit-learn estimator diagrams" in label) == 1
    other = dict(LogisticRegression(C=0.5).fit(x, y)._repr_mimebundle_())
    assert normalize_outputs([{**out, "data": other}], Counter()) != shown


def test_a_recording_of_an_older_format_asks_to_record_again(tmp_path: Path) -> None:
    from repro._verify.notebook import load_recording

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": "repro-verify/2", "repro": "0.1.0", "cells": []}))
    with pytest.raises(ValueError, match=r"format repro-verify/2.*record it again with --save"):
        load_recording(old)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="is not a repro verify recording"):
        load_recording(other)


def test_with_more_runs_the_earliest_differing_cell_over_all_of_them_is_named() -> None:
    from repro._verify.notebook import earliest_difference

    same = {"digest": "f1", "kind": "int", "value": 1}

    def run(seed: str, cell2: str, cell3: str) -> Run:
        cells = [
            record(2, {"a": {**same, "digest": cell2}}, "s", ["a"]),
            record(3, {"a": {**same, "digest": cell2}, "b": {**same, "digest": cell3}}, "s", ["b"]),
        ]
        return Run(cells, seed)

    # Runs 1 and 2 agree on cell 2 by chance and differ at cell 3; run 3 differs at cell 2.
    first, second, third = run("0", "x", "p"), run("1", "x", "q"), run("2", "y", "r")
    report, other = earliest_difference("nb.ipynb", [first, second, third], 3)
    assert report.first == 2 and other is third
    report, other = earliest_difference("nb.ipynb", [first, second], 2)
    assert report.first == 3 and other is second
    report, other = earliest_difference("nb.ipynb", [first, run("1", "x", "p")], 2)
    assert report.first is None and other is first


def test_a_later_cell_with_a_cause_of_its_own_is_named_once_with_its_fix() -> None:
    """Later cells: a clue already named (the first cell's) or named for an earlier later cell
    is not repeated; a function of an earlier cell is followed; the text says each once."""
    from repro._verify.notebook_report import NotebookReport, later_causes

    source = {
        2: "import time, numpy as np\ndef stamp():\n    return time.time()",
        3: "gen = np.random.default_rng()\nx = gen.random(3)",
        4: "y = x * 2",
        5: "other = np.random.default_rng()\nz = other.random(3)",
        6: "t = stamp()",
        7: "u = stamp() + 1",
    }
    source[8] = "w = np.empty(3)\nw[:] = z\nv = time.perf_counter() - stamp()"
    report = NotebookReport("nb.ipynb", 2, first=3, downstream=[4, 5, 6, 7, 8])
    report.causes = [advice.OS_SEEDED.with_evidence("`default_rng()`")]
    found = later_causes(report, source)
    # 5's clue is the first cell's; 7's is 6's; 8: np.empty is not one, the clock twice is one.
    assert list(found) == [6, 8]
    assert [c.evidence for c in found[8]] == ["`time.perf_counter(`"]
    [clue] = found[6]
    assert clue.name == advice.VARYING.name
    assert clue.evidence == "`time.time(` in `stamp`, an earlier cell's"
    report.later_causes = found
    text = str(report)
    assert "later cells that differ, downstream of cell 3: 4, 5, 6, 7, 8" in text
    assert text.count("may also differ on its own") == 2
    assert f"  cell 6 may also differ on its own: {clue}" in text


def test_runs_that_write_the_same_file_are_run_again_one_after_the_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Side by side, two kernels share the notebook's folder: one read the other's half-written
    file (a cell raised, or a variable differed). Deterministic, so reproducible: verify sees
    the folder written and runs again one after the other, and says so."""
    cells = [
        new_code_cell("import numpy as np\nx = np.arange(10**6, dtype=float)"),
        new_code_cell(
            "for i in range(30):\n"
            "    np.save('shared.npy', x * i)\n"
            "    y = np.load('shared.npy')\n"
            "    assert (y == x * i).all(), i\n"
            "total = float(y.sum())"
        ),
    ]
    path = tmp_path / "save_load.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    (tmp_path / ".hidden").mkdir()
    code, out, _ = verify([str(path), "--jobs", "2"], capsys)
    assert code == 0, out
    assert "note: the runs wrote to the notebook's folder (shared.npy) and side by side" in out
    # A notebook that writes nothing is not run again, and its report says nothing of it.
    quiet = tmp_path / "quiet" / "reads.ipynb"
    quiet.parent.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("import random\nrandom.random()")]), quiet)
    code, out, _ = verify([str(quiet), "--jobs", "2"], capsys)
    assert code == 1 and "wrote to the notebook's folder" not in out


def test_a_global_stream_first_used_in_the_differing_cell_is_named_as_unseeded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NumPy imported and drawn from in the same cell, by a name no clue knows
    (`from numpy.random import randn`; scipy's `norm.rvs()`; an estimator without
    `random_state`): its global stream was never seeded, and the report says so."""
    cells = [
        new_code_cell("steps = 5"),
        new_code_cell("from numpy.random import randn\nwalk = randn(steps).cumsum()"),
        new_code_cell("print(walk[-1])"),
    ]
    path = tmp_path / "walk.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    code, out, _ = verify([str(path), "--json", "--hash-seed", "0"], capsys)
    report = json.loads(out)
    assert code == 1 and report["first_differing_cell"] == 2
    [cause] = report["causes"]
    assert cause["cause"] == "unseeded global random streams"
    assert cause["evidence"] == "NumPy unseeded, first used in this cell"


def test_a_timed_cell_is_told_both_fixes_and_following_them_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What varies is held in `start` and printed: the fix names the variable and the tag for
    the outputs, and the notebook with both applied is reproducible."""
    cells = [
        new_code_cell("from time import time\nimport numpy as np"),
        new_code_cell(
            "start = time()\nfit = np.linalg.lstsq(np.eye(3), np.ones(3), rcond=None)[0]\n"
            "print('took', time() - start)"
        ),
    ]
    path = tmp_path / "timed.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    code, out, _ = verify([str(path), "--json", "--hash-seed", "0"], capsys)
    [cause] = json.loads(out)["causes"]
    assert code == 1 and cause["cause"] == advice.VARYING.name
    assert "`--ignore start`" in cause["fix"] and "`repro-ignore-output`" in cause["fix"]
    cells[1].metadata["tags"] = ["repro-ignore-output"]
    nbformat.write(new_notebook(cells=cells), path)
    code, out, _ = verify([str(path), "--ignore", "start", "--hash-seed", "0"], capsys)
    assert code == 0, out


def test_files_written_are_those_created_changed_or_removed(tmp_path: Path) -> None:
    from repro._verify.notebook import files_written, folder_files

    (tmp_path / "kept.txt").write_text("a")
    (tmp_path / "changed.txt").write_text("a")
    (tmp_path / "gone.txt").write_text("a")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "sub").mkdir()
    before = folder_files(tmp_path)
    (tmp_path / "changed.txt").write_text("ab")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "sub" / "new.npy").write_bytes(b"x")
    (tmp_path / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").write_text("{}")
    written = files_written(before, folder_files(tmp_path))
    assert written == ["changed.txt", "gone.txt", str(Path("sub") / "new.npy")]
