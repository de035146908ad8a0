"""Any input, however wrong: the magics, the public functions and the ``repro`` command.

Property-based (hypothesis): every input either applies cleanly or is rejected with one
line (``UsageError`` in the magics, ``TypeError``/``ValueError`` naming the argument in
the API, exit status 2 in the command line), nothing else escapes, and a rejected input
leaves RNG states, backend flags, environment variables and the session exactly as they
were. Each test records how many inputs it tried (tests/reliability.py).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from tests.reliability import differences, kernel_state, record

import repro
from repro import cli
from repro._shown import shown

FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

#: Words a user types: flags, values, subcommands, and the characters that break parsers.
WORDS = [
    "42",
    "0",
    "0x2a",
    "4294967295",
    "4294967296",
    "-1",
    "1e3",
    "nan",
    "random",
    "-d",
    "--deterministic",
    "-p",
    "--profile",
    "debug",
    "final",
    "search",
    "production",
    "nope",
    "--warn-only",
    "--algorithms",
    "off",
    "warn",
    "raise",
    "-k",
    "--keep",
    "-q",
    "--quiet",
    "-h",
    "--help",
    "--",
    "-",
    "=",
    '"',
    "'",
    "\\",
    "''",
    '"a b"',
    "'x\ny'",
    "export",
    "--param",
    "-P",
    "--param=a=1",
    "lr=1e-3",
    "model=ResNet18",
    "x=[1,2]",
    "y={'a':",
    "k=__import__('os')",
    "=1",
    "check",
    "profiles",
    "panel",
    "ü",
    "\x00",
    "\t",
]

#: Lines a user would mean: a seed and some flags, most of them valid.
PLAUSIBLE = st.tuples(
    st.sampled_from(["", "42", "0x2a", "7", "random", "4294967295", "-1", "abc"]),
    st.sampled_from(["", "-d", "-p debug", "-p final", "--profile production", "-p nope"]),
    st.sampled_from(["", "--warn-only", "--algorithms off", "--algorithms warn", "--algorithms x"]),
    st.sampled_from(["", "-q", "--keep"]),
).map(lambda words: " ".join(w for w in words if w))

#: Lines built from the words above, plausible lines, and arbitrary text.
LINES = st.one_of(
    PLAUSIBLE,
    st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join),
    st.text(max_size=40),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=5).map(" ".join),
)
SUBCOMMANDS = ("export", "check", "profiles", "panel")


@pytest.fixture
def quiet_shell(shell: Any) -> Iterator[Any]:
    """The ``shell`` fixture, with the panels that ``%repro panel`` makes closed afterwards."""
    made: list[Any] = []
    yield shell, made
    for p in made:
        p.close()


def _one_line_usage_error(exc: BaseException) -> None:
    assert isinstance(exc, UsageError), f"{type(exc).__name__} escaped: {exc!r}"
    text = str(exc)
    assert text.strip(), "a UsageError with no message"
    assert "\n" not in text.strip(), f"UsageError of several lines: {text!r}"


def _try_magic(run: Callable[[], Any], made: list[Any]) -> bool:
    """Run a magic; True if it applied, False if it raised a one-line UsageError."""
    import ipywidgets

    before = kernel_state()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            result = run()
        except BaseException as exc:
            _one_line_usage_error(exc)
            changed = differences(before, kernel_state())
            assert not changed, f"rejected input changed {changed}: {exc}"
            return False
    if isinstance(result, ipywidgets.Widget):  # %repro panel
        made.append(result)
    return True


class Tally:
    """How many inputs a property test tried (and how many distinct), how many applied."""

    def __init__(self) -> None:
        self.tried = self.applied = 0
        self.seen: set[str] = set()

    def add(self, applied: bool, key: str) -> None:
        self.tried += 1
        self.applied += applied
        self.seen.add(key)

    def record(self, name: str) -> None:
        assert self.tried > 0, "hypothesis ran no example"
        record(
            name,
            inputs_tried=self.tried,
            distinct=len(self.seen),
            applied=self.applied,
            rejected=self.tried - self.applied,
        )


def test_line_magic_any_line(quiet_shell: Any) -> None:
    shell, made = quiet_shell
    tally = Tally()

    @settings(deadline=None, max_examples=1000, suppress_health_check=FIXTURE_OK)
    @given(line=LINES)
    def check(line: str) -> None:
        tally.add(_try_magic(lambda: shell.run_line_magic("repro", line), made), line)

    check()
    tally.record("inputs-line-magic")


def test_subcommands_any_arguments(quiet_shell: Any) -> None:
    shell, made = quiet_shell
    tally = Tally()

    @settings(deadline=None, max_examples=300, suppress_health_check=FIXTURE_OK)
    @given(sub=st.sampled_from(SUBCOMMANDS), rest=LINES)
    def check(sub: str, rest: str) -> None:
        line = f"{sub} {rest}"
        tally.add(_try_magic(lambda: shell.run_line_magic("repro", line), made), line)

    check()
    tally.record("inputs-subcommands")


def test_export_any_params(quiet_shell: Any) -> None:
    shell, made = quiet_shell
    tally = Tally()
    pair = st.tuples(st.text(max_size=8), st.sampled_from(["=", "", "=="]), st.text(max_size=12))

    @settings(deadline=None, max_examples=300, suppress_health_check=FIXTURE_OK)
    @given(pairs=st.lists(pair, max_size=3))
    def check(pairs: list[tuple[str, str, str]]) -> None:
        # Quoted as a user would quote a value with spaces; the quoting itself may be broken.
        line = "export " + " ".join(f"--param '{k}{sep}{v}'" for k, sep, v in pairs)
        shell.rl_next_input = None
        applied = _try_magic(lambda: shell.run_line_magic("repro", line), made)
        tally.add(applied, line)
        if applied:
            # The inserted cell is valid Python whatever the values were.
            compile(shell.rl_next_input, "<config cell>", "exec")

    check()
    tally.record("inputs-export-params")


def test_cell_magic_any_header(quiet_shell: Any) -> None:
    # A cell magic's line is one line: IPython splits the cell at the first newline.
    shell, made = quiet_shell
    tally = Tally()
    body = "_cell_ran += 1\nimport random as _r\n_r.random()"

    @settings(deadline=None, max_examples=500, suppress_health_check=FIXTURE_OK)
    @given(header=LINES.filter(lambda s: "\n" not in s and "\r" not in s))
    def check(header: str) -> None:
        shell.user_ns["_cell_ran"] = 0
        applied = _try_magic(lambda: shell.run_cell_magic("repro", header, body), made)
        tally.add(applied, header)
        helped = any(word in ("-h", "--help") for word in header.split())  # help, no run
        assert shell.user_ns["_cell_ran"] == (1 if applied and not helped else 0)

    check()
    tally.record("inputs-cell-header")


def test_unbalanced_quote_is_one_usage_error(shell: Any) -> None:
    # Found by hand (issue 14): shlex's "No closing quotation" escaped as a raw ValueError.
    for line in ('42 "', "export --param 'a=1", "-p 'debug"):
        before = kernel_state()
        with pytest.raises(UsageError, match="No closing quotation") as info:
            shell.run_line_magic("repro", line)
        _one_line_usage_error(info.value)
        assert differences(before, kernel_state()) == []
    with pytest.raises(UsageError, match="No closing quotation"):
        shell.run_cell_magic("repro", "'42", "x = 1")


# --- the public functions -----------------------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["debug", "final", "search", "production", "off", "warn", "raise"]),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from([math.nan, 2**100, 10**5000, -(10**5000), 1.5, object(), Path("."), 1j]),
)


def _seed_ok(v: Any) -> bool:
    return v is None or (type(v) is int and 0 <= v < 2**32)


def _name_ok(v: Any) -> bool | None:
    # A str may still be an unknown name (ValueError); anything else must be rejected.
    return None if isinstance(v, str) else False


def _profile_ok(v: Any) -> bool | None:
    return True if v is None else _name_ok(v)


def _bool_ok(v: Any) -> bool:
    return isinstance(v, bool)


def _enter(context: Any) -> None:
    with context:
        pass


#: (what, how to call it with the value, accepts: True / False / None = either, the words of
#: which the message must hold one: the argument's name, or what it is, as "profile")
CALLS: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any], str]] = [
    ("seed(seed)", lambda v: repro.seed(v), _seed_ok, "seed"),
    ("setup(seed)", lambda v: repro.setup(v), _seed_ok, "seed"),
    ("setup(profile)", lambda v: repro.setup(None, v), _profile_ok, "profile"),
    (
        "setup(cudnn_benchmark)",
        lambda v: repro.setup(1, "debug", cudnn_benchmark=v),
        _bool_ok,
        "cudnn_benchmark",
    ),
    (
        "setup(deterministic_algorithms)",
        lambda v: repro.setup(1, "debug", deterministic_algorithms=v),
        lambda v: isinstance(v, str) and v in ("off", "warn", "raise"),
        "deterministic_algorithms",
    ),
    ("use_profile(name)", lambda v: repro.use_profile(v), _name_ok, "name|profile"),
    ("scope(seed)", lambda v: _enter(repro.scope(v)), _seed_ok, "seed"),
    ("scope(profile)", lambda v: _enter(repro.scope(1, v)), _profile_ok, "profile"),
    ("get_profile(name)", lambda v: repro.get_profile(v), _name_ok, "name|profile"),
    ("register_profile(name)", lambda v: repro.register_profile(v, "m"), _name_ok, "name"),
    (
        "register_profile(meant_for)",
        lambda v: repro.register_profile("mine", v),
        lambda v: isinstance(v, str),
        "meant_for",
    ),
    (
        "register_profile(trade)",
        lambda v: repro.register_profile("mine", "m", v),
        lambda v: isinstance(v, str),
        "trade",
    ),
    (
        "register_profile(base)",
        lambda v: repro.register_profile("mine", "m", base=v),
        _profile_ok,
        "base|profile",
    ),
    ("dataloader_kwargs(seed)", lambda v: repro.dataloader_kwargs(v), _seed_ok, "seed"),
    ("rng(name)", lambda v: repro.rng(v, 1), lambda v: v is None or isinstance(v, str), "name"),
    ("rng(seed)", lambda v: repro.rng("x", v), _seed_ok, "seed"),
    (
        "seed_worker(worker_id)",
        lambda v: repro.seed_worker(v),
        lambda v: None if type(v) is int else False,
        "worker_id",
    ),
    (
        "environment(repository)",
        lambda v: repro.environment(repository=v),
        lambda v: None if v is None or isinstance(v, (str, os.PathLike)) else False,
        "repository",
    ),
    (
        "config_cell(params)",
        lambda v: repro.config_cell(v),
        lambda v: None if v is None or isinstance(v, dict) else False,
        "params",
    ),
    (
        "apply_config(config)",
        lambda v: repro.apply_config(v, quiet=True),
        lambda v: None if isinstance(v, dict) else False,
        "config",
    ),
    (
        "apply_config(strict)",
        # strict=True may rightly refuse (this kernel differs from the empty config)
        lambda v: repro.apply_config({}, v, quiet=True),
        lambda v: None if isinstance(v, bool) else False,
        "strict",
    ),
    ("apply_config(quiet)", lambda v: repro.apply_config({}, quiet=v), _bool_ok, "quiet"),
    (
        "load_ipython_extension(ipython)",
        lambda v: repro.load_ipython_extension(v),
        lambda v: False,
        "ipython",
    ),
    (
        "unload_ipython_extension(ipython)",
        lambda v: repro.unload_ipython_extension(v),
        lambda v: False,
        "ipython",
    ),
]


def test_public_functions_any_value() -> None:
    tally = Tally()

    @settings(deadline=None, max_examples=3000, suppress_health_check=FIXTURE_OK)
    @given(index=st.integers(0, len(CALLS) - 1), value=VALUES)
    def check(index: int, value: Any) -> None:
        what, call, accepts, argument = CALLS[index]
        expected = accepts(value)
        before = kernel_state()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                call(value)
        except (TypeError, ValueError) as exc:
            message = str(exc)
            assert expected is not True, f"{what} rejected a good value {value!r}: {exc}"
            names = argument.split("|")
            # A value of the right kind may be refused for what it holds (an unknown
            # profile, a config this kernel differs from): the message then says that.
            assert expected is None or any(
                name in message or name.replace("_", " ") in message for name in names
            ), f"{what}({value!r}): the message does not name {argument!r}: {message}"
            assert "\n" not in message.strip(), f"{what}: a message of several lines: {message!r}"
            assert len(message) < 500, f"{what}: a message of {len(message)} characters"
            changed = differences(before, kernel_state())
            assert not changed, f"{what}({value!r}) was rejected but changed {changed}"
            tally.add(False, f"{index}:{type(value).__name__}:{shown(value)}")
            return
        assert expected is not False, f"{what} accepted {value!r}"
        tally.add(True, f"{index}:{type(value).__name__}:{shown(value)}")

    check()
    tally.record("inputs-api")


# --- the command line ---------------------------------------------------------------

CLI_WORDS = [
    "info",
    "--json",
    "--import",
    "kernel",
    "install",
    "--name",
    "--display-name",
    "--hash-seed",
    "--user",
    "--prefix",
    "--version",
    "-h",
    "nope",
    "0",
    "-1",
    "4294967296",
    "x y",
    "a\nb",
    "",
    "--",
    "é",
]
ARGVS = st.lists(st.sampled_from(CLI_WORDS) | st.text(max_size=8), max_size=5)


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels that a generated ``kernel install`` writes go to a temporary folder.

    Generated arguments can be a real install: ``--user`` (JUPYTER_DATA_DIR here),
    ``--s`` (argparse's abbreviation of ``--sys-prefix``: sys.prefix here) or ``--pr /``
    (an absolute prefix, rebased here). The install itself still runs, for real.
    """
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "sys-prefix"))
    monkeypatch.chdir(tmp_path)
    install = cli.install_kernel

    def install_here(name: str, *, prefix: str | None = None, **kwargs: Any) -> str:
        if prefix is not None:
            prefix = str(tmp_path / "prefix" / str(prefix).lstrip("/"))
        return install(name, prefix=prefix, **kwargs)

    monkeypatch.setattr(cli, "install_kernel", install_here)
    return tmp_path


def test_cli_any_arguments(cli_home: Path) -> None:
    tally = Tally()

    @settings(deadline=None, max_examples=600, suppress_health_check=FIXTURE_OK)
    @given(argv=ARGVS)
    def check(argv: list[str]) -> None:
        code, _out, err = _run_cli(argv)
        assert code in (0, 1, 2), f"repro {argv!r} exited {code}: {err}"
        assert "Traceback" not in err, f"repro {argv!r} printed a traceback:\n{err}"
        if code != 0:
            lines = err.strip().splitlines()
            assert len(lines) == 1, f"repro {argv!r} exited {code} with {len(lines)} lines: {err!r}"
        tally.add(code == 0, repr(argv))

    check()
    tally.record("inputs-cli")


SAMPLE = [
    ["nope"],
    ["info", "--jsn"],
    ["kernel"],
    ["kernel", "install", "--hash-seed", "-1"],
    ["kernel", "install", "--name", "a b"],
    ["info", "a\nb"],
    [],
]


@pytest.mark.parametrize("argv", SAMPLE, ids=lambda argv: " ".join(argv) or "no-arguments")
def test_python_m_repro_bad_arguments(argv: list[str], cli_home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "repro", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
