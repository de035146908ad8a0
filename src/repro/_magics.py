"""``%repro`` and ``%%repro``: parse the line, call the core, show the result."""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import shlex
import textwrap
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from repro import _cell, _diagnostics, _session, _verify
from repro._profiles import ALGORITHMS, choose, profiles, table
from repro._seed import parse_seed
from repro._state import State, state
from repro._suggest import did_you_mean

__all__ = ["ReproMagics"]

SUBCOMMANDS = ("panel", "export", "check", "profiles", "kernel")
#: The words that ask for the help instead of doing something.
HELP = ("-h", "--help")


def _usage(exc: Exception) -> UsageError:
    """A core error as the magic's one-line ``UsageError``."""
    text = str(exc).removeprefix("repro: ").strip() or type(exc).__name__
    return UsageError(text.splitlines()[0])


def _parsed(parse: Callable[[], Any], line: str) -> Any:
    """``parse()``'s arguments; argparse's and shlex's errors as a one-line ``UsageError``."""
    try:
        return parse()
    except UsageError as exc:  # argparse quotes words as typed: a quoted newline stays one line
        raise UsageError(" ".join(str(exc).splitlines())) from None
    except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
        raise UsageError(f"{exc} in {line.strip()!r}") from None


def _parse(function: Any, line: str) -> Any:
    """``parse_argstring`` for a magic, its errors one line (see :func:`_parsed`), and a
    mistyped option answered with the closest known one."""
    try:
        return _parsed(lambda: parse_argstring(function, line), line)
    except UsageError as exc:
        raise UsageError(str(exc) + _option_hint(function.parser, str(exc), line)) from None


def _option_hint(parser: Any, message: str, line: str) -> str:
    """`` (did you mean `--deterministic`?)`` for argparse's "unrecognized arguments: ...".

    A mistyped option is compared with the options; an extra word most often follows a
    mistyped subcommand (``%repro kernl install``), so the line's first word is compared
    with the subcommands and profiles.
    """
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return ""
    for word in message.removeprefix(prefix).split():
        if word.startswith("-"):
            hint = did_you_mean(word.split("=")[0], parser._option_string_actions)
            if hint:
                return hint
    first = line.split()[0] if line.split() else ""
    return "" if first.startswith("-") else did_you_mean(first, _words())


def _words() -> tuple[str, ...]:
    """What may stand where a seed stands: the subcommands, ``random``, the profiles' names."""
    return (*SUBCOMMANDS, "random", *(p.name for p in profiles()))


@functools.lru_cache(maxsize=64)
def _parse_cell_line(line: str) -> Any:
    """``%%repro``'s line, parsed once per distinct line (its Namespace is only read).

    A cell is re-run with the same line, and argparse was a sixth of the cell's overhead.
    """
    return _parse(ReproMagics.repro, line)


def _settings_args(args: Any) -> tuple[int | None, str | None, dict[str, Any]]:
    """Parsed flags as (seed, profile, overrides); a ``UsageError`` for what the core refuses."""
    try:
        profile, overrides = choose(
            args.profile,
            deterministic=args.deterministic,
            warn_only=args.warn_only,
            algorithms=args.algorithms,
        )
        seed = None if args.seed is None else parse_seed(args.seed)
    except (ValueError, TypeError) as exc:
        error = _usage(exc)
        word = args.seed if isinstance(args.seed, str) and not args.seed.isdigit() else None
        hint = did_you_mean(word, _words()) if word and "seed" in str(error) else ""
        raise UsageError(f"{error}{hint}") from None
    return seed, profile, overrides


@magic_arguments()
@argument(
    "-P",
    "--param",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="a parameter of your own to record (a Python literal, else a string); repeatable",
)
def _export_arguments(line: str) -> None:
    """``%repro export [--param KEY=VALUE ...]``: insert a config cell below this one."""


