"""The adapter registry: entry-point plugins, and the extension without torch installed."""

from __future__ import annotations

import compileall
import json
import os
import shutil
import textwrap
import time
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


def _plugin_site(root: Path, *plugins: str) -> Path:
    """A sys.path directory holding toy_repro and one dist-info per plugin name."""
    site = root / "site"
    site.mkdir(exist_ok=True)
    (site / "toy_repro.py").write_text(PLUGIN + "\n\nclass Toy2(Toy):\n    name = 'toy2'\n")
    (site / "toylib.py").write_text("import random\nrng = random.Random()\n")
    for plugin in plugins:
        dist = site / f"{plugin}_repro-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {plugin}-repro\nVersion: 1.0\n"
        )
        cls = "Toy" if plugin == "toy" else "Toy2"
        (dist / "entry_points.txt").write_text(f"[repro.frameworks]\n{plugin} = toy_repro:{cls}\n")
    # Byte-compiled now, as an installer does: an interpreter that writes bytecode would
    # otherwise create site/__pycache__ at the first import, a change of the directory that
    # rightly makes the next process scan again (CI writes bytecode; this shell may not).
    compileall.compile_dir(site, quiet=1, force=True)
    return site


def _settle(site: Path) -> None:
    """Date the directory a minute back, as a package installed earlier left it."""
    past = time.time() - 60
    os.utime(site, (past, past))


def _registered(
    site: Path, cache: Path, kept: bool = False, cwd: Path | None = None
) -> tuple[list[str], int]:
    """The plugins a fresh process registers, and how often it scanned the distributions.

    The child leaves the working directory off ``sys.path``: other test processes write
    there, and a ``sys.path`` directory changed within the settling time rightly makes the
    cache scan again. With ``kept``, a scan is tried again (up to 3 times, past the settling
    time) when some other ``sys.path`` entry changed meanwhile (a concurrent test's bytecode).
    With ``cwd``, the child works in that folder and has it first on ``sys.path``, as a kernel.
    """
    first = [str(cwd)] if cwd is not None else []
    for _ in range(3 if kept else 1):
        out = run_python(
            f"""
            import json, os, sys
            {f"os.chdir({str(cwd)!r})" if cwd is not None else ""}
            sys.path[:] = {first!r} + [{str(site)!r}] + [
                p for p in sys.path if p not in ("", os.getcwd(), {str(Path.cwd())!r})
            ]
            from repro.frameworks import _plugins
            scans, scan = [], _plugins._scan
            _plugins._scan = lambda group: scans.append(group) or scan(group)
            import repro.frameworks
            names = [fw.name for fw in repro.frameworks.frameworks()]
            print(json.dumps([sorted(n for n in names if n.startswith("toy")), len(scans)]))
            """,
            env={"XDG_CACHE_HOME": str(cache)},
        )
        names, scans = json.loads(out)
        if not (kept and scans):
            break
        time.sleep(2.1)
    return names, scans


def test_plugins_are_read_once_until_a_package_is_installed_or_removed(tmp_path: Path) -> None:
    site, cache = _plugin_site(tmp_path, "toy"), tmp_path / "cache"
    _settle(site)
    assert _registered(site, cache) == (["toy"], 1)
    assert _registered(site, cache, kept=True) == (["toy"], 0)  # kept: nothing read
    _plugin_site(tmp_path, "toy2")  # installed: its directory's time changes
    assert _registered(site, cache) == (["toy", "toy2"], 1)
    shutil.rmtree(site / "toy_repro-1.0.dist-info")  # removed
    _settle(site)
    assert _registered(site, cache) == (["toy2"], 1)
    assert _registered(site, cache, kept=True) == (["toy2"], 0)


