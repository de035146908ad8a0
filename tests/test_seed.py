"""repro.seed: the same streams as the guide's recipe, strict input checking, deferred seeding."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch
from tests.helpers import guide_set_seed, run_python, streams

import repro


@pytest.mark.parametrize("value", [0, 42, 2**32 - 1, 123456789])
def test_streams_equal_the_guide_set_seed(value: int) -> None:
    guide_set_seed(value)
    expected = streams()
    assert repro.seed(value) == value
    assert streams() == expected


def test_streams_equal_lightning_seed_everything_recipe() -> None:
    # Lightning's seed_everything(s) is random.seed, np.random.seed, torch.manual_seed (+ cuda).
    import random

    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    expected = streams()
    repro.seed(7)
    assert streams() == expected


def test_torch_generator_is_left_as_torch_manual_seed_leaves_it() -> None:
    # On a torch without an accelerator (this machine) repro seeds the CPU generator
    # directly: its whole state and initial seed must equal torch.manual_seed's.
    torch.manual_seed(2**32 - 2)
    expected = (torch.get_rng_state(), torch.initial_seed())
    torch.rand(5)
    repro.seed(2**32 - 2)
    assert torch.equal(torch.get_rng_state(), expected[0])
    assert torch.initial_seed() == expected[1]


def test_numpy_integer_seed_is_accepted() -> None:
    assert repro.seed(np.int64(5)) == 5
    assert repro.state().seed == 5


def test_none_draws_a_fresh_seed_that_can_be_pinned() -> None:
    drawn = repro.seed()
    assert 0 <= drawn < 2**32
    first = streams()
    repro.seed(drawn)
    assert streams() == first


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (-1, ValueError),
        (2**32, ValueError),
        (2**40, ValueError),
        (True, TypeError),
        (1.0, TypeError),
        ("42", TypeError),
        ([42], TypeError),
    ],
)
def test_bad_seed_is_rejected_and_changes_nothing(bad: object, error: type) -> None:
    repro.seed(3)
    before = repro.state()
    env = os.environ.get("PYTHONHASHSEED")
    with pytest.raises(error, match=r"0 <= seed < 2\*\*32"):
        repro.seed(bad)  # type: ignore[arg-type]
    assert repro.state() == before
    assert os.environ.get("PYTHONHASHSEED") == env


def test_seed_exports_hash_seed_for_child_processes() -> None:
    repro.seed(1234)
    assert os.environ["PYTHONHASHSEED"] == "1234"
    assert os.environ["REPRO_SEED"] == "1234"


def test_hash_randomization_is_reported_honestly() -> None:
    # This test process did not start with PYTHONHASHSEED (pytest is run without it in CI);
    # setting it now must not make repro claim hashing is fixed.
    out = run_python(
        """
        import os, json
        os.environ["PYTHONHASHSEED"] = "0"   # the guide's make_reproducible does this
        import repro
        repro.seed(42)
        st = repro.state()
        warned = any("randomized" in w for w in st.warnings)
        print(json.dumps([st.hash_seed, st.hash_fixed, warned]))
        """,
        env={"PYTHONHASHSEED": "random"},
    )
    assert json.loads(out) == [None, False, True]
    out = run_python(
        "import repro, json; print(json.dumps([repro.hash_seed(), repro.state().hash_fixed]))",
        env={"PYTHONHASHSEED": "17"},
    )
    assert json.loads(out) == [17, True]


def test_import_and_seed_do_not_import_torch_or_widgets() -> None:
    out = run_python(
        """
        import sys, json
        from IPython.core.interactiveshell import InteractiveShell
        import repro
        shell = InteractiveShell.instance()
        shell.run_cell("%load_ext repro")
        shell.run_cell("%repro 42 --deterministic")
        shell.run_cell("%repro")
        print(json.dumps({m: m in sys.modules for m in ("torch", "ipywidgets", "numpy")}))
        """
    )
    assert json.loads(out.strip().splitlines()[-1]) == {
        "torch": False,
        "ipywidgets": False,
        "numpy": False,
    }


def test_loading_and_seeding_leave_the_notebook_host_and_asyncio_unimported() -> None:
    # The notebook host (asyncio, ssl, subprocess: about 20 ms and 4 MiB) is for `repro
    # verify NOTEBOOK` alone; figure (1) of benchmarks/run.py measures what this guards.
    out = run_python(
        """
        import sys, json
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        before = set(sys.modules)
        shell.run_cell("%load_ext repro")
        shell.run_cell("%repro 42 --deterministic")
        shell.run_cell("%%repro 1\\nx = 1")
        added = set(sys.modules) - before
        heavy = ("asyncio", "ssl", "repro._verify.notebook", "repro._verify.trace")
        print(json.dumps(sorted(m for m in added if m in heavy)))
        """
    )
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_inductor_gets_the_deterministic_mode_when_it_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What torch.use_deterministic_algorithms sets in torch._inductor.config, repro sets at
    # that module's import, through a post-import hook. Importing the real module costs
    # a minute on a CI machine, so the import is announced to the hooks (notify, what an
    # import calls) for a stand-in module of that name.
    import types

    from repro import _import_hooks
    from repro.frameworks import torch as adapter

    # Another test in this process may have imported the real module: hide it for this one.
    monkeypatch.delitem(sys.modules, "torch._inductor.config", raising=False)
    monkeypatch.setattr(adapter, "_inductor_hooked", False)  # a fresh hook for this test
    repro.use_profile("debug")
    config = types.ModuleType("torch._inductor.config")
    config.deterministic = False
    _import_hooks.notify(config)
    assert config.deterministic is True


def test_state_reads_without_importing_frameworks() -> None:
    out = run_python(
        """
        import sys, json, repro
        st = repro.state()
        print(json.dumps([st.seed, [s.imported for s in st.sources if s.framework == "torch"],
                          "torch" in sys.modules]))
        """
    )
    assert json.loads(out) == [None, [False], False]
