"""What a cell shows, as a person sees it, without what varies between identical runs.

The one normalisation of outputs, for every scale: ``%%repro --verify`` (the
printed text and ``display()`` bundles of each run) and ``repro verify`` (the
outputs nbclient collected). Streams are compared as the text on the screen:
the chunks of one stream joined (ipykernel flushes them at timing-dependent
points), ``\\r`` and backspace applied as a terminal does (progress lines), and
stdout and stderr apart (their interleaving is the flush timing's too).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from repro._verify.digest import ADDRESS, digest
from repro._verify.markup import IGNORED_MARKUP, normalize_markup

__all__ = [
    "IGNORED",
    "IGNORED_MARKUP",
    "Shown",
    "normalize_bundle",
    "normalize_outputs",
    "normalize_text",
    "render_stream",
]

#: What outputs never compare, as it varies between identical runs: (label, pattern, replacement).
IGNORED: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("object addresses (at 0x...)", ADDRESS, "at 0x…"),
    (
        "repro export timestamps",
        re.compile(r"(# exported |['\"]captured['\"]: ['\"])\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
        r"\1<time>",
    ),
    # A warning raised in a cell names the kernel's file for it, /tmp/ipykernel_<pid>/<hash>.py:
    # the pid is the kernel process's, the hash the cell's code (kept: other code shows).
    (
        "the kernel's pid in its cells' file names",
        re.compile(r"ipykernel_\d+(?=[/\\])"),
        "ipykernel_<pid>",
    ),
    # tqdm's elapsed time, time left and rate: "[00:01<00:02, 3.51it/s]".
    (
        "progress bar timings (tqdm)",
        re.compile(
            r"\[(?:\d+:)?\d\d:\d\d<(?:\d+:)?(?:\d\d:\d\d|\?), *[^\]]*?(?:it|s|B)/(?:s|it)\]"
        ),
        "[<time>]",
    ),
    # IPython's own timing magics: %timeit's mean, spread and loop count, %time's CPU and wall
    # times, and the lines each adds only sometimes (a slow compile, a cached result).
    (
        "timings printed by %time and %timeit",
        re.compile(
            r"[\d.]+ ?(?:ns|[µμu]s|ms|s) ± [\d.]+ ?(?:ns|[µμu]s|ms|s) per loop "
            r"\(mean ± std\. dev\. of [\d,]+ runs?, [\d,]+ loops? each\)"
            r"|^(?:CPU times: user .*|Wall time: .*)$",
            re.M,
        ),
        "<timing>",
    ),
    # logging's time of a record, %(asctime)s in its own form: "2026-12-01 19:13:45,123", a
    # comma before the milliseconds (a datetime a cell prints has a dot, and is compared).
    (
        "logging timestamps (%(asctime)s)",
        re.compile(r"(?<![\d-])\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}(?!\d)"),
        "<logging time>",
    ),
    # memory_profiler's %memit: what the process held, which varies from run to run.
    (
        "memory figures printed by %memit",
        re.compile(r"peak memory: [\d.]+ MiB, increment: -?[\d.]+ MiB"),
        "peak memory: <memory>",
    ),
    (  # lines that only a slow compile or a cached result adds: left out whole
        "timings printed by %time and %timeit",
        re.compile(
            r"^(?:Compiler|Parser) ?(?:time)? *: [\d.]+ ?(?:ns|[µμu]s|ms|s)\n?"
            r"|^The slowest run took [\d.]+ times longer than the fastest\..*\n?",
            re.M,
        ),
        "",
    ),
)

_MARKUP = ("text/html", "application/javascript", "image/svg+xml")

#: tqdm's meter, as its notebook widget's text shows it: "desc:  40%|####  | 4/10 [00:01<...".
_TQDM_METER = re.compile(r"\d+%\|[^\n]*\| *[\d.]+[kMGTPEZY]?/[\d.?]+[kMGTPEZY]? \[")

#: The CSS class that wraps every scikit-learn estimator's HTML diagram (0.23 on).
_SKLEARN_DIAGRAM = "sk-top-container"

#: Terminal colours and cursor codes: how text looks, not what it says.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


#: What a terminal acts on in a stream: an escape sequence (its argument and letter), a
#: carriage return, a backspace, a newline, or a run of plain text.
_TERMINAL = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b|(\r\n|[\r\b\n])|([^\x1b\r\b\n]+)")


def render_stream(text: str) -> str:
    """``text`` as a terminal shows it: ``\\r`` returns to the line's start and later characters
    overwrite it, backspace moves one column left, ``\\r\\n`` is a newline, the cursor moves
    up and down (``ESC[nA``, ``ESC[nB``: tqdm's nested bars) and lines are erased (``ESC[K``);
    colours and other escape sequences are dropped, and trailing spaces, which no one sees.

    Nested progress bars redraw their lines in place at timing-dependent moments; the screen
    they leave is the same each run, the stream of writes is not.
    """
    if "\r" not in text and "\b" not in text and "\x1b" not in text:
        return text
    lines: list[list[str]] = [[]]
    row = col = 0
    for match in _TERMINAL.finditer(text):
        argument, letter, control, plain = match.groups()
        if plain is not None:
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col : col + len(plain)] = plain
            col += len(plain)
        elif control == "\r":
            col = 0
        elif control == "\b":
            col = max(0, col - 1)
        elif control is not None:  # a newline
            row, col = row + 1, 0
            if row == len(lines):
                lines.append([])
        elif letter in ("A", "B"):
            count = int(argument) if argument and argument.isdigit() else 1
            row = max(0, row - count) if letter == "A" else row + count
            lines.extend([] for _ in range(row + 1 - len(lines)))
        elif letter == "K":
            mode = argument or "0"
            line = lines[row]
            if mode == "0":
                del line[col:]
            elif mode == "1":
                line[: col + 1] = " " * min(col + 1, len(line))
            elif mode == "2":
                line.clear()
    return "\n".join("".join(line).rstrip(" ") for line in lines)


def normalize_text(
    text: str, ignored: Counter[str], rules: tuple[tuple[str, re.Pattern[str], str], ...] = IGNORED
) -> str:
    """``text`` without what varies between identical runs (``rules``: :data:`IGNORED`, or
    :data:`IGNORED_MARKUP` for HTML and JavaScript); counts what it replaced."""
    for label, pattern, replacement in rules:
        text, n = pattern.subn(replacement, text)
        if n:
            ignored[label] += n
    return text


def normalize_bundle(data: dict[str, Any], ignored: Counter[str]) -> dict[str, Any]:
    """A display's mime bundle without what varies between identical runs (widget model ids,
    addresses, timestamps; in HTML and JavaScript, the element ids libraries draw).

    A widget's other representations are its static fallbacks, a picture of the live widget
    when it was drawn (repro's panel draws the RNG fingerprints and the kernel's hash seed
    there): what a widget shows lives in the kernel, whose variables are compared, so only
    that a widget was shown is compared here; except a tqdm bar's text, which is what a
    progress line in a stream would be (its label, its count), its timings left out.
    """
    widget = "application/vnd.jupyter.widget-view+json"
    if isinstance(data.get(widget), dict) and len(data) > 1:
        plain = data.get("text/plain")
        plain = "".join(plain) if isinstance(plain, list) else plain
        if isinstance(plain, str) and _TQDM_METER.search(plain):
            # tqdm.auto's bar: its text is the bar as drawn, label and count (the label can
            # hold what the cell computed); its timings are left out below, as in a stream.
            data = {widget: data[widget], "text/plain": plain}
        else:
            ignored["widgets' static fallbacks (text, HTML)"] += 1
            data = {widget: data[widget]}
    html = data.get("text/html")
    if isinstance(html, list):
        html = "".join(html)
    if isinstance(html, str) and _SKLEARN_DIAGRAM in html and "text/plain" in data:
        # scikit-learn's diagram of an estimator: its parameters are the text/plain repr, still
        # compared; since 1.8 it also tabulates fitted attributes, durations among them, which
        # the estimator's variable carries (compared there, without the durations).
        ignored[
            "scikit-learn estimator diagrams (HTML; the estimator is compared as a variable)"
        ] += 1
        data = {k: v for k, v in data.items() if k != "text/html"}
    bundle = {}
    for mime, value in data.items():
        if mime == widget and isinstance(value, dict):
            ignored["widget model ids"] += 1
            value = {k: v for k, v in value.items() if k != "model_id"}
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = normalize_text("".join(value), ignored)
        elif isinstance(value, str):
            value = normalize_text(value, ignored)
        if isinstance(value, str):
            # A display's markup always; markup held in its text (a list of HTML strings).
            value = normalize_markup(value, ignored, force=mime in _MARKUP)
        bundle[mime] = value
    return bundle


@dataclass(frozen=True)
class Shown:
    """A cell's outputs as compared: each stream's text, the rich outputs, the error."""

    #: stream name (``stdout``, ``stderr``) → the text on the screen
    streams: dict[str, str] = field(default_factory=dict)
    #: display_data and execute_result bundles, in order
    displays: tuple[dict[str, Any], ...] = ()
    #: ``"ZeroDivisionError: division by zero"`` if the cell raised
    error: str | None = None

    @property
    def digest(self) -> str:
        """One digest of everything shown."""
        return digest([self.streams, list(self.displays), self.error])

    def text(self) -> str:
        """What a person reads: the streams, then each display's text/plain, then the error."""
        parts = [self.streams[name] for name in sorted(self.streams)]
        parts += [d["text/plain"] for d in self.displays if isinstance(d.get("text/plain"), str)]
        if self.error:
            parts.append(self.error)
        return "".join(parts)


def normalize_outputs(outputs: list[dict[str, Any]], ignored: Counter[str]) -> Shown:
    """nbformat outputs as :class:`Shown`, normalised; counts each thing it left out."""
    streams: dict[str, list[str]] = {}
    displays = []
    error = None
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            streams.setdefault(out.get("name", "stdout"), []).append(
                "".join(text) if isinstance(text, list) else text
            )
        elif kind in ("execute_result", "display_data"):
            displays.append(normalize_bundle(dict(out.get("data", {})), ignored))
        elif kind == "error":
            evalue = _ANSI.sub("", str(out.get("evalue", "")))
            error = f"{out.get('ename')}: {normalize_text(evalue, ignored)}"
    joined = {
        # Markup a cell prints (a Styler's or a figure's HTML) without its drawn element ids.
        name: normalize_markup(normalize_text(render_stream("".join(parts)), ignored), ignored)
        for name, parts in streams.items()
    }
    return Shown(joined, tuple(displays), error)
