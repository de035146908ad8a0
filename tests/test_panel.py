"""The panel's logic with real ipywidgets objects: clicks and values really change the kernel,
and the panel really follows changes made elsewhere (API, magics, other panels)."""

from __future__ import annotations

import ast
import html
import random
import re
import warnings
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ipywidgets")

from tests.helpers import refusing_framework, torch_flags  # noqa: E402

import repro  # noqa: E402
from repro import _config, frameworks  # noqa: E402
from repro import _panel as panel_module  # noqa: E402
from repro._panel import Panel, profile_hint  # noqa: E402


@pytest.fixture
def panels() -> Iterator[list[Panel]]:
    """Panels made in a test; each is closed afterwards, so none outlives it."""
    made: list[Panel] = []
    yield made
    for p in made:
        p.close()


def new_panel(made: list[Panel]) -> Panel:
    p = repro.panel()
    made.append(p)
    return p


def fingerprint_of(p: Panel, stream: str) -> str:
    """The fingerprint the panel shows for ``stream`` (read from its HTML, like a person would)."""
    match = re.search(
        rf"<td>{re.escape(stream)}</td><td><code>[^<]*</code></td>"
        r"<td><code class='repro-fingerprint'>([^<]*)</code>",
        p.sources.value,
    )
    assert match, p.sources.value
    return match.group(1)


def error_text(p: Panel) -> str:
    assert "repro-error" in p.status.value, p.status.value
    return p.status.value


def test_profile_hint() -> None:
    hint = profile_hint(repro.get_profile("production"))
    assert hint == "production: speed; seeds logged · fastest (cuDNN autotuning, TF32); runs differ"
    assert "left as they are" in profile_hint(None)


def test_the_panel_draws_the_states_rows() -> None:
    repro.setup(42, "final")
    p = repro.panel()
    try:
        st = repro.state()
        for row in st.source_rows():
            assert f"<td>{row.stream}</td><td><code>{row.seed}</code></td>" in p.sources.value
        for label, value in st.setting_rows():
            assert f"<td>{label}</td><td><code>{value}</code></td>" in p.settings.value
        assert st.verdict in p.header.value
    finally:
        p.close()


def test_the_panel_shows_the_last_verify_verdict(panels: list[Panel]) -> None:
    p = new_panel(panels)
    assert "last verify" not in p.header.value
    report = repro.verify(lambda: random.random(), seed=3)
    assert report.reproducible
    assert f"last verify: {report.verdict}" in p.header.value
    repro.verify(lambda: random.SystemRandom().random(), seed=3)
    assert "last verify: NOT reproducible" in p.header.value


def test_the_panel_shows_rank_and_world_size_in_a_process_group(panels: list[Panel]) -> None:
    import socket

    import torch.distributed as dist

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        p = new_panel(panels)
        assert "rank 0 of 1" in p.header.value
        assert "rank 0 of 1" in repro.state().summary()
    finally:
        dist.destroy_process_group()
    p.refresh()
    assert "rank 0 of 1" not in p.header.value


# --- the controls change the kernel --------------------------------------------------


def test_profile_switch_applies_to_the_kernel(panels: list[Panel]) -> None:
    p = new_panel(panels)
    assert set(p.profile_buttons.options) >= {"debug", "final", "search", "production"}
    p.profile_buttons.value = "debug"
    assert repro.state().profile == "debug"
    assert torch.backends.cudnn.deterministic is True
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    p.profile_buttons.value = "production"
    assert torch.backends.cudnn.benchmark is True
    assert not torch.are_deterministic_algorithms_enabled()
    assert "profile production" in p.header.value
    assert "fastest" in p.hint.value
    assert p.status.value == "profile production applied"


def test_registered_profiles_appear_and_apply(panels: list[Panel]) -> None:
    repro.register_profile("fast-debug", "big models", "warns", base="debug",
                           deterministic_algorithms="warn")  # fmt: skip
    p = new_panel(panels)
    assert "fast-debug" in p.profile_buttons.options
    p.profile_buttons.value = "fast-debug"
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    repro.register_profile("late", "registered after the panel")
    p.refresh()
    assert "late" in p.profile_buttons.options


