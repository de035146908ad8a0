"""``python benchmarks/run.py``: the one benchmark command, as CI runs it (``--quick``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
FIGURES = [f"({n})" for n in range(1, 10)]


def test_quick_run_prints_every_figure_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--rounds", "2", "--json", out],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure"))
    assert [c.strip() for c in lines[header].split("|")] == [
        "figure", "repro", "baseline", "ratio", "target", "met",
    ]  # fmt: skip
    firsts = [line[:3] for line in lines[header + 2 :]]
    for figure in FIGURES:
        assert figure in firsts, f"no row for figure {figure}:\n{done.stdout}"
    rows = json.loads(out.read_text())
    assert [r["figure"][:3] for r in rows if r["figure"].startswith("(")] == [
        f for f in firsts if f.startswith("(")
    ]
    # Every measured figure with a target says whether it was met.
    for row in rows:
        if row["target"] not in ("–", "") and row["met"] != "pending":
            assert isinstance(row["met"], bool), row


def test_a_missed_target_fails_a_full_run_only(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("benchmarks_run", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, run)  # dataclasses look their module up there
    spec.loader.exec_module(run)
    met = run.Row("(2) a", "1 µs", "1 µs", "1.00×", "≤ 1.2×", True)
    missed = run.Row("(3) b", "9 µs", "1 µs", "9.00×", "≤ 2×", False)
    untargeted = run.Row("(8) c", "1 ms", "1 ms", "1.00×", "–", None)
    assert run.exit_code([met, untargeted], quick=False) == 0
    assert run.exit_code([met, missed, untargeted], quick=False) == 1
    assert run.exit_code([met, missed], quick=True) == 0
