"""``%repro`` and ``%%repro``: parse the line, call the API, show the result."""

from __future__ import annotations

import ast
import contextlib
import shlex
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

import repro
from repro import _diagnostics, _session, _verify
from repro._profiles import ALGORITHMS

__all__ = ["ReproMagics", "load", "unload"]

SUBCOMMANDS = ("panel", "export", "check", "profiles")


def _settings_args(args: Any) -> tuple[Any, str | None, dict[str, Any]]:
    """Turn parsed flags into (seed, profile, overrides), or raise UsageError."""
    if args.deterministic and args.profile and args.profile != "debug":
        raise UsageError("--deterministic means --profile debug; give one or the other")
    profile = "debug" if args.deterministic else args.profile
    overrides: dict[str, Any] = {}
    if args.warn_only and args.algorithms and args.algorithms != "warn":
        raise UsageError("--warn-only means --algorithms warn; give one or the other")
    if args.warn_only or args.algorithms:
        overrides["deterministic_algorithms"] = "warn" if args.warn_only else args.algorithms
    seed: Any = None
    if args.seed is not None:
        if args.seed == "random":
            seed = _session.fresh_seed()
        else:
            try:
                seed = int(args.seed, 0)
            except ValueError:
                raise UsageError(
                    "seed must be an integer with 0 <= seed < 2**32, or 'random'; "
                    f"got {args.seed!r}"
                ) from None
    return seed, profile, overrides


def _usage(exc: Exception) -> UsageError:
    return UsageError(str(exc).removeprefix("repro: "))


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param takes key=value, got {pair!r}")
        try:
            params[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
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
        args = parse_argstring(self.repro, line)
        if args.keep:
            raise UsageError("--keep is for the %%repro cell magic")
        if args.verify is not None:
            raise UsageError("--verify is for the %%repro cell magic")
        seed, profile, overrides = _settings_args(args)
        if seed is None and profile is None and not overrides:
            return repro.state()
        try:
            repro.setup(seed, profile, **overrides)
        except (ValueError, TypeError) as exc:
            raise _usage(exc) from None
        if not args.quiet:
            print(_summary())
        return None

    def _subcommand(self, name: str, rest: str) -> Any:
        if name == "profiles":
            if rest.strip():
                raise UsageError("%repro profiles takes no arguments")
            return _profiles_table()
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
        words = shlex.split(rest)
        pairs: list[str] = []
        while words:
            word = words.pop(0)
            if word in ("--param", "-P") and words:
                pairs.append(words.pop(0))
            elif word.startswith("--param="):
                pairs.append(word.split("=", 1)[1])
            else:
                raise UsageError(f"%repro export takes --param key=value ..., got {word!r}")
        params = _parse_params(pairs)
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
        args = parse_argstring(self.repro, line)
        seed, profile, overrides = _settings_args(args)
        if seed is None and repro.state().seed is None:
            seed = _session.fresh_seed()
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
                )
            except _verify.ArgumentError as exc:
                raise _usage(exc) from None
            print(report)
            return
        try:
            if args.keep:
                repro.setup(seed, profile, **overrides)
                context: Any = _nullcontext()
            else:
                context = repro.scope(seed, profile, **overrides)
        except (ValueError, TypeError) as exc:
            raise _usage(exc) from None
        with context, _diagnostics.listing_nondeterministic_ops():
            _run_cell(self.shell, line, cell)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _run_cell(shell: Any, line: str, cell: str) -> None:
    """Execute ``cell`` like a cell of its own, without firing the cell events again.

    A nested ``shell.run_cell`` would trigger pre/post_run_cell a second time and
    swallow the error status; here the code runs in the user namespace, the last
    expression is displayed, and an exception propagates with a traceback that
    shows only the user's lines (the outer cell then ends in error, as a plain cell would).
    """
    __tracebackhide__ = True
    shown = f"%%repro {line}\n{cell}"
    filename = shell.compile.cache(shown, shell.execution_count, raw_code=shown)
    # One leading newline keeps line numbers equal to the cell's (line 1 is %%repro).
    source = "\n" + shell.transform_cell(cell)
    tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    try:
        exec(shell.compile(tree, filename, "exec"), shell.user_global_ns, shell.user_ns)
        if last is not None:
            single = ast.Interactive(body=[last])
            exec(shell.compile(single, filename, "single"), shell.user_global_ns, shell.user_ns)
    except Exception as exc:
        etype, value, tb = sys.exc_info()
        # Start at the user's frame: the lines above are repro's, not theirs.
        stb = shell.InteractiveTB.structured_traceback(
            etype, value, tb.tb_next or tb, tb_offset=0
        )
        # Exceptions without a __dict__ keep IPython's own rendering.
        with contextlib.suppress(AttributeError):
            exc._render_traceback_ = lambda: stb  # type: ignore[attr-defined]
        raise


def _summary() -> str:
    st = repro.state()
    seeded = [s.stream for s in st.sources if s.imported and s.seed is not None]
    later = sorted({s.framework for s in st.sources if not s.imported})
    parts = [f"repro: seed {st.seed}", f"profile {st.profile_label}"]
    if seeded:
        parts.append("seeded " + ", ".join(seeded))
    if later and st.seed is not None:
        parts.append("on import: " + ", ".join(later))
    text = " · ".join(parts)
    if not st.hash_fixed:
        text += "\n      str hashing is randomized in this kernel: see %repro for the fix"
    return text


class _Table:
    def __init__(self, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
        self.rows, self.header = rows, header

    def __repr__(self) -> str:
        table = [self.header, *self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join(fmt.format(*r) for r in table)

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>"
            + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r)
            + "</tr>"
            for r in self.rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"


def _profiles_table() -> _Table:
    current = repro.state().profile
    rows = []
    for p in repro.profiles():
        s = p.settings
        rows.append(
            (
                ("● " if p.name == current else "  ") + p.name,
                p.meant_for,
                p.trade,
                f"deterministic={s.cudnn_deterministic} benchmark={s.cudnn_benchmark} "
                f"algorithms={s.deterministic_algorithms} tf32={s.matmul_tf32}/{s.cudnn_tf32}",
            )
        )
    return _Table(rows, ("profile", "meant for", "trade", "flags"))


def load(shell: Any) -> None:
    """Register the magics on ``shell`` (idempotent)."""
    shell.register_magics(ReproMagics)
    _diagnostics.register(shell)


def unload(shell: Any) -> None:
    """Remove the magics and any panel callbacks from ``shell``."""
    _diagnostics.unregister(shell)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("repro", None)
    panel = sys.modules.get("repro._panel")
    if panel is not None and hasattr(panel, "unload"):
        panel.unload(shell)