def test_seed_apply_and_new_random_seed(panels: list[Panel]) -> None:
    p = new_panel(panels)
    p.seed_text.value = "1234"
    p.apply_button.click()
    assert repro.state().seed == 1234
    assert random.random() == random.Random(1234).random()
    assert (
        torch.rand(3).tolist()
        == torch.rand(3, generator=torch.Generator().manual_seed(1234)).tolist()
    )
    assert "seed 1234" in p.header.value
    assert "1234" in p.status.value

    p.random_button.click()
    drawn = repro.state().seed
    assert drawn is not None and drawn != 1234
    assert p.seed_text.value == str(drawn)
    assert f"%repro {drawn}" in p.status.value


def test_apply_reseeds_a_moved_stream(panels: list[Panel]) -> None:
    p = new_panel(panels)
    p.seed_text.value = "5"
    p.apply_button.click()
    fresh = fingerprint_of(p, "Python random")
    random.random()
    p.refresh()
    assert fingerprint_of(p, "Python random") != fresh
    p.apply_button.click()
    assert fingerprint_of(p, "Python random") == fresh


@pytest.mark.parametrize("text", ["abc", "-1", str(2**32), "1.5"])
def test_bad_seed_shows_an_error_and_changes_nothing(panels: list[Panel], text: str) -> None:
    repro.seed(3)
    p = new_panel(panels)
    p.seed_text.value = text
    p.apply_button.click()
    assert "2**32" in error_text(p)
    assert repro.state().seed == 3
    with pytest.raises(ValueError) as typed:  # the same words as %repro's
        repro._seed.parse_seed(text)
    assert str(typed.value) in html.unescape(error_text(p))


def test_typing_random_in_the_seed_box_draws_a_fresh_seed_as_the_magic_does(
    panels: list[Panel],
) -> None:
    p = new_panel(panels)
    p.seed_text.value = " random "
    p.apply_button.click()
    drawn = repro.state().seed
    assert drawn is not None and p.seed_text.value == str(drawn)
    assert f"with {drawn}" in p.status.value and "repro-error" not in p.status.value


def test_failing_profile_switch_shows_error_and_the_real_profile(panels: list[Panel]) -> None:
    import json  # noqa: F401  (the failing adapter's module must be imported to be live)

    repro.use_profile("search")
    p = new_panel(panels)
    before = torch_flags()
    frameworks.register(refusing_framework())  # a real adapter whose backend refuses every flag
    try:
        p.profile_buttons.value = "debug"
    finally:
        frameworks.unregister("refusing")
    assert "this backend refuses" in error_text(p)
    assert p.profile_buttons.value == "search"
    assert repro.state().profile == "search"
    assert torch_flags() == before  # torch's flags, switched before the refusal, rolled back


# --- the panel follows the kernel -------------------------------------------------------


def test_follows_api_changes_at_once(panels: list[Panel]) -> None:
    p = new_panel(panels)
    repro.setup(99, "final")
    assert "seed 99 · profile final" in p.header.value
    assert p.profile_buttons.value == "final"
    assert p.seed_text.value == "99"
    assert "cudnn.deterministic</td><td><code>True" in p.settings.value


def test_follows_magics_and_cells(shell, panels: list[Panel]) -> None:
    p = new_panel(panels)
    shell.run_cell("%repro 11 --profile final")
    assert p.profile_buttons.value == "final"
    assert "seed 11" in p.header.value
    before = fingerprint_of(p, "Python random")
    shell.run_cell("import random; random.random()")
    assert fingerprint_of(p, "Python random") != before
    assert ">moved<" in p.sources.value


def test_a_cell_that_changes_torch_flags_directly_shows(shell, panels: list[Panel]) -> None:
    p = new_panel(panels)
    shell.run_cell("import torch; torch.backends.cudnn.benchmark = True")
    assert "cudnn.benchmark</td><td><code>True" in p.settings.value


