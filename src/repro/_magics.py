"""``%repro`` and ``%%repro``: parse the line, call the core, show the result."""

from __future__ import annotations

import ast
import contextlib
import functools
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

import repro
from repro import _cell, _diagnostics, _session, _verify
from repro._profiles import ALGORITHMS, choose, table
from repro._seed import parse_seed

__all__ = ["ReproMagics"]

SUBCOMMANDS = ("panel", "export", "check", "profiles")


def _usage(exc: Exception) -> UsageError:
    """A core error as the magic's one-line ``UsageError``."""
    text = str(exc).removeprefix("repro: ").strip() or type(exc).__name__
    return UsageError(text.splitlines()[0])


def _parse(function: Any, line: str) -> Any:
    """``parse_argstring``, with shlex's errors (an unbalanced quote) as a ``UsageError``."""
    try:
        return parse_argstring(function, line)
    except UsageError as exc:  # argparse quotes words as typed: a quoted newline stays one line
        raise UsageError(" ".join(str(exc).splitlines())) from None
    except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
        raise UsageError(f"{exc} in {line.strip()!r}") from None


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
        raise _usage(exc) from None
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
        "fresh one; or a subcommand: panel, export, check, profiles",
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

            %%repro 42 -p debug            # run one cell under a seed and profile, then restore
            %%repro --keep                 # run the cell seeded, keep the settings afterwards

        A framework imported after ``%repro`` is seeded at its import. The running
        kernel's str hashing cannot be fixed from inside it: see ``repro kernel install``.
        """
        words = line.split()
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
            return repro.state()
        try:
            repro.setup(seed, profile, **overrides)
        except (ValueError, TypeError) as exc:
            raise _usage(exc) from None
        if not args.quiet:
            print(_summary(repro.state()))
        return None

    def _subcommand(self, name: str, rest: str) -> Any:
        if name == "profiles":
            if rest.strip():
                raise UsageError("%repro profiles takes no arguments")
            return table(repro.state().profile)
        if name == "panel":
            if rest.strip():
                raise UsageError("%repro panel takes no arguments")
            return repro.panel()
        if name == "check":
            if rest.strip():
                raise UsageError("%repro check takes no arguments")
            try:
                lines = repro.check()
            except (ValueError, TypeError) as exc:
                raise _usage(exc) from None
            ok = "repro check: the kernel matches the applied config"
            print("\n".join(lines) if lines else ok)
            return None
        # export
        # POSIX splitting, unlike parse_argstring: --param 'note=a "b"' loses its outer quotes.
        try:
            params = _parse_params(_export_arguments.parser.parse_args(shlex.split(rest)).param)
        except UsageError as exc:  # argparse quotes words as typed: a quoted newline stays one line
            raise UsageError(" ".join(str(exc).splitlines())) from None
        except ValueError as exc:  # shlex: "No closing quotation"
            raise UsageError(f"{exc} in {rest.strip()!r}") from None
        try:
            source = repro.config_cell(params or None)
        except (ValueError, TypeError) as exc:
            raise _usage(exc) from None
        self.shell.set_next_input(source, replace=False)
        print("repro: config cell inserted below")
        return None

    @cell_magic("repro")
    def repro_cell(self, line: str, cell: str) -> None:
        """Run this cell under a seed and profile, then restore every RNG state and flag.

        ``%%repro [SEED] [-d | -p NAME] [--warn-only] [--algorithms A] [--keep]``. Without
        SEED the session's seed is used (a fresh one, printed, if there is none), so
        re-running the cell gives the same output whatever ran before it.
        """
        __tracebackhide__ = True
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
                        repro.setup(seed, profile, **overrides)
                    else:
                        stack.enter_context(repro.scope(seed, profile, **overrides))
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


def _summary(st: repro.State) -> str:
    """What ``%repro 42`` prints: the state's one line, and where to look if it warns."""
    text = f"repro: {st.summary(sources=True)}"
    if st.warnings:
        text += "\n      %repro shows the warnings, each with its fix"
    return text
