"""What decides whether a run repeats: versions, BLAS, threads, hashing, git, hardware.

:func:`environment` captures it, in process and in milliseconds, as plain data;
:func:`format_environment` writes it for people (``repro info``). Nothing here imports
a framework or initialises CUDA, and nothing reads an environment variable outside
:data:`repro._environ.RECORDED`, so tokens and keys in the environment never reach the output.
"""

from __future__ import annotations

import datetime
import math
import numbers
import os
import platform
import re
import subprocess
import sys
import urllib.parse
import warnings
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from repro import frameworks as _frameworks
from repro._environ import RECORDED
from repro._state import hash_text, state
from repro._version import __version__

__all__ = ["clean_remote", "environment", "format_environment", "hashing_text", "show"]

#: Bounds each git call: a huge or hung repository costs at most this, and the git
#: facts are then reported as unknown.
GIT_TIMEOUT_S = 10.0


# --- capture ----------------------------------------------------------------------


def environment(*, repository: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Everything that decides whether this kernel repeats a run, as plain (JSON-ready) data.

    Keys, in order: ``repro`` (version), ``captured`` (UTC, ISO 8601), ``seed``,
    ``profile``, ``overrides``, ``backend_flags`` (from :func:`repro.state`),
    ``hashing`` (is ``str`` hashing randomized, and the hash seed), ``python``,
    ``os``, ``frameworks`` (one entry per registered framework: version, whether
    imported, and what its adapter's ``describe()`` adds: CUDA, cuDNN, threads,
    default dtype, GPUs), ``blas`` and ``openmp`` (the loaded native thread pools,
    from threadpoolctl), ``environ`` (only :data:`repro._environ.RECORDED` that are
    set) and ``git`` (commit, branch, dirty, remote without credentials; ``None``
    outside a repository).

    ``repository`` is a directory inside the git repository to describe; by default
    the notebook's (``JPY_SESSION_NAME``'s folder, else the working directory).
    Never imports a framework, never initialises CUDA, and runs no subprocess
    but two bounded git calls. No path, host or user name
    is included.
    """
    if repository is not None and not isinstance(repository, (str, os.PathLike)):
        raise TypeError(
            f"repository must be a path (str or os.PathLike), got {type(repository).__name__}"
        )
    if isinstance(repository, str) and "\0" in repository:
        raise ValueError("repository must be a path, got a string with a NUL character")
    now = state()
    return {
        "repro": __version__,
        "captured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": now.seed,
        "profile": now.profile,
        "overrides": _plain(dict(now.overrides)),
        "backend_flags": _plain(dict(now.settings)),
        "hashing": {"randomized": now.hash_seed is None, "seed": now.hash_seed},
        "python": {
            "implementation": platform.python_implementation(),
            "version": platform.python_version(),
        },
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "frameworks": _describe_frameworks(),
        **_thread_pools(),
        "environ": {name: os.environ[name] for name in RECORDED if name in os.environ},
        "git": _git(Path(repository) if repository is not None else _notebook_folder()),
    }


def _installed_version(module: str) -> str | None:
    """The version of the distribution that provides ``module`` (``sklearn``: scikit-learn)."""
    top = module.partition(".")[0]
    for name in (*_distributions().get(top, ()), top):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


@cache
def _distributions() -> dict[str, list[str]]:
    # Scans every installed distribution once (milliseconds): only asked for modules that
    # are not imported, whose version their adapter cannot give.
    return metadata.packages_distributions()


def _describe_frameworks() -> dict[str, Any]:
    described: dict[str, Any] = {}
    for fw in _frameworks.frameworks():
        if fw.module.partition(".")[0] in sys.stdlib_module_names:
            continue  # Python's own random: its version is the interpreter's
        if not fw.imported:
            described[fw.name] = {
                "version": _installed_version(fw.module),
                "imported": False,
                "note": "not imported",
            }
            continue
        try:
            facts = dict(fw.describe())
        except Exception as exc:  # a broken plugin must not hide the rest of the environment
            facts = {"error": f"describe() failed: {type(exc).__name__}"}
        version = facts.pop(fw.name, None) or _installed_version(fw.module)
        described[fw.name] = _plain({"version": version, "imported": True, **facts})
    return described


def _library_owner(filepath: str) -> str:
    """The package that ships a native library (``numpy``, ``torch``), or ``system``."""
    parts = Path(filepath).parts
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages") and i + 2 < len(parts):
            return re.sub(r"\.libs$", "", parts[i + 1])
    return "system"


def _thread_pools() -> dict[str, list[dict[str, Any]]]:
    """The BLAS and OpenMP libraries loaded in this process, with version and threads.

    Only what is already loaded: a library is described, never imported. File
    paths are reduced to the owning package, so no home directory shows.
    """
    from threadpoolctl import threadpool_info

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # threadpoolctl warns about mixed OpenMP runtimes
        pools = threadpool_info()
    found: dict[str, list[dict[str, Any]]] = {"blas": [], "openmp": []}
    for pool in pools:
        kind = pool.get("user_api")
        if kind not in found:
            continue
        entry = {
            "package": _library_owner(pool.get("filepath") or ""),
            "library": pool.get("internal_api"),
            "version": pool.get("version"),
            "threads": pool.get("num_threads"),
        }
        if kind == "blas":
            entry["threading_layer"] = pool.get("threading_layer")
            entry["architecture"] = pool.get("architecture")
        found[kind].append(_plain(entry))
    return found


def _notebook_folder() -> Path:
    # Jupyter Server (2.x) tells the kernel its notebook's path; the working directory
    # is the notebook's folder too unless the user changed it.
    notebook = os.environ.get("JPY_SESSION_NAME", "")
    if os.path.isabs(notebook) and os.path.exists(notebook):
        return Path(notebook).parent
    return Path.cwd()


def _git(start: Path) -> dict[str, Any] | None:
    """The repository around ``start``: commit, branch, dirty, remote. ``None`` if there is none.

    Asks git itself, twice, each call bounded by :data:`GIT_TIMEOUT_S` and taking no
    lock: ``git status --porcelain=v2 --branch`` (commit, branch and whether tracked
    files changed; untracked files do not count, as in ``git describe --dirty``) and
    ``git config --get-regexp`` for the remotes.
    """
    status = _run_git(start, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        if not any((folder / ".git").exists() for folder in (start, *start.resolve().parents)):
            return None
        return {
            "commit": None,
            "branch": None,
            "dirty": None,
            "remote": None,
            "note": "unknown: git is not installed, failed or took too long",
        }
    if status is False:
        return None  # not a repository
    info: dict[str, Any] = {"commit": None, "branch": None, "dirty": False, "remote": None}
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ")
            info["commit"] = None if oid == "(initial)" else oid  # an unborn branch: no commit
        elif line.startswith("# branch.head "):
            head = line.removeprefix("# branch.head ")
            info["branch"] = None if head == "(detached)" else head
        elif not line.startswith("#"):
            info["dirty"] = True
    remotes = _run_git(start, "config", "--get-regexp", r"^remote\..*\.url$") or ""
    urls = dict(line.split(" ", 1) for line in remotes.splitlines() if " " in line)
    url = urls.get("remote.origin.url") or next(iter(urls.values()), None)
    info["remote"] = None if url is None else clean_remote(url)
    return info


def _run_git(folder: Path, *args: str) -> str | bool | None:
    """git's output; ``False`` if git said no (not a repository, no match); ``None`` if it
    could not run (not installed, failed to start, too slow)."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_TIMEOUT_S,
            # Optional locks off: describing must not take index.lock from a concurrent git.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else False