def test_inside_a_cell_changes_draw_once_at_its_end(shell, panels: list[Panel]) -> None:
    p = new_panel(panels)
    draws = []
    original = p._draw
    p._draw = lambda *a: (draws.append(a), original(*a))  # type: ignore[method-assign]
    shell.run_cell("import repro\nfor i in range(50):\n    repro.seed(i)")
    assert len(draws) == 1
    assert "seed 49" in p.header.value


def test_nothing_changed_means_no_redraw(shell, panels: list[Panel]) -> None:
    repro.seed(1)
    p = new_panel(panels)
    assert p.refresh() is False
    shell.run_cell("x = 1 + 1")
    assert p.refresh() is False
    random.random()
    assert p.refresh() is True


def test_typing_a_seed_survives_a_cell(shell, panels: list[Panel]) -> None:
    repro.seed(1)
    p = new_panel(panels)
    p.seed_text.value = "77"
    shell.run_cell("import random; random.random()")
    assert p.seed_text.value == "77"


def test_several_panels_stay_in_sync(panels: list[Panel]) -> None:
    a, b = new_panel(panels), new_panel(panels)
    a.profile_buttons.value = "debug"
    assert b.profile_buttons.value == "debug"
    b.seed_text.value = "8"
    b.apply_button.click()
    assert "seed 8" in a.header.value
    assert a.seed_text.value == "8"


def test_close_unsubscribes(shell) -> None:
    p = repro.panel()
    repro.seed(4)
    assert "seed 4" in p.header.value  # it follows the kernel while open
    p.close()
    drawn = p.header.value
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a listener that failed would warn: none may be left
        repro.seed(5)
        shell.run_cell("x = 1")
    assert p.header.value == drawn  # a closed panel is not drawn on


def test_unload_detaches_every_panel(shell, panels: list[Panel]) -> None:
    new_panel(panels)
    new_panel(panels)
    shell.run_cell("%unload_ext repro")
    assert all(p.profile_buttons.disabled for p in panels)
    assert "unloaded" in panels[0].status.value
    drawn = panels[0].header.value
    repro.seed(9)
    shell.run_cell("y = 2")
    assert panels[0].header.value == drawn
    shell.run_cell("%load_ext repro")