@magic_arguments()
@argument(
    "action", choices=["install"], help="install: a kernelspec for this Python, hashing fixed"
)
@argument(
    "--hash-seed",
    default="0",
    metavar="N",
    help="PYTHONHASHSEED of the new kernel, 0 <= N < 2**32 (default 0)",
)
def _kernel_arguments(line: str) -> None:
    """``%repro kernel install [--hash-seed N]``: a kernel whose str hashing is fixed."""


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param takes key=value, got {pair!r}")
        try:
            params[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            params[key.strip()] = raw
    return params


@magics_class
class ReproMagics(Magics):
    """The ``%repro`` line magic and ``%%repro`` cell magic."""

    @magic_arguments()
    @argument(
        "seed",
        nargs="?",
        help="integer 0 <= SEED < 2**32 (decimal or 0x...), or 'random' to draw and print a "
        "fresh one; or a subcommand: panel, export, check, profiles, kernel",
    )
    @argument("-d", "--deterministic", action="store_true", help="same as --profile debug")
    @argument(
        "-p",
        "--profile",
        metavar="NAME",
        help="debug | final | search | production | any registered profile",
    )
    @argument(
        "--warn-only",
        action="store_true",
        help="nondeterministic ops warn instead of raising (--algorithms warn)",
    )
    @argument(
        "--algorithms",
        choices=ALGORITHMS,
        help="torch.use_deterministic_algorithms: off, warn or raise (overrides the profile)",
    )
    @argument(
        "-k",
        "--keep",
        action="store_true",
        help="%%%%repro only: keep the seed and settings after the cell instead of restoring them",
    )
    @argument("-q", "--quiet", action="store_true", help="print nothing on success")
    @argument(
        "--verify",
        nargs="?",
        const=2,
        type=int,
        metavar="N",
        help="%%%%repro only: run the cell N times (default 2) from the same start, compare "
        "what it creates or changes and shows, and print the verdict (put SEED first: "
        "%%%%repro 42 --verify)",
    )
    @argument(
        "--trace",
        action="store_true",
        help="%%%%repro --verify only: record every torch op of each run and name the first "
        "one whose result differs, its line and why",
    )
    @line_magic
    def repro(self, line: str) -> Any:
        """Seed Python, NumPy and PyTorch and choose a reproducibility profile.

        Examples::

            %repro                         # show seed, profile, RNG fingerprints, flags, warnings
            %repro 42                      # seed random, numpy, torch (CPU + every CUDA device)
            %repro 42 --deterministic      # ... and switch torch into deterministic mode (debug)
            %repro 42 -p final             # deterministic, warn on nondeterministic ops
            %repro --profile production    # speed: cuDNN autotuning and TF32, seeds logged
            %repro 42 -d --warn-only       # debug, but warn instead of raising
            %repro 42 -d --algorithms off  # the guide's make_reproducible(42)
            %repro random                  # draw a fresh seed and print it, so it can be pinned
            %repro profiles                # list the profiles and what each trades
            %repro panel                   # the live panel
            %repro export --param lr=1e-3  # insert a config cell below this one
            %repro check                   # compare the kernel with the last applied config
            %repro kernel install          # a kernel whose str hashing is fixed (hash seed 0)

            %%repro 42 -p debug            # run one cell under a seed and profile, then restore
            %%repro --keep                 # run the cell seeded, keep the settings afterwards

        A framework imported after ``%repro`` is seeded at its import. The running
        kernel's str hashing cannot be fixed from inside it: ``%repro kernel install``
        installs a kernel that starts with it fixed; switch the notebook to that kernel.
        """
        words = line.split()
        if any(word in HELP for word in words):
            print(_help())
            return None
        if words and words[0] in SUBCOMMANDS:
            return self._subcommand(words[0], line.split(None, 1)[1] if len(words) > 1 else "")
        args = _parse(self.repro, line)
        if args.keep:
            raise UsageError("--keep is for the %%repro cell magic")
        if args.verify is not None:
            raise UsageError("--verify is for the %%repro cell magic")
        if args.trace:
            raise UsageError("--trace is for the %%repro cell magic, with --verify")
        seed, profile, overrides = _settings_args(args)
        if seed is None and profile is None and not overrides:
            return state()
        try:
            _session.setup(seed, profile, **overrides)
        except (ValueError, TypeError) as exc:
            raise _usage(exc) from None
        if not args.quiet:
            print(_summary(state()))
        return None

    def _subcommand(self, name: str, rest: str) -> Any:
        if name == "profiles":
            if rest.strip():
                raise UsageError("%repro profiles takes no arguments")
            return table(state().profile)
        if name == "panel":
            if rest.strip():
                raise UsageError("%repro panel takes no arguments")
            from repro._panel import panel  # lazy: ipywidgets loads when a panel is asked for

            return panel()
        if name == "kernel":
            return self._install_kernel(rest)
        if name == "check":
            if rest.strip():
                raise UsageError("%repro check takes no arguments")
            try:
                from repro._config import check  # lazy, as in repro: the capture is heavier

                lines = check()
            except (ValueError, TypeError) as exc:
                raise _usage(exc) from None
            ok = "repro check: the kernel matches the applied config"
            print("\n".join(lines) if lines else ok)
            return None
        # export
        # POSIX splitting, unlike parse_argstring: --param 'note=a "b"' loses its outer quotes.
        parser = _export_arguments.parser
        args = _parsed(lambda: parser.parse_args(shlex.split(rest)), rest)
        params = _parse_params(args.param)
        from repro._config import config_cell

        try:
            source = config_cell(params or None)
        except (ValueError, TypeError) as exc:
            raise _usage(exc) from None
        print(_export_message(self.shell, source))
        return None

    def _install_kernel(self, rest: str) -> None:
        # The one step between the hashing warning and its fix: the CLI's `repro kernel
        # install`, from the notebook itself (no PATH, no terminal).
        from repro._kernel import install_kernel, kernel_display_name, switch_advice

        parser = _kernel_arguments.parser
        try:
            args = _parsed(lambda: parser.parse_args(shlex.split(rest)), rest)
        except UsageError as exc:
            raise UsageError(f"{exc} (usage: %repro kernel install [--hash-seed N])") from None
        try:
            hash_seed = parse_seed(args.hash_seed, "hash seed", random=False)
        except ValueError as exc:
            raise _usage(exc) from None
        try:
            folder = install_kernel(hash_seed=hash_seed)
        except Exception as exc:  # a read-only data folder, a missing ipykernel
            raise UsageError(f"could not install the kernel: {exc}".splitlines()[0]) from None
        print(switch_advice(kernel_display_name(hash_seed), folder))

    @cell_magic("repro")
    def repro_cell(self, line: str, cell: str) -> None:
        """Run this cell under a seed and profile, then restore every RNG state and flag.

        ``%%repro [SEED] [-d | -p NAME] [--warn-only] [--algorithms A] [--keep]``. Without
        SEED the session's seed is used (a fresh one, printed, if there is none), so
        re-running the cell gives the same output whatever ran before it.
        """
        __tracebackhide__ = True
        if any(word in HELP for word in line.split()):
            print(_help())  # the help, and the cell not run: it was not asked for
            return
        args = _parse_cell_line(line)
        if args.trace and args.verify is None:
            raise UsageError("--trace goes with --verify: %%repro 42 --verify --trace")
        seed, profile, overrides = _settings_args(args)
        with contextlib.ExitStack() as stack:
            # scope() checks its arguments when entered: entered here, so a bad one is a
            # UsageError like any other, before the cell runs.
            try:
                seed, drawn = _session.effective_seed(seed)
                if args.verify is None:
                    if args.keep:
                        _session.setup(seed, profile, **overrides)
                    else:
                        stack.enter_context(_session.scope(seed, profile, **overrides))
            except (ValueError, TypeError) as exc:
                raise _usage(exc) from None
            if drawn:
                print(f"repro: no session seed, this cell runs with seed {seed}")
            if args.verify is not None:
                try:
                    report = _verify.verify_cell(
                        self.shell,
                        line,
                        cell,
                        runs=args.verify,
                        seed=seed,
                        profile=profile,
                        overrides=overrides,
                        keep=args.keep,
                        trace=args.trace,
                    )
                except _verify.ArgumentError as exc:
                    raise _usage(exc) from None
                print(report)
                return
            stack.enter_context(_diagnostics.listing_nondeterministic_ops())
            _cell.run(self.shell, line, cell)


def _help() -> str:
    """What ``%repro?`` shows (usage, examples, every option), for ``--help`` and ``-h``."""
    return inspect.cleandoc(ReproMagics.repro.__doc__ or "").removeprefix("::").lstrip()


def _summary(st: State) -> str:
    """What ``%repro 42`` prints: the state's one line, then each warning with its fix."""
    lines = [f"repro: {st.summary(sources=True)}"]
    for warning in st.warnings:
        lines += textwrap.wrap(
            warning, 96, initial_indent="  ⚠ ", subsequent_indent="    ", break_on_hyphens=False
        )
    return "\n".join(lines)


def _frontend_inserts_cells(shell: Any) -> bool:
    """Whether the cell running now came from a notebook frontend, which acts on
    ``set_next_input`` by inserting a cell.

    JupyterLab and Notebook 7 send the cell's id with each request (``metadata.cellId``);
    nbclient (papermill, nbconvert), consoles and a plain IPython shell do not.
    """
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent("shell")  # ipykernel >= 6: the request being answered
    except (AttributeError, TypeError):
        parent = getattr(shell, "parent_header", None)
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    return isinstance(metadata, dict) and bool(metadata.get("cellId"))


def _export_message(shell: Any, source: str) -> str:
    """Hand the config cell to the frontend; say what happened, and print it where no
    notebook frontend will insert it (so it is not lost)."""
    # Always handed over: a notebook inserts it, a console or a terminal may offer it as the
    # next input; only a notebook is told "inserted".
    shell.set_next_input(source, replace=False)
    if _frontend_inserts_cells(shell):
        return "repro: config cell inserted below"
    return (
        "repro: no notebook here can insert a cell (nbclient, a console or plain IPython runs\n"
        "  this), so here is the config cell: paste it into a cell to re-apply this run.\n\n"
        + source
    )