def clean_remote(url: str) -> str:
    """``url`` without user, password, token, query or fragment; a home folder becomes ``~``.

    ``https://user:ghp_x@github.com/o/r.git?t=1`` -> ``https://github.com/o/r.git``;
    ``git@github.com:o/r.git`` stays (``git`` is the service's user, not a person's).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
    scp = re.fullmatch(r"(?:([^@/:]+)@)?([^@/:]{2,}):(.*)", url)
    if scp and not parts.scheme.startswith("file"):
        user, host, path = scp.groups()
        return f"{'git@' if user == 'git' else ''}{host}:{path}"
    path = parts.path if parts.scheme == "file" else url
    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home.rstrip("/") + "/")):
        path = "~" + path[len(home.rstrip("/")) :]
    return path


def _plain(value: Any) -> Any:
    """``value`` with anything that is not a literal (a dtype, a path) turned into its ``str``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


# --- text for people ----------------------------------------------------------------


def show(value: Any) -> str:
    """A value of :func:`environment`'s dict for people: ``none``, lists and dicts inline."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(map(show, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {show(v)}" for k, v in value.items()) or "none"
    return str(value)


def hashing_text(hashing: Any) -> str:
    """:func:`environment`'s ``hashing`` entry in the words the state uses (``unknown`` if
    a recorded config lacks it)."""
    if not isinstance(hashing, dict):
        return "unknown"
    return hash_text(None if hashing.get("randomized") else hashing.get("seed"))


def format_environment(env: dict[str, Any]) -> str:
    """:func:`environment`'s dict as aligned text for people (``repro info``)."""
    rows: list[tuple[str, str]] = []
    python, system = env.get("python", {}), env.get("os", {})
    rows.append(("repro", f"{env.get('repro')} · captured {env.get('captured')}"))
    rows.append(("python", f"{python.get('implementation')} {python.get('version')}"))
    rows.append(("os", f"{system.get('system')} {system.get('release')} {system.get('machine')}"))
    rows.append(("seed", show(env.get("seed"))))
    profile = show(env.get("profile"))
    if env.get("overrides"):
        profile += f" ({show(env['overrides'])})"
    rows.append(("profile", profile))
    rows.append(("str hashing", hashing_text(env.get("hashing"))))
    for name, facts in env.get("frameworks", {}).items():
        status = "" if facts.get("imported") else " (not imported)"
        rows.append((name, f"{facts.get('version')}{status}"))
        for key, value in facts.items():
            if key not in ("version", "imported", "note"):
                rows.append((f"  {key}", show(value)))
    for kind in ("blas", "openmp"):
        for pool in env.get(kind, []):
            details = [pool.get("library"), pool.get("version"), f"{pool.get('threads')} threads"]
            details += [pool.get("threading_layer"), pool.get("architecture")]
            shown = " · ".join(str(d) for d in details if d is not None)
            rows.append(
                (f"{kind.upper() if kind == 'blas' else 'OpenMP'} ({pool.get('package')})", shown)
            )
    for flag, value in env.get("backend_flags", {}).items():
        rows.append((f"  {flag}", show(value)))
    for name, value in env.get("environ", {}).items():
        rows.append((name, value))
    git = env.get("git")
    if git:
        dirty = {True: "dirty", False: "clean", None: "dirty unknown"}[git.get("dirty")]
        rows.append(("git", f"{git.get('commit')} ({git.get('branch') or 'detached'}, {dirty})"))
        if git.get("remote"):
            rows.append(("  remote", git["remote"]))
    else:
        rows.append(("git", "not in a repository"))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
