"""The ``repro`` command (also ``python -m repro``): parse arguments, call repro, print.

``repro info [--json] [--import]``: the environment, as text or JSON.
``repro kernel install [--name N] [--display-name D] [--hash-seed N] [--user | --sys-prefix |
--prefix P]``: a Jupyter kernel for this interpreter whose ``str`` hashing is fixed.
``repro verify NOTEBOOK [--runs N] [--save F | --against F] ...``: run a notebook in fresh
kernels and name the first cell whose results differ (exit 0 / 1 / 2).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from repro._kernel import DEFAULT_KERNEL_NAME, check_kernel_name, install_kernel
from repro._seed import SEED_LIMIT, parse_seed
from repro._version import __version__
from repro.frameworks.torch import CUBLAS_WORKSPACE_CONFIG

if TYPE_CHECKING:
    from repro._notebook_checks import Settings

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2), not the whole usage."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.splitlines())  # an argument may hold a newline
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _hash_seed(text: str) -> int:
    try:
        return parse_seed(text, "hash seed", random=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _kernel_name(text: str) -> str:
    # Checked while parsing, so the error is about the option.
    try:
        return check_kernel_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> _Parser:
    parser = _Parser(
        prog="repro",
        description="Reproducible Jupyter notebooks: describe the environment, install a kernel "
        "with fixed str hashing, verify that a notebook repeats.",
    )
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    info = commands.add_parser(
        "info",
        help="print the environment that decides whether a run repeats",
        description="Print versions, backend flags, thread pools, hashing and git commit: "
        "what repro.environment() returns. Reads only an allow-list of environment variables.",
    )
    info.add_argument("--json", action="store_true", help="JSON for tools instead of text")
    info.add_argument(
        "--import",
        dest="import_frameworks",
        action="store_true",
        help="import every registered framework (numpy, torch, ...) first, so their versions, "
        "threads and BLAS are read from the library rather than reported as not imported",
    )

    kernel = commands.add_parser(
        "kernel", help="Jupyter kernels with fixed str hashing", description="Jupyter kernels."
    )
    kernel_commands = kernel.add_subparsers(
        dest="kernel_command", metavar="COMMAND", parser_class=_Parser
    )
    install = kernel_commands.add_parser(
        "install",
        help="install a kernelspec for this Python whose PYTHONHASHSEED is fixed",
        description="Install a Jupyter kernelspec for this interpreter that starts with "
        "PYTHONHASHSEED=N and CUBLAS_WORKSPACE_CONFIG=:4096:8, so str hashing (set order, "
        "hash()) and cuBLAS repeat from run to run. A running kernel cannot change its own "
        "hashing.",
    )
    install.add_argument(
        "--name",
        type=_kernel_name,
        default=DEFAULT_KERNEL_NAME,
        help=f"kernelspec name (default: {DEFAULT_KERNEL_NAME})",
    )
    install.add_argument(
        "--display-name",
        help="name shown in Jupyter (default: 'Python 3 (repro, hash seed N)')",
    )
    install.add_argument(
        "--hash-seed",
        type=_hash_seed,
        default=0,
        metavar="N",
        help=f"PYTHONHASHSEED for the kernel, 0 to {SEED_LIMIT - 1} (default: 0)",
    )
    where = install.add_mutually_exclusive_group()
    where.add_argument(
        "--user", action="store_true", help="install for the current user (the default)"
    )
    where.add_argument(
        "--sys-prefix",
        action="store_true",
        help="install into this Python's prefix (a virtual environment or conda env)",
    )
    where.add_argument("--prefix", metavar="PATH", help="install into PATH/share/jupyter/kernels")
    _verify_parser(commands)
    return parser


def _verify_parser(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify",
        help="run a notebook several times and name the first cell whose results differ",
        description="Run NOTEBOOK --runs times, each in a fresh kernel, fingerprint every code "
        "cell's outputs, variables and RNG streams, and report the first cell that differs. "
        "Exit status: 0 reproducible, 1 not, 2 undecided (a cell raised, bad arguments, "
        "no kernel).",
    )
    verify.add_argument(
        "notebooks",
        nargs="+",
        metavar="NOTEBOOK",
        help="the .ipynb file(s); several: a line each and a summary, the worst exit status",
    )
    verify.add_argument("--runs", type=_runs, default=2, metavar="N", help="runs (default: 2)")
    verify.add_argument(
        "--kernel",
        metavar="NAME",
        help="kernel (default: the one the notebook names, if installed here, else python3)",
    )
    verify.add_argument(
        "--timeout", type=float, default=600, metavar="S", help="per cell, seconds (600)"
    )
    verify.add_argument(
        "--hash-seed",
        type=_run_hash_seed,
        default=None,
        metavar="N|random",
        help="PYTHONHASHSEED of every run's kernel (default: run i gets i-1, as stock kernels "
        "differ, unless the kernel pins it); 'random': a new one per run",
    )
    verify.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        metavar="N",
        help="runs at the same time (default: as many as there are cores)",
    )
    verify.add_argument(
        "--ignore",
        action="append",
        type=_variable_name,
        default=[],
        metavar="NAME",
        help="a variable never compared (a run id, a temporary path); repeatable",
    )
    verify.add_argument(
        "--save",
        nargs="?",
        const="",
        metavar="FILE",
        help="write the digests and environment (to NB.repro.json without FILE)",
    )
    verify.add_argument(
        "--against", metavar="FILE", help="run once and compare with a --save recording"
    )
    verify.add_argument("-q", "--quiet", action="store_true", help="no progress, verdict only")
    verify.add_argument("--json", action="store_true", help="the report as JSON")
    verify.add_argument(
        "--trace",
        action="store_true",
        help="name the first torch op that differs in the first differing cell (re-runs to "
        "that cell, tracing it); with --save, the recording keeps every cell's ops",
    )


def _runs(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"--runs must be an integer >= 2, got {text!r}")
    return int(text)


def _run_hash_seed(text: str) -> str:
    return text if text == "random" else str(_hash_seed(text))


def _variable_name(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"--ignore takes a variable name, got {text!r}")
    return text


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be an integer >= 1, got {text!r}")
    return int(text)


def _verify(args: argparse.Namespace) -> int:
    """``repro verify``: the parsed arguments in, the report printed, the exit status out."""
    from repro._verify import verify_notebook

    notebook = Path(args.notebook)
    if not notebook.is_file():
        print(f"repro verify: error: no notebook {str(notebook)!r}", file=sys.stderr)
        return 2
    if args.against and not Path(args.against).is_file():
        print(f"repro verify: error: no recording {args.against!r}", file=sys.stderr)
        return 2
    try:
        report = verify_notebook(
            notebook,
            **dataclasses.asdict(_settings(args)),
            save=Path(args.save) if args.save else None,
            against=Path(args.against) if args.against else None,
            progress=not args.quiet and not args.json and sys.stderr.isatty(),
        )
    except ValueError as exc:  # a recording that is not one
        print(f"repro verify: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, default=str))
    elif args.quiet:
        print(report.verdict)
    else:
        print(report)
    return report.exit_code


def _settings(args: argparse.Namespace) -> Settings:
    """The verify options (runs, kernel, timeout, hash seed, jobs, ignored names, trace) as
    ``_notebook_checks.Settings``, for one notebook and for several alike."""
    from repro._notebook_checks import Settings

    return Settings(
        runs=args.runs,
        kernel=args.kernel,
        timeout=args.timeout,
        hash_seed=args.hash_seed,
        jobs=args.jobs,
        ignore=tuple(args.ignore),
        trace=args.trace,
    )


def _one_notebook(args: argparse.Namespace) -> argparse.Namespace:
    """One notebook: `--save` without FILE, and the recording beside it (see _notebook_checks)."""
    from repro._notebook_checks import recording_beside, recording_for

    (args.notebook,) = args.notebooks
    if args.save == "":
        args.save = str(recording_for(args.notebook))
    elif args.save is None and args.against is None:
        recording = recording_beside(args.notebook)
        args.against = None if recording is None else str(recording)
    return args


def _verify_several(args: argparse.Namespace) -> int:
    """Several notebooks: a line each, the reports of those that fail, a summary."""
    from repro._notebook_checks import verify_notebooks

    for option in ("save", "against"):
        if getattr(args, option):  # one file cannot serve several notebooks
            print(
                f"repro verify: error: --{option} FILE takes one notebook; with several, "
                "--save without FILE writes each NB.repro.json",
                file=sys.stderr,
            )
            return 2
    missing = [name for name in args.notebooks if not Path(name).is_file()]
    if missing:
        print(f"repro verify: error: no notebook {missing[0]!r}", file=sys.stderr)
        return 2
    return verify_notebooks(
        args.notebooks,
        _settings(args),
        out=sys.stdout,
        quiet=args.quiet,
        as_json=args.json,
        save=args.save == "",
        progress=not args.quiet and not args.json and sys.stderr.isatty(),
    )


def _info(args: argparse.Namespace) -> int:
    from repro import frameworks
    from repro._capture import environment, format_environment

    if args.import_frameworks:
        for fw in frameworks.frameworks():
            with contextlib.suppress(ImportError):  # not installed: reported as such
                importlib.import_module(fw.module)
    env = environment()
    print(json.dumps(env, indent=2, ensure_ascii=False) if args.json else format_environment(env))
    return 0


def _kernel_install(args: argparse.Namespace) -> int:
    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        folder = install_kernel(
            args.name,
            hash_seed=args.hash_seed,
            display_name=args.display_name,
            user=prefix is None,
            prefix=prefix,
        )
    except (OSError, ValueError) as exc:
        print(f"repro: error: could not install kernel {args.name!r}: {exc}", file=sys.stderr)
        return 1
    print(
        f"Installed kernelspec {args.name} in {folder}\n"
        f"  PYTHONHASHSEED={args.hash_seed}, CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE_CONFIG}, "
        f"python {sys.executable}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``repro`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Usage errors exit with status 2 and one line on stderr; a failed install returns 1.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info(args)
    if args.command == "verify" and len(args.notebooks) > 1:
        return _verify_several(args)
    if args.command == "verify":
        return _verify(_one_notebook(args))
    if args.command == "kernel" and args.kernel_command == "install":
        return _kernel_install(args)
    if args.command == "kernel":
        parser.exit(2, "repro kernel: error: choose a command: install (see repro kernel --help)\n")
    parser.exit(2, "repro: error: choose a command: info, kernel, verify (see repro --help)\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