def test_saving_a_notebook_in_the_working_directory_keeps_the_plugins_read(
    tmp_path: Path,
) -> None:
    # A kernel has its working directory on sys.path; every save of a notebook there changes
    # the directory's time, which says nothing about what is installed.
    site, cache, folder = _plugin_site(tmp_path, "toy"), tmp_path / "cache", tmp_path / "nb"
    folder.mkdir()
    _settle(site)
    _settle(folder)
    assert _registered(site, cache, cwd=folder) == (["toy"], 1)
    assert _registered(site, cache, cwd=folder, kept=True) == (["toy"], 0)
    (folder / "analysis.ipynb").write_text("{}")  # saved just now
    assert _registered(site, cache, cwd=folder) == (["toy"], 0)
    # A distribution's metadata in the working directory (a legacy develop install) counts.
    dist = folder / "toy2_repro-1.0.egg-info"
    dist.mkdir()
    (dist / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: toy2-repro\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[repro.frameworks]\ntoy2 = toy_repro:Toy2\n")
    assert _registered(site, cache, cwd=folder) == (["toy", "toy2"], 1)


def test_plugins_are_not_kept_from_a_directory_changed_just_now(tmp_path: Path) -> None:
    # Within one tick of the file system's clock, a second change leaves the time as it was.
    site, cache = _plugin_site(tmp_path, "toy"), tmp_path / "cache"
    assert _registered(site, cache) == (["toy"], 1)
    assert _registered(site, cache) == (["toy"], 1)


def test_plugins_are_found_when_the_cache_cannot_be_written(tmp_path: Path) -> None:
    site = _plugin_site(tmp_path, "toy")
    _settle(site)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    assert _registered(site, blocked) == (["toy"], 1)
    assert _registered(site, blocked) == (["toy"], 1)


def test_numpy_state_read_as_memory_is_numpys_own() -> None:
    # The adapter copies the legacy generator's memory instead of get_state()/set_state();
    # what it saves, restores and fingerprints must be exactly what NumPy's calls give.
    import random

    import numpy as np

    from repro.frameworks.numpy import NumPyRandom

    fast, slow = NumPyRandom(), NumPyRandom()
    assert fast._fast() is not None
    slow._memory, slow._memory_for = None, np  # NumPy's own calls
    before = np.random.get_state()
    steps = random.Random(0)
    try:
        for _ in range(300):
            step = steps.randrange(5)
            if step == 0:
                np.random.seed(steps.randrange(2**32))
            elif step == 1:
                np.random.randn(steps.randrange(1, 4))  # odd counts leave a cached gaussian
            elif step == 2:
                np.random.rand(steps.randrange(1, 700))
            elif step == 3:  # a state set by hand: the cached gaussian alone differs
                name, key, pos, _, _ = np.random.get_state()
                np.random.set_state((name, key, pos, steps.randrange(2), steps.random()))
            saved, legacy = fast.get_state(), np.random.get_state()
            assert saved.legacy()[0] == legacy[0]
            assert (saved.legacy()[1] == legacy[1]).all()
            assert saved.legacy()[2:] == legacy[2:]
            assert fast.fingerprints() == slow.fingerprints()
            draws = np.random.randn(3)
            fast.set_state(saved)
            assert (np.random.randn(3) == draws).all()
            slow.set_state(saved)  # a saved copy restores through NumPy's calls too
            assert (np.random.randn(3) == draws).all()
    finally:
        np.random.set_state(before)


def test_numpy_state_falls_back_when_the_bit_generator_is_swapped() -> None:
    import numpy as np
    import pytest

    from repro.frameworks.numpy import NumPyRandom

    if not hasattr(np.random, "set_bit_generator"):
        pytest.skip("np.random.set_bit_generator is NumPy >= 1.25")
    fw = NumPyRandom()
    original = np.random.get_bit_generator()
    saved = fw.get_state()
    try:
        np.random.set_bit_generator(np.random.MT19937(3))
        assert fw._fast() is None
        fw.set_state(saved)  # through np.random.set_state
        np.random.set_bit_generator(original)
        assert fw._fast() is not None
        assert fw.get_state() == saved
    finally:
        np.random.set_bit_generator(original)
