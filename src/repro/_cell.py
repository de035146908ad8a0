"""A ``%%repro`` cell's code, run like a cell of its own (the magic, and verify's extra runs)."""

from __future__ import annotations

import ast
import contextlib
import sys
from typing import Any

__all__ = ["parse", "run"]


def parse(shell: Any, line: str, cell: str) -> tuple[str, ast.Module, ast.Expr | None]:
    """The cell after IPython's transforms: (its filename in IPython's cache, the module,
    the last expression split off so that it can be displayed), with the cell's line numbers."""
    shown = f"%%repro {line}\n{cell}"
    filename = shell.compile.cache(shown, shell.execution_count, raw_code=shown)
    # One leading newline keeps line numbers equal to the cell's (line 1 is %%repro).
    source = "\n" + shell.transform_cell(cell)
    tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    return filename, tree, last


def run(shell: Any, line: str, cell: str) -> None:
    """Execute ``cell`` like a cell of its own, without firing the cell events again.

    A nested ``shell.run_cell`` would trigger pre/post_run_cell a second time and
    swallow the error status; here the code runs in the user namespace, the last
    expression is displayed, and an exception propagates with a traceback that
    shows only the user's lines (the outer cell then ends in error, as a plain cell would).
    """
    __tracebackhide__ = True
    filename, tree, last = parse(shell, line, cell)
    try:
        exec(shell.compile(tree, filename, "exec"), shell.user_global_ns, shell.user_ns)
        if last is not None:
            single = ast.Interactive(body=[last])
            exec(shell.compile(single, filename, "single"), shell.user_global_ns, shell.user_ns)
    except (Exception, KeyboardInterrupt) as exc:
        if hasattr(exc, "_render_traceback_"):
            raise  # a nested %%repro already cut its traceback to the user's lines
        etype, value, tb = sys.exc_info()
        # Start at the user's frame: the lines above are repro's, not theirs.
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb.tb_next or tb, tb_offset=0)
        # Exceptions without a __dict__ keep IPython's own rendering.
        with contextlib.suppress(AttributeError):
            exc._render_traceback_ = lambda: stb  # type: ignore[attr-defined]
        raise
