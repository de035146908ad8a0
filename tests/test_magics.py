"""%repro and %%repro in a real IPython InteractiveShell."""

from __future__ import annotations

import ast

import pytest
import torch
from tests.helpers import guide_set_seed, streams, torch_flags

import repro


def run(shell, source: str):
    return shell.run_cell(source, store_history=True)


def test_repro_42_deterministic(shell, capsys) -> None:
    result = run(shell, "%repro 42 --deterministic")
    assert result.success
    out = capsys.readouterr().out
    assert "seed 42" in out and "profile debug" in out
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    got = streams()
    guide_set_seed(42)
    assert got == streams()


@pytest.mark.parametrize(
    ("line", "profile", "algorithms"),
    [
        ("%repro 1 -p final", "final", "warn"),
        ("%repro --profile production", "production", "off"),
        ("%repro 1 -d --warn-only", "debug", "warn"),
        ("%repro 1 -d --algorithms off", "debug", "off"),
        ("%repro 0x10 --profile search -q", "search", "off"),
    ],
)
def test_flags(shell, line: str, profile: str, algorithms: str) -> None:
    assert run(shell, line).success
    st = repro.state()
    assert st.profile == profile
    assert st.settings["deterministic_algorithms"] == algorithms


def test_make_reproducible_recipe_is_one_magic(shell) -> None:
    # The guide's make_reproducible(42): seeds, cudnn deterministic, no benchmark, hash seed env.
    run(shell, "%repro 42 -d --algorithms off -q")
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled()
    got = streams()
    guide_set_seed(42)
    assert got == streams()


def test_bare_repro_shows_the_state(shell, capsys) -> None:
    run(shell, "%repro 5 -p final -q")
    capsys.readouterr()
    result = run(shell, "%repro")
    assert isinstance(result.result, repro.State)
    out = capsys.readouterr().out
    assert "seed 5" in out and "cudnn.deterministic" in out and "torch (CPU)" in out


def test_random_seed_is_printed_and_pinnable(shell, capsys) -> None:
    run(shell, "%repro random")
    seed = repro.state().seed
    assert seed is not None and f"seed {seed}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%repro abc", "seed must be an integer"),
        ("%repro -1", "0 <= seed < 2**32"),
        ("%repro 2**40", "seed must be an integer"),
        ("%repro 4294967296", "0 <= seed < 2**32"),
        ("%repro --profile nope", "unknown profile 'nope'"),
        ("%repro 1 -d -p production", "--deterministic means --profile debug"),
        ("%repro 1 --algorithms maybe", "invalid choice"),
        ("%repro 1 --keep", "--keep is for the %%repro cell magic"),
        ("%repro 1 -d --warn-only --algorithms raise", "--warn-only means --algorithms warn"),
    ],
)
def test_bad_input_is_one_usage_error_and_changes_nothing(shell, capsys, line, message) -> None:
    run(shell, "%repro 3 -p production -q")
    before, flags = repro.state(), torch_flags()
    capsys.readouterr()
    result = run(shell, line)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert message in text
    assert "Traceback" not in text
    assert repro.state() == before
    assert torch_flags() == flags


def test_cell_magic_reruns_identically_and_restores(shell) -> None:
    run(shell, "%repro 1 -p production -q")
    run(shell, "import torch")
    cell = (
        "%%repro 42 -d\nx = torch.rand(3).tolist()\n"
        "flags = torch.are_deterministic_algorithms_enabled()"
    )
    run(shell, cell)
    first = shell.user_ns["x"]
    assert shell.user_ns["flags"] is True
    run(shell, "torch.rand(100)")  # whatever ran before...
    run(shell, cell)
    assert shell.user_ns["x"] == first  # ...the cell gives the same output
    st = repro.state()
    assert (st.seed, st.profile) == (1, "production")
    assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()


def test_cell_magic_leaves_following_cells_undisturbed(shell) -> None:
    run(shell, "%repro 8 -q")
    run(shell, "import torch; a = torch.rand(2).tolist()")
    expected = streams(3)
    run(shell, "%repro 8 -q")
    run(shell, "b = torch.rand(2).tolist()")
    run(shell, "%%repro 123\n_ = torch.rand(50)")
    assert shell.user_ns["a"] == shell.user_ns["b"]
    assert streams(3) == expected


def test_cell_magic_displays_the_last_expression(shell, capsys) -> None:
    capsys.readouterr()
    run(shell, "%%repro 1\nx = 40\nx + 2")
    assert "42" in capsys.readouterr().out


