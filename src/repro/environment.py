"""What a reviewer needs to rerun a notebook: the environment, and the exported config cell.

:func:`environment` captures, in process and in milliseconds, the versions, backend
flags, thread pools, hashing and git commit that decide whether a run repeats.
:func:`config_cell` writes them, with the seed, profile and the user's own
parameters, as one literal dict in a notebook cell; running that cell calls
:func:`apply_config`, which re-applies the seed and profile and reports, one line
each, what differs from the recorded environment. :func:`check` compares again later.

Nothing here imports a framework or initialises CUDA, and nothing reads an
environment variable outside :data:`ENVIRONMENT_VARIABLES`, so tokens and keys
in the environment never reach the output.
"""

from __future__ import annotations

import copy
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
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from repro import frameworks as _frameworks
from repro import session as _session
from repro.profiles import get_profile
from repro.state import state

__all__ = [
    "CONFIG_KEYS",
    "ENVIRONMENT_VARIABLES",
    "apply_config",
    "check",
    "clean_remote",
    "config_cell",
    "environment",
    "format_environment",
]

#: The only environment variables ever read into the output: those that change results.
ENVIRONMENT_VARIABLES = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    *(name for name in _session.ENV_VARS if name.startswith("REPRO_")),
)

#: The keys of a config dict, in the order the cell writes them.
CONFIG_KEYS = ("seed", "profile", "settings", "params", "environment")

#: Bounds the one subprocess (``git status`` for dirtiness): a huge or hung repository
#: costs at most this, and dirtiness is then reported as unknown.
GIT_TIMEOUT_S = 10.0

