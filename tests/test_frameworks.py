"""The adapter registry: entry-point plugins, and the extension without torch installed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.helpers import run_python

PLUGIN = '''
import random as _random

from repro.frameworks import Framework, fingerprint


class Toy(Framework):
    """A plugin's own generator, found through the repro.frameworks entry-point group."""

    name, module, label = "toy", "toylib", "toy RNG"

    def seed(self, seed):
        import toylib
        toylib.rng.seed(seed)

    def get_state(self):
        import toylib
        return toylib.rng.getstate()

    def set_state(self, state):
        import toylib
        toylib.rng.setstate(state)

    def reset(self):
        import toylib
        toylib.rng.seed()

    def fingerprints(self):
        import toylib
        return {self.label: fingerprint(repr(toylib.rng.getstate()).encode())}
'''


def test_entry_point_plugin_is_seeded_scoped_and_shown(tmp_path: Path) -> None:
    (tmp_path / "toy_repro.py").write_text(PLUGIN)
    (tmp_path / "toylib.py").write_text("import random\nrng = random.Random()\n")
    dist = tmp_path / "toy_repro-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-repro\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[repro.frameworks]\ntoy = toy_repro:Toy\n")
    out = run_python(
        f"""
        import sys, json
        sys.path.insert(0, {str(tmp_path)!r})
        import repro
        repro.seed(42)                      # toylib is not imported yet: seeded at its import
        import toylib, random
        first = toylib.rng.random()
        expected = random.Random(42).random()
        with repro.scope(7):
            toylib.rng.random()
        after = toylib.rng.random()
        repro.seed(42); toylib.rng.random(); again = toylib.rng.random()
        streams = [s.stream for s in repro.state().sources]
        print(json.dumps([first == expected, after == again, streams]))
        """
    )
    same_first, restored, streams = json.loads(out)
    assert same_first and restored
    assert "toy RNG" in streams


def test_works_without_torch_installed() -> None:
    # A finder that refuses torch is what a NumPy-only install looks like to Python.
    out = run_python(
        textwrap.dedent(
            """
            import sys, json
            class NoTorch:
                def find_spec(self, name, path=None, target=None):
                    if name == "torch" or name.startswith("torch."):
                        raise ModuleNotFoundError("No module named 'torch'", name="torch")
            sys.meta_path.insert(0, NoTorch())
            from IPython.core.interactiveshell import InteractiveShell
            import numpy as np, random
            shell = InteractiveShell.instance()
            ok = [shell.run_cell(c).success for c in (
                "%load_ext repro", "%repro 42 --deterministic", "%repro",
                "%%repro 1 -p production\\nx = 1", "%repro profiles")]
            import repro
            got = [random.random(), float(np.random.rand())]
            random.seed(42); np.random.seed(42)
            want = [random.random(), float(np.random.rand())]
            r = repro.rng("x").random()
            with repro.scope(3, "final"):
                pass
            try:
                import torch
                torch_ok = True
            except ModuleNotFoundError:
                torch_ok = False
            print(json.dumps([ok, got == want, repro.state().profile, torch_ok]))
            """
        )
    )
    ok, same, profile, torch_importable = json.loads(out.strip().splitlines()[-1])
    assert ok == [True] * 5
    assert same and profile == "debug" and not torch_importable


def test_a_plugin_finds_repro_warning_where_it_always_did() -> None:
    import warnings

    import repro
    from repro.frameworks.base import ReproWarning

    assert ReproWarning is repro.ReproWarning and issubclass(ReproWarning, UserWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repro.rng()  # no session seed: repro warns with its own category
    assert [w.category for w in caught] == [ReproWarning]