def test_cell_magic_error_fails_the_cell_and_restores(shell, capsys) -> None:
    run(shell, "%repro 4 -p search -q")
    before = repro.state()
    result = run(shell, "%%repro 99 -p debug\nx = 1\nraise ValueError('user error here')\n")
    assert isinstance(result.error_in_exec, ValueError)
    assert not result.success
    text = capsys.readouterr()
    shown = text.out + text.err
    assert "user error here" in shown
    assert "raise ValueError('user error here')" in shown  # points at the user's line
    assert "repro/_magics.py" not in shown and "repro/_cell.py" not in shown
    assert repro.state() == before


def test_cell_magic_keep(shell) -> None:
    run(shell, "%%repro 77 -p final --keep\nimport torch")
    st = repro.state()
    assert (st.seed, st.profile) == (77, "final")


def test_cell_magic_fires_cell_events_once(shell) -> None:
    calls: list[str] = []

    def pre(info) -> None:
        calls.append("pre")

    def post(result) -> None:
        calls.append("post")

    shell.events.register("pre_run_cell", pre)
    shell.events.register("post_run_cell", post)
    try:
        run(shell, "%%repro 1\nx = 1")
    finally:
        shell.events.unregister("pre_run_cell", pre)
        shell.events.unregister("post_run_cell", post)
    assert calls == ["pre", "post"]


def test_cell_magic_runs_line_magics_inside(shell) -> None:
    run(shell, "%%repro 1\n%repro 2 -q\ny = 3")
    assert shell.user_ns["y"] == 3
    assert repro.state().seed is None  # restored: the session had no seed before


def test_overrides_without_any_profile_are_refused(shell, capsys) -> None:
    result = run(shell, "%repro --warn-only")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "needs a profile" in capsys.readouterr().err
    assert repro.state().profile is None


def test_load_twice_unload_reload(shell, capsys) -> None:
    before = dict(shell.magics_manager.magics["line"])
    run(shell, "%load_ext repro")
    run(shell, "%reload_ext repro")
    assert dict(shell.magics_manager.magics["line"]).keys() == before.keys()
    run(shell, "%unload_ext repro")
    assert "repro" not in shell.magics_manager.magics["line"]
    assert "repro" not in shell.magics_manager.magics["cell"]
    run(shell, "%load_ext repro")
    assert run(shell, "%repro 1 -q").success


def test_a_raising_subscriber_is_reported_once_and_the_others_still_run(shell) -> None:
    from repro import _extension

    seen: list[bool] = []

    def broken(result) -> None:
        raise KeyError("a closed view")

    unsubscribe = [
        _extension.on_cell_end(broken),
        _extension.on_cell_end(lambda result: seen.append(result.success)),
    ]
    try:
        with pytest.warns(RuntimeWarning, match="broken failed: KeyError") as caught:
            first = run(shell, "x = 1")
            second = run(shell, "1 / 0")
    finally:
        for u in unsubscribe:
            u()
    assert first.success and not second.success
    assert len([w for w in caught if "broken" in str(w.message)]) == 1  # reported once
    assert seen == [True, False]  # the next subscriber ran after both cells


def test_the_extension_hub_imports_no_shell() -> None:
    import ast
    import inspect

    from repro import _extension

    tree = ast.parse(inspect.getsource(_extension))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not any(name and name.startswith("repro") for name in imported), imported


def test_help_has_examples(shell) -> None:
    doc = shell.find_line_magic("repro").__doc__
    assert "%repro 42 --deterministic" in doc and "--warn-only" in doc and "%%repro" in doc


def test_profiles_subcommand(shell, capsys) -> None:
    result = run(shell, "%repro profiles")
    text = repr(result.result)
    for name in ("debug", "final", "search", "production"):
        assert name in text


# --- first contact: help, typos, the hashing fix, export where nothing inserts cells ---------


@pytest.mark.parametrize(
    "line", ["%repro --help", "%repro -h", "%repro 42 --help", "%repro export -h"]
)
def test_help_flag_prints_the_help_and_changes_nothing(shell, capsys, line) -> None:
    run(shell, "%repro 3 -p production -q")
    before = repro.state()
    capsys.readouterr()
    result = run(shell, line)
    out = capsys.readouterr().out
    assert result.success and result.error_in_exec is None
    # What %repro? shows: the usage, the examples and every option.
    assert "%repro [-d] [-p NAME]" in out
    assert "%repro 42 --deterministic" in out and "--warn-only" in out
    assert "%repro kernel install" in out
    assert repro.state() == before


def test_cell_magic_help_prints_the_help_and_runs_nothing(shell, capsys) -> None:
    shell.user_ns["ran"] = False
    result = run(shell, "%%repro --help\nran = True")
    out = capsys.readouterr().out
    assert result.success and "%repro [-d] [-p NAME]" in out and "%%repro 42 -p debug" in out
    assert shell.user_ns["ran"] is False


