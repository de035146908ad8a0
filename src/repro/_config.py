"""The exported config cell: one literal dict that records a run, and re-applying it.

:func:`config_cell` writes the seed, profile, flags, the user's parameters and the
:func:`repro.environment` as one literal dict in a notebook cell; running that cell
calls :func:`apply_config`, which re-applies the seed and profile and reports, one
line each, what differs from the recorded environment. :func:`check` compares again later.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass
from typing import Any

from repro import _session
from repro._bounds import check_bounds
from repro._capture import environment, hashing_text, show
from repro._environ import AFFECTING_RESULTS, RECORDED, WRITTEN
from repro._profiles import get_profile
from repro._seed import check_seed
from repro._shown import shown

__all__ = ["CONFIG_KEYS", "apply_config", "check", "config_cell"]

#: The keys of a config dict, in the order the cell writes them.
CONFIG_KEYS = ("seed", "profile", "settings", "params", "environment")
# repro writes these itself on every seed; the hash seed the process started with is what counts.
_DERIVED_VARIABLES = frozenset(WRITTEN) - {"CUBLAS_WORKSPACE_CONFIG"}
# Backend flags read for information only: hardware facts, or the cuDNN version reported twice.
_INFORMATIONAL_FLAGS = frozenset({"cudnn_available", "cudnn_version", "cuda_initialized"})
# Keys of the environment that are the session's, written at the top of a config instead.
_SESSION_KEYS = ("seed", "profile", "overrides")

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
    check_bounds(params, "params")  # before the recursive writer: any depth, any size
    for name in params:
        if not isinstance(name, str):
            raise TypeError(f"param names must be strings, got {shown(name)}")
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
                    raise TypeError(f"{where} has a key {shown(key)}: config keys are str or int")
                name = _literal(key, depth + 1, where)
                start = len(inner) + len(name) + 2
                items.append(
                    f"{name}: {_literal(item, depth + 1, f'{where}[{shown(key)}]', start, seen)}"
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
        facts["hashing"] = _Fact("str hashing", hashing_text(env["hashing"]), True)
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
    for name in RECORDED:
        if name in _DERIVED_VARIABLES:
            continue
        # repro sets CUBLAS_WORKSPACE_CONFIG itself once torch is imported under a profile.
        needs = "torch" if name == "CUBLAS_WORKSPACE_CONFIG" else None
        facts[f"env.{name}"] = _Fact(
            name, environ.get(name, "unset"), name in AFFECTING_RESULTS, needs=needs
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
                    (f"{was.label} {show(was.value)} → not installed", was.affects_results)
                )
            continue
        if now.value != was.value:
            line = f"{was.label} {show(was.value)} → {show(now.value)}"
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
    check_bounds(config, "config")  # before the recursive checks: any depth, any size
    unknown = [key for key in config if key not in CONFIG_KEYS]
    if unknown:
        raise ValueError(
            f"unknown config key {', '.join(map(shown, unknown))}; a config has "
            f"{', '.join(CONFIG_KEYS)} (put your own values under 'params')"
        )
    _literal(config, 0, "config")  # data only: the same check the export makes
    seed = config.get("seed")
    seed = None if seed is None else check_seed(seed, "config['seed']")
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
    return seed, profile, get_profile(profile).overrides_for(settings)


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
    (``repro._session.current().config``) for :func:`check`.
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {shown(strict)}")
    if not isinstance(quiet, bool):
        raise TypeError(f"quiet must be True or False, got {shown(quiet)}")
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
    _session.apply(seed, profile, overrides, config=copy.deepcopy(config))
    lines = [line for line, _ in _differences(recorded, environment())]
    if not quiet:
        print(_report(seed, profile, lines))
    return lines


def _report(seed: int | None, profile: str | None, lines: list[str]) -> str:
    applied = f"repro: applied config: seed {show(seed)} · profile {show(profile)}"
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
