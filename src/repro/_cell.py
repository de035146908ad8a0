"""A ``%%repro`` cell's code, run like a cell of its own (the magic, and verify's extra runs)."""

from __future__ import annotations

import ast
import contextlib
import sys
from typing import Any

__all__ = ["parse", "prompt_number", "run"]


def prompt_number(shell: Any) -> int:
    """The prompt number of the cell running now (``In [N]``), on every IPython release.

    The counter alone cannot say it: IPython 8 increments ``execution_count`` after a cell
    ran, 9.x before it runs, and neither when history is off. The outer cell's code was
    cached under its number, so the nearest caller frame that IPython's compiler names
    ``In[N]`` gives it; outside a cell (no such frame), the counter.
    """
    frame = sys._getframe(1)
    while frame is not None:
        label = shell.compile.format_code_name(frame.f_code.co_filename)
        if label is not None and label[1].startswith("In["):
            return int(label[1][3:-1])
        frame = frame.f_back
    return shell.execution_count


def parse(shell: Any, line: str, cell: str) -> tuple[str, ast.Module, ast.Expr | None]:
    """The cell after IPython's transforms: (its filename in IPython's cache, the module,
    the last expression split off so that it can be displayed), with the cell's line numbers.
    A cell that ends in ``;`` displays nothing, as IPython's cells do: its last expression
    stays in the module."""
    shown = f"%%repro {line}\n{cell}"
    filename = shell.compile.cache(shown, prompt_number(shell), raw_code=shown)
    # One leading newline keeps line numbers equal to the cell's (line 1 is %%repro).
    source = "\n" + shell.transform_cell(cell)
    tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
    from IPython.core.displayhook import DisplayHook

    quiet = DisplayHook.semicolon_at_end_of_expression(source)
    shown_last = tree.body and isinstance(tree.body[-1], ast.Expr) and not quiet
    last = tree.body.pop() if shown_last else None
    return filename, tree, last


def run(shell: Any, line: str, cell: str, namespace: dict[str, Any] | None = None) -> Any:
    """Execute ``cell`` like a cell of its own, without firing the cell events again.

    A nested ``shell.run_cell`` would trigger pre/post_run_cell a second time and
    swallow the error status; here the code runs in the user namespace, the last
    expression is displayed, and an exception propagates with a traceback that
    shows only the user's lines (the outer cell then ends in error, as a plain cell would).
    Returns the last expression's value (None if the cell ends otherwise).

    With ``namespace`` (verify's extra runs) the code runs there instead, and the
    value is returned without being displayed.
    """
    __tracebackhide__ = True
    filename, tree, last = parse(shell, line, cell)
    scope = (shell.user_global_ns, shell.user_ns) if namespace is None else (namespace, namespace)
    try:
        exec(shell.compile(tree, filename, "exec"), *scope)
        if last is None:
            return None
        expression = ast.copy_location(ast.Expression(body=last.value), last)
        value = eval(shell.compile(expression, filename, "eval"), *scope)
        if namespace is None and value is not None:
            sys.displayhook(value)  # what "single" mode does with an expression statement
        return value
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