@pytest.mark.parametrize(
    ("line", "unhinted", "suggestion"),
    [
        ("%repro 42 --determinstic", "unrecognized arguments: --determinstic", "--deterministic"),
        ("%repro 42 --quite", "unrecognized arguments: --quite", "--quiet"),
        ("%repro 42 --warnonly", "unrecognized arguments: --warnonly", "--warn-only"),
        ("%repro pannel", "got 'pannel'", "panel"),
        ("%repro exprot", "got 'exprot'", "export"),
        ("%repro kernl install", "unrecognized arguments: install", "kernel"),
        ("%repro 1 -p fianl", "unknown profile 'fianl'", "final"),
        ("%repro 1 --profile=prodution", "unknown profile 'prodution'", "production"),
        ("%repro randm", "got 'randm'", "random"),
        ("%%repro 1 --determinstic\nx = 1", "unrecognized arguments", "--deterministic"),
    ],
)
def test_a_typo_is_one_usage_error_that_names_the_closest_word(
    shell, capsys, line, unhinted, suggestion
) -> None:
    run(shell, "%repro 3 -p production -q")
    before, flags = repro.state(), torch_flags()
    capsys.readouterr()
    result = run(shell, line)
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert unhinted in text and f"(did you mean `{suggestion}`?)" in text
    assert len(text.splitlines()) == 1 and "Traceback" not in text
    assert repro.state() == before and torch_flags() == flags


@pytest.mark.parametrize("line", ["%repro 1 --zzzz", "%repro qqqqqq", "%repro 1 -p xyzzy"])
def test_a_word_like_no_known_one_gets_no_suggestion(shell, capsys, line) -> None:
    result = run(shell, line)
    captured = capsys.readouterr()
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "did you mean" not in captured.out + captured.err


def test_the_headline_command_shows_the_hashing_fix_where_it_warns(shell, capsys) -> None:
    run(shell, "%repro 42 --deterministic")
    out = capsys.readouterr().out
    st = repro.state()
    if st.hash_fixed:  # a run under PYTHONHASHSEED: nothing to fix, nothing said
        assert "⚠" not in out
        return
    # In a shell (not a kernel) the fix is to start it again with the variable set.
    assert st.process == "ipython"
    assert "⚠ 1 warning" in out and "str hashing is randomized in this IPython session" in out
    assert "`PYTHONHASHSEED=0 ipython`" in " ".join(out.split())
    assert "%repro shows the warnings" not in out


def test_kernel_install_subcommand_installs_the_fixed_hash_kernel_and_explains_the_switch(
    shell, capsys, tmp_path, monkeypatch
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    before = repro.state()
    assert run(shell, "%repro kernel install --hash-seed 7").success
    out = capsys.readouterr().out
    spec = KernelSpecManager().get_kernel_spec("repro")
    assert spec.env["PYTHONHASHSEED"] == "7"
    assert spec.display_name == "Python 3 (repro, hash seed 7)"
    assert str(tmp_path) in spec.resource_dir
    assert "installed the kernel 'Python 3 (repro, hash seed 7)'" in out
    assert "Change Kernel" in out and "keeps its randomized hashing" in out
    assert repro.state() == before  # this kernel's own state is untouched


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%repro kernel", "usage: %repro kernel install"),
        ("%repro kernel remove", "invalid choice"),
        ("%repro kernel install --hash-seed x", "hash seed must be an integer"),
        ("%repro kernel install --hash-seed 4294967296", "0 <= seed < 2**32"),
    ],
)
def test_kernel_install_bad_input_is_one_usage_error_and_installs_nothing(
    shell, capsys, tmp_path, monkeypatch, line, message
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    result = run(shell, line)
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert message in text and len(text.splitlines()) == 1
    assert not list(tmp_path.rglob("kernel.json"))


def test_export_without_a_notebook_prints_the_cell_instead_of_claiming_it(shell, capsys) -> None:
    # A plain InteractiveShell has no frontend that inserts cells: nothing is "inserted below".
    run(shell, "%repro 42 -p final -q")
    capsys.readouterr()
    assert run(shell, "%repro export --param lr=0.001").success
    out = capsys.readouterr().out
    assert "inserted" not in out
    assert out.startswith("repro: no notebook here can insert a cell")
    source = out.split("\n\n", 1)[1].rstrip("\n")

    def config(cell: str) -> dict:
        value = ast.literal_eval(ast.parse(cell).body[1].value)
        del value["environment"]["captured"]  # the second it was exported
        return value

    # The cell printed is the whole cell: what repro.config_cell gives, runnable as it is.
    assert source.endswith("differences = repro.apply_config(config)")
    assert config(source) == config(repro.config_cell({"lr": 0.001}))
    assert config(source)["params"] == {"lr": 0.001} and config(source)["seed"] == 42
