"""Post-import hooks (repro._import_hooks): what seeds a framework at its import."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_python


def test_hooks_run_after_the_module_executed_and_leave_its_loader(tmp_path: Path) -> None:
    (tmp_path / "hooked.py").write_text("value = 1\n")
    package = tmp_path / "hookpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sub.py").write_text("value = 2\n")
    (tmp_path / "broken.py").write_text("raise RuntimeError('half imported')\n")
    out = run_python(
        f"""
        import importlib.machinery, json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from repro._import_hooks import when_imported
        seen = []
        when_imported("hooked", lambda m: seen.append(("hooked", m.value)))
        when_imported("hookpkg.sub", lambda m: seen.append(("sub", m.value)))
        when_imported("broken", lambda m: seen.append(("broken", None)))
        when_imported("json", lambda m: seen.append(("json", m is json)))  # already imported
        import hooked, hookpkg.sub
        import hooked  # again: no second call
        try:
            import broken
        except RuntimeError:
            pass
        loaders = [type(hooked.__loader__).__name__, type(hooked.__spec__.loader).__name__]
        print(json.dumps([seen, loaders, "broken" in sys.modules]))
        """
    )
    seen, loaders, broken_imported = json.loads(out)
    assert seen == [["json", True], ["hooked", 1], ["sub", 2]]
    assert loaders == ["SourceFileLoader", "SourceFileLoader"]
    assert not broken_imported


def test_a_hook_waits_through_a_failed_import(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(
        "import os\nif not os.environ.get('FLAKY_OK'):\n    raise ImportError('not yet')\n"
    )
    out = run_python(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from repro._import_hooks import when_imported
        seen = []
        when_imported("flaky", lambda m: seen.append(m.__name__))
        try:
            import flaky
        except ImportError:
            pass
        first = list(seen)
        os.environ["FLAKY_OK"] = "1"
        import flaky
        print(json.dumps([first, seen]))
        """
    )
    assert json.loads(out) == [[], ["flaky"]]
