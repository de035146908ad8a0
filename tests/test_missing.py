"""Missing pieces: no torch, torch without CUDA, widgets without a frontend, no ipylab, no IPython.

Each works, and where a feature is unavailable it says so in a line: never a traceback.
"No torch" and "no ipylab" are an import blocker in a fresh interpreter or kernel (what
an install without them looks like to Python); "torch without CUDA" is this machine;
"no frontend" is a plain ``InteractiveShell`` and a kernel driven by nbclient (a headless
notebook run, which no browser renders).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from tests.helpers import run_python
from tests.reliability import record

import repro

pytestmark = pytest.mark.slow


def _blocker(*names: str) -> str:
    """Source that makes ``import NAME`` fail as if NAME were not installed."""
    return textwrap.dedent(
        f"""
        import sys
        class _Missing:
            names = {names!r}
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in self.names:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, _Missing())
        """
    )


def _shell_script(blocked: tuple[str, ...], cells: list[str]) -> str:
    """Run ``cells`` in a plain InteractiveShell; print one JSON line of (ok, output) per cell."""
    return _blocker(*blocked) + textwrap.dedent(
        f"""
        import io, json, contextlib
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        results = []
        for cell in {cells!r}:
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                result = shell.run_cell(cell)
            results.append([result.success, out.getvalue()])
        print(json.dumps(results))
        """
    )


def _no_traceback(output: str, where: str) -> None:
    assert "Traceback" not in output and "Error" not in output.replace("UsageError", ""), (
        f"{where}:\n{output}"
    )


def test_no_torch_every_magic_works_and_torch_features_say_why(tmp_path: Any) -> None:
    cells = [
        "%load_ext repro",
        "%repro 42 --deterministic",
        "%repro",
        "%%repro 1 -p production\nimport random\nx = random.random()",
        "%repro profiles",
        "%repro panel",
        "%repro export --param lr=0.1",
        "%repro -p final --algorithms warn",
        "import repro\nprint(repro.environment()['frameworks']['torch'])",
    ]
    out = run_python(_shell_script(("torch",), cells), timeout=600)
    results = json.loads(out.strip().splitlines()[-1])
    for cell, (ok, output) in zip(cells, results, strict=True):
        assert ok, f"{cell!r} failed without torch:\n{output}"
        _no_traceback(output, cell)
    # Its distribution is still on disk here, so it is reported as installed, not imported.
    assert "'imported': False" in results[-1][1]
    # The one feature that needs torch says so, in one line.
    code = _blocker("torch") + textwrap.dedent(
        """
        import repro
        for call in (repro.dataloader_kwargs, lambda: repro.seed_worker(0)):
            try:
                call()
            except ImportError as exc:
                print("ImportError:", exc)
        """
    )
    lines = run_python(code).strip().splitlines()
    assert len(lines) == 2 and all("PyTorch is not installed" in line for line in lines), lines
    # The command line too.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _blocker("torch") + "from repro.cli import main; main()",
            "info",
            "--import",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "torch" in proc.stdout and "not imported" in proc.stdout, proc.stdout
    record("missing-no-torch", cells_run=len(cells), features_refused_clearly=2)


def test_torch_without_cuda(shell: Any) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the case is a machine without it")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about a GPU that is not there
        for cell in (
            "import torch",
            "%repro 42 -d -q",
            "%%repro 3 -p production\nx = torch.rand(2)",
            "%repro",
        ):
            result = shell.run_cell(cell)
            assert result.success, result.error_in_exec
    env = repro.environment()
    described = env["frameworks"]["torch"]
    assert described["cuda_available"] is False and described.get("gpu_count", 0) in (0, None)
    assert env["backend_flags"]["cuda_initialized"] is False
    st = repro.state()
    assert not [w for w in st.warnings if "CUDA" in w and "hash" not in w], st.warnings
    with repro.scope(5, "debug"):  # saves no CUDA generator, starts no CUDA
        torch.rand(1)
    assert not torch.cuda.is_initialized()


def test_widgets_without_a_frontend_plain_shell(shell: Any) -> None:
    result = shell.run_cell("%repro panel")
    assert result.success
    p = result.result
    try:
        # What a terminal shows instead of the widget: the state's summary, whole, and where
        # the widget draws (ipywidgets' own text is cut at 110 characters).
        formatted, _ = shell.display_formatter.format(p)
        text = formatted["text/plain"]
        first, second = text.splitlines()
        assert first == f"repro panel: {repro.state().summary()}" and "…" not in text
        assert "JupyterLab" in second and "%repro" in second and len(second) <= 100, text
        assert repr(p) == first
        p.export_button.click()  # no frontend to insert a cell: the code is shown instead
        assert "cannot insert cells" in p.status.value
        assert "repro.apply_config(config)" in p.code.value
    finally:
        p.close()


NOTEBOOK_CELLS = [
    "%load_ext repro",
    "%repro 42 -d -q",
    "%repro panel",
    "import repro\n"
    "p = repro.panel()\n"
    "p.export_button.click()\n"
    "print(p.status.value)\n"
    "print('code shown:', 'apply_config' in p.code.value)",
    "%%repro 7\nimport random\nprint(random.random())",
    "%repro",
]


def _run_notebook(first_cells: list[str]) -> list[Any]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in [*first_cells, *NOTEBOOK_CELLS]]
    NotebookClient(nb, kernel_name="python3", timeout=600, startup_timeout=600).execute()
    return nb.cells[len(first_cells) :]


def _texts(cell: Any) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append("\n".join(output.traceback))
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("case", ["widgets, no frontend (nbclient)", "ipylab absent (nbclient)"])
def test_headless_kernel(case: str) -> None:
    first = [_blocker("ipylab")] if "ipylab" in case else []
    cells = _run_notebook(first)
    for cell in cells:
        assert not [o for o in cell.outputs if o.output_type == "error"], _texts(cell)
        _no_traceback(_texts(cell), cell.source)
    panel_cell = _texts(cells[2])
    assert "repro panel: seed 42" in panel_cell  # text/plain beside the widget view
    export = _texts(cells[3])
    assert "cannot insert cells" in export and "code shown: True" in export
    record(f"missing-{case.split(' ')[0].strip(',')}", cells_run=len(cells))


def test_not_in_ipython_at_all() -> None:
    code = textwrap.dedent(
        """
        import sys
        import repro
        repro.setup(42, "debug")
        import random, numpy as np, torch
        print(repro.state().seed, repro.state().profile)
        with repro.scope(1, "production"):
            pass
        print(repro.state().profile)
        # The core ran without IPython: only the panel (ipywidgets) below may bring it in.
        print("IPython loaded:", "IPython" in sys.modules)
        p = repro.panel()   # ipywidgets works without a kernel; nothing draws it
        print(repr(p))
        print(repro.config_cell().splitlines()[0])
        try:
            repro.check()
        except ValueError as exc:
            print("check:", exc)
        """
    )
    lines = run_python(code).strip().splitlines()
    assert lines[0] == "42 debug" and lines[1] == "debug"
    assert lines[2] == "IPython loaded: False"
    assert lines[3].startswith("repro panel: seed 42 · profile debug · ") and len(lines[3]) < 110
    assert lines[4].startswith("# repro config")
    assert lines[5].startswith("check: no config has been applied")
    record("missing-no-ipython", checks=6)