# Environment variables that change numerical results (the others change speed or devices).
_RESULT_VARIABLES = frozenset(
    {"CUBLAS_WORKSPACE_CONFIG", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"}
)
# repro writes these itself on every seed; the hash seed the process started with is what counts.
_DERIVED_VARIABLES = frozenset({"PYTHONHASHSEED", *_session.ENV_VARS} - {"CUBLAS_WORKSPACE_CONFIG"})
# Backend flags read for information only: hardware facts, or the cuDNN version reported twice.
_INFORMATIONAL_FLAGS = frozenset({"cudnn_available", "cudnn_version", "cuda_initialized"})
# Keys of the environment that are the session's, written at the top of a config instead.
_SESSION_KEYS = ("seed", "profile", "overrides")


# --- capture ----------------------------------------------------------------------


def environment(*, repository: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Everything that decides whether this kernel repeats a run, as plain (JSON-ready) data.

    Keys, in order: ``repro`` (version), ``captured`` (UTC, ISO 8601), ``seed``,
    ``profile``, ``overrides``, ``backend_flags`` (from :func:`repro.state`),
    ``hashing`` (is ``str`` hashing randomized, and the hash seed), ``python``,
    ``os``, ``frameworks`` (one entry per registered framework: version, whether
    imported, and what its adapter's ``describe()`` adds: CUDA, cuDNN, threads,
    default dtype, GPUs), ``blas`` and ``openmp`` (the loaded native thread pools,
    from threadpoolctl), ``environ`` (only :data:`ENVIRONMENT_VARIABLES` that are
    set) and ``git`` (commit, branch, dirty, remote without credentials; ``None``
    outside a repository).

    ``repository`` is a directory inside the git repository to describe; by default
    the notebook's (``JPY_SESSION_NAME``'s folder, else the working directory).
    Never imports a framework, never initialises CUDA, and runs no subprocess
    except one bounded ``git status`` for dirtiness. No path, host or user name
    is included.
    """
    import repro

    snapshot = state()
    return {
        "repro": repro.__version__,
        "captured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": snapshot.seed,
        "profile": snapshot.profile,
        "overrides": _plain(dict(snapshot.overrides)),
        "backend_flags": _plain(dict(snapshot.settings)),
        "hashing": {"randomized": snapshot.hash_seed is None, "seed": snapshot.hash_seed},
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
        "environ": {name: os.environ[name] for name in ENVIRONMENT_VARIABLES if name in os.environ},
        "git": _git(Path(repository) if repository is not None else _notebook_folder()),
    }


def _installed_version(module: str) -> str | None:
    # The distribution is usually named like the top-level module (numpy, torch, jax).
    try:
        return metadata.version(module.partition(".")[0])
    except metadata.PackageNotFoundError:
        return None


def _torch_runtime() -> dict[str, Any]:
    """What torch's adapter does not describe yet: threads, default dtype and the GPUs.

    GPU names and compute capability are read only where CUDA is already
    initialised: reading them would otherwise start CUDA in the user's kernel.
    """
    torch = sys.modules["torch"]
    facts: dict[str, Any] = {
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "default_dtype": str(torch.get_default_dtype()).removeprefix("torch."),
        "cuda_available": bool(torch.cuda.is_available()),
    }
    if torch.cuda.is_initialized():
        facts["gpus"] = [
            {
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
            }
            for props in map(torch.cuda.get_device_properties, range(torch.cuda.device_count()))
        ]
    elif facts["cuda_available"]:
        facts["gpu_count"] = torch.cuda.device_count()
        facts["gpus"] = (
            "not read: CUDA is not initialised in this kernel, and repro does not start it "
            "to describe it"
        )
    return facts


# Facts an adapter's describe() does not give yet, by framework name (merged under describe()).
_RUNTIME: dict[str, Callable[[], dict[str, Any]]] = {"torch": _torch_runtime}


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
            extra = _RUNTIME.get(fw.name)
            if extra is not None:
                facts = {**extra(), **facts}
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

    HEAD, refs, packed-refs and config are read directly; only dirtiness needs git
    itself (one ``git status`` bounded by :data:`GIT_TIMEOUT_S`, taking no lock).
    """
    found = _find_repository(start)
    if found is None:
        return None
    worktree, git_dir = found
    # A linked worktree keeps its own HEAD but shares refs and config with the main one.
    shared = _read(git_dir / "commondir").strip()
    common = (git_dir / shared).resolve() if shared else git_dir
    head = _read(git_dir / "HEAD").strip()
    branch = None
    commit: str | None = head or None
    if head.startswith("ref:"):
        ref = head[4:].strip()
        branch = ref.removeprefix("refs/heads/")
        commit = _resolve_ref(git_dir, common, ref)
    dirty = _dirty(worktree)
    info: dict[str, Any] = {
        "commit": commit,
        "branch": branch,
        "dirty": dirty,
        "remote": _remote(common / "config"),
    }
    if dirty is None:
        info["dirty_note"] = "unknown: git is not installed, failed or took too long"
    return info


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _find_repository(start: Path) -> tuple[Path, Path] | None:
    """(work tree, git dir) of the repository containing ``start``; worktrees and submodules too."""
    start = start.resolve()
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return folder, dot_git
        if dot_git.is_file():
            text = _read(dot_git).strip()
            if text.startswith("gitdir:"):
                return folder, (folder / text[7:].strip()).resolve()
    return None


def _resolve_ref(git_dir: Path, common: Path, ref: str) -> str | None:
    for base in (git_dir, common):
        value = _read(base / ref).strip()
        if re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", value):
            return value
    for line in _read(common / "packed-refs").splitlines():
        sha, _, name = line.partition(" ")
        if name.strip() == ref:
            return sha
    return None  # an unborn branch: no commit yet


def _dirty(worktree: Path) -> bool | None:
    """Whether tracked files differ from HEAD.

    Untracked files do not count, as in ``git describe --dirty``.
    """
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=worktree,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            # Optional locks off: describing must not take index.lock from a concurrent git.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return bool(done.stdout.strip())


def _remote(config: Path) -> str | None:
    """The ``origin`` remote's URL (else the first remote's), without credentials."""
    remotes: dict[str, str] = {}
    section = None
    for raw in _read(config).splitlines():
        line = raw.strip()
        header = re.fullmatch(r'\[\s*remote\s+"(.*)"\s*\]', line)
        if header:
            section = header.group(1)
        elif line.startswith("["):
            section = None
        elif section is not None and section not in remotes:
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == "url":
                remotes[section] = value.strip().strip('"')
    url = remotes.get("origin") or next(iter(remotes.values()), None)
    return None if url is None else clean_remote(url)


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


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(map(_show, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items()) or "none"
    return str(value)


def _hashing_text(hashing: Any) -> str:
    if not isinstance(hashing, dict):
        return "unknown"
    if hashing.get("randomized"):
        return "randomized"
    return f"fixed (PYTHONHASHSEED={hashing.get('seed')})"


def format_environment(env: dict[str, Any]) -> str:
    """:func:`environment`'s dict as aligned text for people (``repro info``)."""
    rows: list[tuple[str, str]] = []
    python, system = env.get("python", {}), env.get("os", {})
    rows.append(("repro", f"{env.get('repro')} · captured {env.get('captured')}"))
    rows.append(("python", f"{python.get('implementation')} {python.get('version')}"))
    rows.append(("os", f"{system.get('system')} {system.get('release')} {system.get('machine')}"))
    rows.append(("seed", _show(env.get("seed"))))
    profile = _show(env.get("profile"))
    if env.get("overrides"):
        profile += f" ({_show(env['overrides'])})"
    rows.append(("profile", profile))
    rows.append(("str hashing", _hashing_text(env.get("hashing"))))
    for name, facts in env.get("frameworks", {}).items():
        status = "" if facts.get("imported") else " (not imported)"
        rows.append((name, f"{facts.get('version')}{status}"))
        for key, value in facts.items():
            if key not in ("version", "imported", "note"):
                rows.append((f"  {key}", _show(value)))
    for kind in ("blas", "openmp"):
        for pool in env.get(kind, []):
            details = [pool.get("library"), pool.get("version"), f"{pool.get('threads')} threads"]
            details += [pool.get("threading_layer"), pool.get("architecture")]
            shown = " · ".join(str(d) for d in details if d is not None)
            rows.append(
                (f"{kind.upper() if kind == 'blas' else 'OpenMP'} ({pool.get('package')})", shown)
            )
    for flag, value in env.get("backend_flags", {}).items():
        rows.append((f"  {flag}", _show(value)))
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


# --- the config cell ----------------------------------------------------------------


def config_cell(params: dict[str, Any] | None = None) -> str:
    """The source of a notebook cell that records this run and re-applies it.

    A comment header (what it is, when and by which repro it was exported), one
    literal dict ``config`` with the keys of :data:`CONFIG_KEYS` (``seed``,
    ``profile``, ``settings``: the backend flags of the profile as applied,
    ``params``: the user's own, e.g. ``{"model": "ResNet18", "lr": 0.001}``, and
    ``environment``: :func:`environment` without the session's keys), then
    ``import repro`` and ``differences = repro.apply_config(config)`` (which prints
    them; assigned, so a notebook does not show the list a second time).

    The source is valid Python whatever the values, already as ``ruff format``
    leaves it, and ``ast.literal_eval`` reads the dict. ``params`` values must be
    literals (str, int, float, bool, None, and lists, tuples and dicts of them):
    anything else is a ``TypeError``, and NaN or infinity a ``ValueError``, since
    neither survives as a literal. The cell ends without a newline, like a cell.
    """
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of name -> value, got {type(params).__name__}")
    for name in params:
        if not isinstance(name, str):
            raise TypeError(f"param names must be strings, got {name!r}")
    _literal(params, 0, "params")  # the error names the param, e.g. params['lr'] is nan
    session = _session.current()
    env = environment()
    config = {
        "seed": session.seed,
        "profile": session.profile,
        "settings": session.settings.as_dict() if session.settings is not None else {},
        "params": params,
        "environment": {k: v for k, v in env.items() if k not in _SESSION_KEYS},
    }
    body = _literal(config, 0, "config")
    header = [
        "# repro config: the seed, profile, backend flags, parameters and environment of a run,",
        f"# exported {env['captured']} by repro {env['repro']}. Running this cell seeds, applies",
        "# the profile and prints how this kernel differs (repro.apply_config(config, strict=True)",
        "# raises instead). The dict is plain data: nothing in it is executed.",
    ]
    return "\n".join(
        [
            *header,
            "import repro",
            "",
            f"config = {body}",
            "differences = repro.apply_config(config)",
        ]
    )


_INDENT = "    "
_LINE_LENGTH = 88


def _literal(
    value: Any, depth: int, where: str, column: int = 0, _seen: frozenset[int] = frozenset()
) -> str:
    """``value`` as Python source that ``ast.literal_eval`` reads back and ``ruff format`` keeps.

    Collections are written one item a line with a trailing comma, which ruff keeps
    expanded whatever the line length; strings use ruff's quote choice. ``column``
    is where the value starts on its line (a one-item tuple stays on one line if it fits).
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return int.__repr__(int(value))  # an IntEnum or numpy integer as a plain int
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(
                f"{where} is {number}, which is not a Python literal; store it as a string "
                f"({str(number)!r}) or leave it out"
            )
        # ruff writes exponents without a plus sign: 1e16, not 1e+16
        return float.__repr__(number).replace("e+", "e")
    if isinstance(value, str):
        return _string(str.__str__(value))
    if isinstance(value, (list, tuple, dict)):
        if id(value) in _seen:
            raise ValueError(f"{where} contains itself")
        seen = _seen | {id(value)}
        inner = _INDENT * (depth + 1)
        if isinstance(value, dict):
            open_, close = "{", "}"
            items = []
            for key, item in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(f"{where} has a key {key!r}: config keys are str or int")
                name = _literal(key, depth + 1, where)
                start = len(inner) + len(name) + 2
                items.append(
                    f"{name}: {_literal(item, depth + 1, f'{where}[{key!r}]', start, seen)}"
                )
        else:
            open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
            items = [
                _literal(item, depth + 1, f"{where}[{i}]", len(inner), seen)
                for i, item in enumerate(value)
            ]
        if not items:
            return open_ + close
        # A one-item tuple's comma is not a "magic" trailing comma: ruff joins it onto
        # one line when it fits (ruff's default line length, 88, counting the comma after it).
        if isinstance(value, tuple) and len(items) == 1 and "\n" not in items[0]:
            single = f"({items[0]},)"
            if column + len(single) + 1 <= _LINE_LENGTH:
                return single
        lines = "".join(f"{inner}{item},\n" for item in items)
        return f"{open_}\n{lines}{_INDENT * depth}{close}"
    raise TypeError(
        f"{where} is a {type(value).__name__}; a config holds only literals "
        "(str, int, float, bool, None, and lists, tuples and dicts of them)"
    )


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(text: str) -> str:
    # ruff's choice: double quotes, unless the text holds more double than single quotes.
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == quote:
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:  # control characters, line separators, lone surrogates: escaped, never raw
            code = ord(char)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return quote + "".join(out) + quote


# --- applying and comparing ---------------------------------------------------------


@dataclass(frozen=True)
class _Fact:
    label: str
    value: Any
    affects_results: bool
    #: recorded but absent here is a difference (a library no longer installed)
    report_missing: bool = False
    #: compared only where this framework is imported on both sides (its flags, threads, GPUs)
    needs: str | None = None


def _section(mapping: Any, key: str) -> dict[str, Any]:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, dict) else {}


def _facts(env: dict[str, Any]) -> dict[str, _Fact]:
    """The comparable facts of an environment dict, keyed by what they are."""
    facts: dict[str, _Fact] = {
        "seed": _Fact("seed", env.get("seed"), True),
        "profile": _Fact("profile", env.get("profile"), True),
    }
    if "hashing" in env:
        facts["hashing"] = _Fact("str hashing", _hashing_text(env["hashing"]), True)
    python = _section(env, "python")
    for key, label in (("implementation", "Python implementation"), ("version", "Python")):
        if key in python:
            facts[f"python.{key}"] = _Fact(label, python[key], True)
    system = _section(env, "os")
    for key, label in (("system", "OS"), ("release", "OS release"), ("machine", "machine")):
        if key in system:
            facts[f"os.{key}"] = _Fact(label, system[key], False)
    if "repro" in env:
        facts["repro"] = _Fact("repro", env["repro"], False)
    for name, described in _section(env, "frameworks").items():
        if not isinstance(described, dict):
            continue
        facts[f"{name}.version"] = _Fact(name, described.get("version"), True, report_missing=True)
        if not described.get("imported"):
            continue
        for key, value in described.items():
            if key in ("version", "imported", "note", "error"):
                continue
            label = {"cuda": "CUDA", "cudnn": "cuDNN"}.get(key, f"{name} {key.replace('_', ' ')}")
            informational = key.endswith("_threads") or key in ("gpu_count", "cuda_available")
            facts[f"{name}.{key}"] = _Fact(label, value, not informational, needs=name)
    for kind, label in (("blas", "BLAS"), ("openmp", "OpenMP")):
        pools = env.get(kind)
        by_package: dict[str, list[dict[str, Any]]] = {}
        for pool in pools if isinstance(pools, list) else []:
            if isinstance(pool, dict):
                by_package.setdefault(str(pool.get("package")), []).append(pool)
        for package, entries in by_package.items():
            build = [f"{p.get('library')} {p.get('version')}" for p in entries]
            threads = [p.get("threads") for p in entries]
            # Compared only where the package's libraries are loaded here as well.
            facts[f"{kind}.{package}"] = _Fact(
                f"{package} {label}", build, kind == "blas", needs=package
            )
            facts[f"{kind}.{package}.threads"] = _Fact(
                f"{package} {label} threads", threads, False, needs=package
            )
    for flag, value in _section(env, "backend_flags").items():
        facts[f"flag.{flag}"] = _Fact(flag, value, flag not in _INFORMATIONAL_FLAGS, needs="torch")
    environ = _section(env, "environ")
    for name in ENVIRONMENT_VARIABLES:
        if name in _DERIVED_VARIABLES:
            continue
        # repro sets CUBLAS_WORKSPACE_CONFIG itself once torch is imported under a profile.
        needs = "torch" if name == "CUBLAS_WORKSPACE_CONFIG" else None
        facts[f"env.{name}"] = _Fact(
            name, environ.get(name, "unset"), name in _RESULT_VARIABLES, needs=needs
        )
    git = env.get("git")
    if isinstance(git, dict):
        facts["git.commit"] = _Fact("git commit", git.get("commit"), False)
        if git.get("dirty") is not None:  # unknown (git missing or slow) is no difference
            facts["git.dirty"] = _Fact("git work tree", "dirty" if git["dirty"] else "clean", False)
    return facts


def _imported(env: dict[str, Any], name: str) -> bool:
    """Whether ``name`` (a framework, or the package owning a native library) is live in ``env``."""
    described = _section(env, "frameworks").get(name)
    if isinstance(described, dict):
        return bool(described.get("imported"))
    return any(
        isinstance(pool, dict) and pool.get("package") == name
        for kind in ("blas", "openmp")
        for pool in (env.get(kind) if isinstance(env.get(kind), list) else [])
    )


def _differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, bool]]:
    """(line, affects results) for each fact of ``recorded`` that differs in ``current``."""
    mine, theirs = _facts(recorded), _facts(current)
    found = []
    for key, was in mine.items():
        if was.needs is not None and not (
            _imported(recorded, was.needs) and _imported(current, was.needs)
        ):
            continue
        now = theirs.get(key)
        if now is None:
            if was.report_missing:
                found.append(
                    (f"{was.label} {_show(was.value)} → not installed", was.affects_results)
                )
            continue
        if now.value != was.value:
            line = f"{was.label} {_show(was.value)} → {_show(now.value)}"
            found.append(
                (line if was.affects_results else f"{line} (informational)", was.affects_results)
            )
    return found


def _recorded(config: dict[str, Any]) -> dict[str, Any]:
    """The environment a config describes, with its seed, profile and flags on top."""
    env = dict(config.get("environment") or {})
    env["seed"], env["profile"] = config.get("seed"), config.get("profile")
    env["backend_flags"] = {**_section(env, "backend_flags"), **(config.get("settings") or {})}
    return env


def _validate(config: Any) -> tuple[int | None, str | None, dict[str, Any]]:
    """(seed, profile, overrides for ``repro.setup``) from ``config``; raises on bad input."""
    if not isinstance(config, dict):
        raise TypeError(
            "config must be a dict (the literal of a repro config cell), "
            f"got {type(config).__name__}"
        )
    unknown = [key for key in config if key not in CONFIG_KEYS]
    if unknown:
        raise ValueError(
            f"unknown config key {', '.join(map(repr, unknown))}; a config has "
            f"{', '.join(CONFIG_KEYS)} (put your own values under 'params')"
        )
    _literal(config, 0, "config")  # data only: the same check the export makes
    seed = config.get("seed")
    seed = None if seed is None else _session.check_seed(seed)
    profile = config.get("profile")
    settings = config.get("settings") or {}
    if not isinstance(settings, dict):
        raise TypeError(
            f"config['settings'] must be a dict of flags, got {type(settings).__name__}"
        )
    for key in ("params", "environment"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise TypeError(f"config[{key!r}] must be a dict, got {type(config[key]).__name__}")
    if profile is None:
        if settings:
            raise ValueError("config['settings'] needs a profile: config['profile'] is None")
        return seed, None, {}
    chosen = get_profile(profile)
    wanted = chosen.settings.with_overrides(**settings).as_dict()
    base = chosen.settings.as_dict()
    return seed, profile, {k: v for k, v in wanted.items() if v != base[k]}


def apply_config(config: dict[str, Any], strict: bool = False, *, quiet: bool = False) -> list[str]:
    """Re-apply a config cell's dict: seed, profile and flags; report how this kernel differs.

    Seeds with ``config["seed"]`` and applies ``config["profile"]`` with the
    recorded ``settings`` (through :func:`repro.setup`), then compares the recorded
    environment with this kernel's. Returns one readable line per difference,
    e.g. ``torch 2.13.0 → 2.14.1``; a difference that does not change results
    (OS release, thread counts, git commit) ends in ``(informational)``. The lines
    are also printed unless ``quiet``.

    With ``strict=True``, a difference that affects results (library, CUDA or
    cuDNN versions, profile flags, str-hash seed) raises ``ValueError`` listing
    them, and nothing is changed. Bad input (not a dict, an unknown key, a bad
    seed, profile or flag) raises ``TypeError``/``ValueError``, and nothing is
    changed. Evaluates nothing: the config is data. The applied config is kept
    (``repro.session.current().config``) for :func:`check`.
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    seed, profile, overrides = _validate(config)
    recorded = _recorded(config)
    if strict:
        # A trial run under scope(), which puts every seed, flag and variable back:
        # backend flags are coupled (TF32 moves float32 matmul precision), so the
        # differences are measured, not predicted.
        seed_before = _session.current().seed
        with _session.scope(seed, profile, **overrides):
            trial = environment()
        if seed is None:
            trial["seed"] = seed_before  # scope() seeds even without a seed; setup() does not
        affecting = [line for line, affects in _differences(recorded, trial) if affects]
        if affecting:
            raise ValueError(
                "this kernel differs from the config in what affects results: "
                + "; ".join(affecting)
            )
    live = _session.current()
    before = live.config
    live.config = copy.deepcopy(config)
    try:
        _session.setup(seed, profile, **overrides)
    except BaseException:
        live.config = before
        raise
    lines = [line for line, _ in _differences(recorded, environment())]
    if not quiet:
        print(_report(seed, profile, lines))
    return lines


def _report(seed: int | None, profile: str | None, lines: list[str]) -> str:
    applied = f"repro: applied config: seed {_show(seed)} · profile {_show(profile)}"
    if not lines:
        return f"{applied}; this kernel matches the recorded environment"
    head = f"{applied}; {len(lines)} difference{'s' if len(lines) > 1 else ''} from the recording:"
    return "\n".join([head, *(f"  {line}" for line in lines)])


def check() -> list[str]:
    """How this kernel now differs from the last config applied with :func:`apply_config`.

    One line per difference, as :func:`apply_config` returns them (empty: it
    matches); the seed, profile and flags are compared with the session's now,
    so ``%repro 7`` after applying a config with seed 42 shows ``seed 42 → 7``.
    A ``ValueError`` if no config was applied in this kernel.
    """
    config = _session.current().config
    if config is None:
        raise ValueError(
            "no config has been applied in this kernel: run a config cell "
            "(repro.apply_config(config)) first; %repro export writes one"
        )
    return [line for line, _ in _differences(_recorded(config), environment())]