def test_a_panel_without_load_ext_loads_the_extension_and_unload_detaches_it(
    panels: list[Panel],
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    if "repro" in shell.extension_manager.loaded:
        shell.run_cell("%unload_ext repro")
    assert shell.find_line_magic("repro") is None
    p = new_panel(panels)
    try:
        # Loaded as %load_ext loads it: the magics are there, and the panel follows the cells.
        assert "repro" in shell.extension_manager.loaded and shell.find_line_magic("repro")
        shell.run_cell("import random; random.seed(3)")
        assert "seed none" in p.header.value and "moved" not in p.sources.value
        shell.run_cell("%repro 5 -q")
        shell.run_cell("random.random()")
        assert "moved" in p.sources.value  # refreshed after a cell, not only on a change
        shell.run_cell("%unload_ext repro")
        assert "unloaded" in p.status.value and p.apply_button.disabled
    finally:
        shell.run_cell("%unload_ext repro")


def test_magic_returns_a_panel(shell, panels: list[Panel]) -> None:
    result = shell.run_cell("%repro panel")
    assert result.success
    assert isinstance(result.result, Panel)
    panels.append(result.result)


def test_an_error_while_refreshing_shows_in_the_panel(
    shell, panels: list[Panel], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = new_panel(panels)

    def broken() -> None:
        raise RuntimeError("snapshot failed")

    monkeypatch.setattr(panel_module, "state", broken)
    result = shell.run_cell("1 + 1")
    assert result.success
    assert "snapshot failed" in error_text(p)


# --- export ----------------------------------------------------------------------------


def test_export_without_a_bridge_shows_the_code(panels: list[Panel]) -> None:
    repro.setup(21, "final")
    p = new_panel(panels)
    assert p._bridge is None  # no kernel, no frontend: nothing could insert a cell
    p.export_button.click()
    assert "%repro export" in p.status.value
    code = re.search(r"<pre class='repro-code'>(.*)</pre>", p.code.value, re.S)
    assert code
    import html

    source = html.unescape(code.group(1))
    tree = ast.parse(source)
    config = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "config"
    )
    assert (config["seed"], config["profile"]) == (21, "final")


class FakeBridge:
    """Stands in for ipylab's frontend, which needs a browser (the browser tests use it)."""

    def __init__(self, ready: bool) -> None:
        self.ready = ready
        self.inserted: list[str] = []

    def insert_below(self, source: str) -> None:
        self.inserted.append(source)


def test_export_with_a_ready_bridge_inserts_the_cell(panels: list[Panel]) -> None:
    repro.setup(4, "debug")
    bridge = FakeBridge(ready=True)
    p = Panel(bridge=bridge)  # type: ignore[arg-type]
    panels.append(p)
    p.export_button.click()
    assert len(bridge.inserted) == 1
    ast.parse(bridge.inserted[0])
    assert "inserted below" in p.status.value
    assert p.code.value == ""


def test_export_with_a_bridge_that_never_answered_falls_back(panels: list[Panel]) -> None:
    bridge = FakeBridge(ready=False)
    p = Panel(bridge=bridge)  # type: ignore[arg-type]
    panels.append(p)
    p.export_button.click()
    assert bridge.inserted == []
    assert "repro-code" in p.code.value


def test_export_error_shows_in_the_panel(
    panels: list[Panel], monkeypatch: pytest.MonkeyPatch
) -> None:

    def broken(params: object = None) -> str:
        raise ValueError("cannot capture the environment")

    monkeypatch.setattr(_config, "config_cell", broken)
    p = new_panel(panels)
    p.export_button.click()
    assert "cannot capture the environment" in error_text(p)


# --- what a saved notebook and a terminal show -----------------------------------------------


def test_the_panels_bundle_keeps_a_static_view_and_a_whole_text(shell, panels: list[Panel]) -> None:
    repro.setup(4294967295, "final", deterministic_algorithms="warn")
    p = new_panel(panels)
    st = repro.state()
    data, _ = shell.display_formatter.format(p)
    # The widget, for a live frontend.
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == p.model_id
    # The text, whole: ipywidgets would cut it at 110 characters with an ellipsis.
    text = data["text/plain"]
    assert text.splitlines()[0] == f"repro panel: {st.summary()}" and "…" not in text
    assert all(len(line) <= 100 for line in text.splitlines())
    # The static HTML view: what the panel draws, from the same fragments.
    page = data["text/html"]
    assert p.sources.value in page and p.settings.value in page and p.header.value in page
    assert (p.warnings.value in page) and "run the cell for the live panel" in page


def test_warnings_show_code_as_code(panels: list[Panel]) -> None:
    repro.setup(1, "debug")
    p = new_panel(panels)
    st = repro.state()
    if st.hash_fixed:
        pytest.skip("this run's hashing is fixed: no warning holds code")
    assert "`" in " ".join(st.warnings)  # the text form marks code with backticks...
    assert "`" not in p.warnings.value and "<code>" in p.warnings.value  # ...the panel draws it


def test_the_hashing_fix_is_a_button_only_in_a_kernel_with_randomized_hashing(
    panels: list[Panel], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    import repro._state as state_module

    p = new_panel(panels)
    assert p.kernel_button.layout.display == "none"  # not a kernel: nothing to install
    monkeypatch.setattr(state_module, "process_kind", lambda: "kernel")
    monkeypatch.setattr(state_module, "hash_seed", lambda: None)
    p.refresh()
    assert p.kernel_button.layout.display is None
    assert "%repro kernel install" in p.warnings.value
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    before = repro.state()
    p.kernel_button.click()
    spec = KernelSpecManager().get_kernel_spec("repro")
    assert spec.env["PYTHONHASHSEED"] == "0" and str(tmp_path) in spec.resource_dir
    said = html.unescape(p.status.value)
    assert "installed the kernel 'Python 3 (repro, hash seed 0)'" in said
    assert "Change Kernel" in said and "repro-error" not in said
    assert repro.state() == before
