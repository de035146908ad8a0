"""repro.state(): one description of the kernel's state, drawn the same way by every view."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from tests.helpers import torch_flags

import repro
from repro._state import code_html, hash_warning


def test_a_state_is_an_immutable_value() -> None:
    repro.setup(3, "debug")
    st = repro.state()
    assert st == repro.state()  # equal while nothing moves
    with pytest.raises(AttributeError):
        st.seed = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        st.settings["cudnn_benchmark"] = True  # type: ignore[index]
    random.random()
    assert repro.state() != st  # a draw moves Python's fingerprint


def test_source_rows_say_fresh_moved_and_seeded_on_import() -> None:
    repro.seed(42)
    rows = {r.stream: r for r in repro.state().source_rows()}
    assert (rows["Python random"].seed, rows["Python random"].status) == ("42", "fresh")
    assert rows["torch (CPU)"].status == "fresh"
    random.random()
    np.random.rand()
    rows = {r.stream: r for r in repro.state().source_rows()}
    assert rows["Python random"].status == rows["NumPy"].status == "moved"
    assert rows["torch (CPU)"].status == "fresh"
    repro.seed(42)  # reseeding makes a moved stream fresh again
    assert {r.status for r in repro.state().source_rows()} == {"fresh"}


def test_streams_never_seeded_say_so() -> None:
    rows = {r.stream: r for r in repro.state().source_rows()}
    assert rows["torch (CPU)"].status == "not seeded"
    assert rows["torch (CPU)"].seed == "–"


def test_setting_rows_are_torchs_flags_as_a_pytorch_user_reads_them() -> None:
    repro.use_profile("final")
    rows = dict(repro.state().setting_rows())
    flags = torch_flags()
    assert rows["cudnn.deterministic"] == str(flags["det"])
    assert rows["cudnn.benchmark"] == str(flags["bench"])
    assert rows["deterministic algorithms"] == "warn"
    assert rows["cudnn.allow_tf32"] == str(flags["cudnn_tf32"])
    assert rows["cuda.matmul.allow_tf32"] == str(flags["tf32"])
    assert rows["float32 matmul precision"] == torch.get_float32_matmul_precision()
    assert rows["fill uninitialized memory"] == str(flags["fill"])
    assert rows["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert rows["cuDNN"].startswith("available, v") or rows["cuDNN"] == "not available"
    fixed = repro.hash_seed() is not None
    assert rows["str hashing"].startswith("fixed" if fixed else "randomized in this ")


def test_verdict_and_summary() -> None:
    st = repro.state()
    assert st.verdict in ("not seeded", "⚠ 1 warning")  # unseeded (and maybe randomized hashing)
    assert st.summary().startswith("seed none · profile none (backend flags untouched) · ")
    repro.setup(7, "production")
    st = repro.state()
    n = len(st.warnings)
    assert st.verdict == ("✓ reproducible" if n == 0 else f"⚠ {n} warning{'s' * (n > 1)}")
    assert st.summary() == f"seed 7 · profile production · {st.verdict}"
    assert "seeded Python random, NumPy, torch (CPU)" in st.summary(sources=True)


def test_text_html_and_rows_say_the_same() -> None:
    repro.setup(11, "debug", deterministic_algorithms="warn")
    random.random()
    st = repro.state()
    text, page = str(st), st._repr_html_()
    assert text.splitlines()[0] == f"repro: {st.summary()}"
    for row in st.source_rows():
        assert re.search(rf"{re.escape(row.stream)}\s+seed {row.seed}\s+{row.fingerprint}", text)
        assert f"<td>{row.stream}</td><td><code>{row.seed}</code></td>" in page
    for label, value in st.setting_rows():
        assert re.search(rf"{re.escape(label)}\s+{re.escape(value)}", text)
        assert f"<td>{label}</td><td><code>{value}</code></td>" in page
    for warning in st.warnings:
        assert f"! {warning}" in text
        assert f"<li>{code_html(warning)}</li>" in page
    assert "debug (deterministic_algorithms=warn)" in text and st.verdict in page


def test_code_in_a_warning_shows_as_code_in_html_and_stays_escaped() -> None:
    text = "Fix: `PYTHONHASHSEED=0 python a<b>.py` and use it; then `x & y`."
    assert code_html(text) == (
        "Fix: <code>PYTHONHASHSEED=0 python a&lt;b&gt;.py</code> and use it; then "
        "<code>x &amp; y</code>."
    )
    assert code_html("a lone ` backtick <i>") == "a lone ` backtick &lt;i&gt;"
    assert "`" not in code_html(hash_warning("kernel"))


SCRIPT = """
import repro
st = repro.state()
print(st.process)
print("\\n".join(st.warnings))
print(dict(st.setting_rows())["str hashing"])
"""


@pytest.mark.parametrize("hash_seed", [None, "0"])
def test_a_script_is_advised_about_its_process_not_a_kernel(tmp_path, hash_seed) -> None:
    # A plain `python script.py`: the advice names the process and the command line.
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    process, *rest = done.stdout.splitlines()
    assert process == "script"
    if hash_seed is None:
        assert "str hashing is randomized in this process" in done.stdout
        assert "`PYTHONHASHSEED=0 python train.py`" in done.stdout
        assert rest[-1] == "randomized in this process"
    else:  # the baseline: the same script, hashing fixed, says nothing about it
        assert "hashing" not in "\n".join(rest[:-1]) and rest[-1] == "fixed (PYTHONHASHSEED=0)"
    assert "kernel" not in done.stdout


def test_to_dict_is_plain_data() -> None:
    import json

    repro.setup(5, "final")
    data = repro.state().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert (data["seed"], data["profile"]) == (5, "final")
    assert data["settings"]["deterministic_algorithms"] == "warn"


def test_the_head_and_the_summary_are_one_line() -> None:
    repro.setup(11, "debug", deterministic_algorithms="warn")
    st = repro.state()
    from repro._state import head_html

    head = re.sub(r"<[^>]+>", " ", head_html(st))
    assert " ".join(head.split()) == f"repro {st.summary()}"


def test_the_rank_is_decided_once_and_every_view_agrees() -> None:
    repro.seed(42, rank=1)
    st = repro.state()
    assert st.rank == 1 and st.world_size is None  # no process group: no world size to show
    assert st.summary().endswith(" · rank 1") and "rank 1" in st._repr_html_()
    seeds = {s.stream: s.seed for s in st.sources}
    assert seeds["NumPy"] == repro.rank_seed(42, 1) and seeds["torch (CPU)"] == 42
    with repro.scope():  # a block inside the session keeps its rank
        assert repro.state().rank == 1
        inside = np.random.rand()
    np.random.seed(repro.rank_seed(42, 1))
    assert inside == np.random.rand()
    generator = repro.dataloader_kwargs()["generator"]
    assert generator.initial_seed() == repro.rank_seed(42, 1)
    repro.seed(42)  # a new seeding without a rank: the guide's streams again
    assert repro.state().rank is None and "rank" not in repro.state().summary()
    assert repro.dataloader_kwargs()["generator"].initial_seed() == 42
