"""A real Jupyter server (JupyterLab 4 and Notebook 7) and Debian's Chromium driven by Playwright.

One server per test session serves both frontends (``jupyter lab`` loads the
``notebook`` server extension too): ``/lab/...`` is JupyterLab, ``/notebooks/...``
is Notebook 7. It runs on a free loopback port, with no token, from a temporary
root, and with temporary Jupyter/IPython config, data, runtime and workspace
folders, so nothing from this machine's own setup leaks in. Its kernel is this
Python: jupyter_client starts the ``python3`` kernelspec's ``python`` as the
server's ``sys.executable``, and the tests check it.

Browser tests are skipped (not failed) only where Chromium or Playwright is missing, and
only outside CI: with ``REPRO_REQUIRE_BROWSER=1`` or ``CI=true`` a missing one fails them.
They never skip for time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Generous: on a busy 2-core machine one JupyterLab page load has taken 14 minutes.
SERVER_START_S = 600
PAGE_TIMEOUT_MS = 1_200_000

#: The server's settings, written to its own (temporary) config folder.
SERVER_CONFIG = {
    "ServerApp": {
        "ip": "127.0.0.1",
        "port_retries": 0,
        "open_browser": False,
        "allow_root": True,
        "password": "",
        "disable_check_xsrf": True,
        # Only what the tests use: no language servers to scan for, no terminals.
        "jpserver_extensions": {"jupyter_lsp": False, "jupyter_server_terminals": False},
    },
    "IdentityProvider": {"token": ""},
    "LabApp": {
        # window.jupyterapp: the tests read cells and run them through its commands.
        "expose_app_in_browser": True,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        # No news feed (this machine has no internet), and so no question about it in a toast.
        "news_url": None,
        "extension_manager": "readonly",
    },
    "JupyterNotebookApp": {"expose_app_in_browser": True},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder drives a browser; they run after all the others."""
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(item.fspath).parents]
    for item in ours:
        item.add_marker(pytest.mark.browser)
    items[:] = [item for item in items if item not in ours] + ours


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running Jupyter server: where it listens and where its notebooks live."""

    url: str
    root: Path
    log: Path
    settings: Path

    def set_user_setting(self, plugin: str, values: dict[str, object]) -> None:
        """Write the user's settings for ``plugin`` (``@jupyterlab/apputils-extension:themes``).

        Both frontends read them when a page opens; a page already open keeps its own.
        """
        package, _, name = plugin.rpartition(":")
        folder = self.settings / package
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(values))

    def kernel_ids(self, path: str) -> list[str]:
        """The ids of the kernels that the server's sessions for notebook ``path`` hold."""
        with urllib.request.urlopen(f"{self.url}api/sessions", timeout=30) as response:
            sessions = json.load(response)
        return [s["kernel"]["id"] for s in sessions if s["path"] == path and s.get("kernel")]

    def write_notebook(self, name: str, sources: list[str]) -> Path:
        """Write ``name`` (an .ipynb) into the server's root with one code cell per source."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        path = self.root / name
        nbformat.write(nb, path)
        return path


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}api/status", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)  # polling a real condition (the server answering), not a fixed wait
    raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_S}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """JupyterLab 4 + Notebook 7 on a free loopback port, isolated from this machine's setup."""
    home = tmp_path_factory.mktemp("jupyter")
    root = home / "root"
    root.mkdir()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
    }
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    config = home / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
    port = _free_port()
    log = home / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        f"--port={port}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    server = Server(url, root, log, settings=home / "settings")
    server.set_user_setting("@jupyterlab/apputils-extension:notification", {"fetchNews": "false"})
    try:
        _wait_until_up(url, proc, log)
        yield server
    finally:
        _shutdown(url, proc)


def _shutdown(url: str, proc: subprocess.Popen[bytes]) -> None:
    # Ask politely first so the kernels are shut down, then make sure the process is gone.
    try:
        request = urllib.request.Request(f"{url}api/shutdown", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=10).close()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


#: Set (to 1) where the browser tests must run, as in ``.ci/run``: a missing Chromium or
#: Playwright then fails them instead of skipping them. ``CI=true`` (set by most CI
#: services) means the same.
REQUIRE_ENV = "REPRO_REQUIRE_BROWSER"


def browser_required() -> bool:
    """Whether a browser test that cannot run must fail (CI) rather than skip."""
    return os.environ.get(REQUIRE_ENV) == "1" or os.environ.get("CI", "").lower() == "true"


def _missing(what: str) -> None:
    if browser_required():
        pytest.fail(f"{what}, and in CI ({REQUIRE_ENV}=1 or CI=true) the browser tests must run")
    pytest.skip(what)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, through Playwright's sync API."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _missing("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page (own context) with generous timeouts; a screenshot is kept if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    pg = context.new_page()
    errors: list[tuple[str, str]] = []  # (message, stack) of each uncaught error in the page
    pg.on("pageerror", lambda exc: errors.append((exc.message, exc.stack or "")))
    pg.page_errors = errors  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    pg.artifacts = ARTIFACTS  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            pg.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
        if errors:
            stacks = "\n\n".join(stack or message for message, stack in errors)
            (ARTIFACTS / f"page-errors-{request.node.name}.txt").write_text(stacks)
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so the page fixture knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def read_notebook(path: Path) -> dict:
    """The saved notebook as JSON."""
    return json.loads(path.read_text())
