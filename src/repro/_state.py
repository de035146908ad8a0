"""The kernel's reproducibility as an immutable value: what the magic prints,
the panel draws, the export serialises and the tests compare."""

from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

from repro import _environ, _ranks
from repro import frameworks as _frameworks
from repro._kernel import kernel_display_name
from repro._seed import SEED_LIMIT
from repro._session import current, history, lock

__all__ = [
    "SETTING_LABELS",
    "STATUS",
    "Source",
    "SourceRow",
    "State",
    "code_html",
    "hash_seed",
    "hash_text",
    "hash_warning",
    "process_kind",
    "state",
]

#: Backend flags in display order, with the name a PyTorch user knows them by.
SETTING_LABELS = {
    "cudnn_available": "cuDNN available",
    "cudnn_version": "cuDNN version",
    "cudnn_enabled": "cudnn.enabled",
    "cudnn_deterministic": "cudnn.deterministic",
    "cudnn_benchmark": "cudnn.benchmark",
    "cudnn_tf32": "cudnn.allow_tf32",
    "matmul_tf32": "cuda.matmul.allow_tf32",
    "float32_matmul_precision": "float32 matmul precision",
    "deterministic_algorithms": "deterministic algorithms",
    "fill_uninitialized_memory": "fill uninitialized memory",
    "cuda_initialized": "CUDA initialised",
}


@cache
def _initial_environ() -> dict[str, str]:
    # /proc/self/environ is the environment the process started with: assignments to
    # os.environ (like the guide's os.environ['PYTHONHASHSEED'] = ...) do not show there.
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(_IMPORT_ENVIRON)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


_IMPORT_ENVIRON = {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "")}


def hash_seed() -> int | None:
    """The ``str`` hash seed this interpreter started with, or ``None`` if hashing is randomized.

    It is fixed for the life of the process: setting ``PYTHONHASHSEED`` now only
    affects child processes.
    """
    if not sys.flags.hash_randomization:
        return 0
    raw = _initial_environ().get("PYTHONHASHSEED", "")
    if raw.isdigit() and int(raw) < SEED_LIMIT:
        return int(raw)
    return None


def hash_text(seed: int | None, process: str | None = None) -> str:
    """How ``str`` hashing stands, for people: ``fixed (PYTHONHASHSEED=0)`` or ``randomized``
    (``randomized in this kernel`` when the kind of process is known, see :func:`process_kind`).

    The state's row, ``repro info`` and a config's differences all say it in these words.
    """
    if seed is not None:
        return f"fixed (PYTHONHASHSEED={seed})"
    return "randomized" if process is None else f"randomized in this {_PROCESS_WORDS[process]}"


@dataclass(frozen=True)
class Source:
    """One stream of random numbers, as seen right now."""

    framework: str
    stream: str
    imported: bool
    seed: int | None
    fingerprint: str | None
    #: True if the state differs from right after seeding; None if it was never seeded.
    moved: bool | None


class SourceRow(NamedTuple):
    """One source of randomness as people read it (every field is display text)."""

    stream: str
    seed: str
    fingerprint: str
    status: str


@dataclass(frozen=True)
class State:
    """The kernel's state, immutable: seed, profile, RNG fingerprints, backend flags, warnings.

    (A :class:`repro._session.Snapshot` is something else: what ``scope`` saves to restore.)
    """

    seed: int | None
    profile: str | None
    overrides: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    sources: tuple[Source, ...] = ()
    settings: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    environ: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    hash_seed: int | None = None
    warnings: tuple[str, ...] = ()
    #: the last verify verdict line, or None if nothing was verified in this session
    last_verify: str | None = None
    #: the rank the streams were derived for, else the process group's (see repro._ranks)
    rank: int | None = None
    #: the size of the torch.distributed process group, once one is initialised
    world_size: int | None = None
    #: what runs this code: ``kernel`` (Jupyter), ``ipython`` (a terminal) or ``script``;
    #: the fix for randomized hashing differs (a kernelspec, or a variable on the command line)
    process: str = "script"

    @property
    def hash_fixed(self) -> bool:
        """Whether ``str`` hashing (set iteration order, ``hash()``) is the same every run."""
        return self.hash_seed is not None

    @property
    def reproducible(self) -> bool:
        """Seeded, and nothing in :attr:`warnings`."""
        return self.seed is not None and not self.warnings

    @property
    def profile_label(self) -> str:
        """The profile's name with any overrides, e.g. ``debug (deterministic_algorithms=warn)``."""
        if self.profile is None:
            return "none (backend flags untouched)"
        extra = ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.profile} ({extra})" if extra else self.profile

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready) for the export and tools."""
        return {
            "seed": self.seed,
            "profile": self.profile,
            "overrides": dict(self.overrides),
            "sources": [
                {
                    "framework": s.framework,
                    "stream": s.stream,
                    "imported": s.imported,
                    "seed": s.seed,
                    "fingerprint": s.fingerprint,
                    "moved": s.moved,
                }
                for s in self.sources
            ],
            "settings": dict(self.settings),
            "environ": dict(self.environ),
            "hash_seed": self.hash_seed,
            "warnings": list(self.warnings),
            "last_verify": self.last_verify,
            "rank": self.rank,
            "world_size": self.world_size,
            "process": self.process,
        }

    def source_rows(self) -> tuple[SourceRow, ...]:
        """One row per stream of random numbers: (stream, seed, fingerprint, status).

        The status is a key of :data:`STATUS`: ``fresh``, ``moved``, ``not seeded``,
        ``seeded on import`` or ``not imported``.
        """
        rows = []
        for s in self.sources:
            if not s.imported:
                status = "seeded on import" if self.seed is not None else "not imported"
                rows.append(SourceRow(s.stream, "–", "–", status))
                continue
            status = {None: "not seeded", True: "moved", False: "fresh"}[s.moved]
            seed = "–" if s.seed is None else str(s.seed)
            rows.append(SourceRow(s.stream, seed, s.fingerprint or "–", status))
        return tuple(rows)

    def setting_rows(self) -> tuple[tuple[str, str], ...]:
        """The backend settings as (label, value), in the order a PyTorch user reads them.

        cuDNN's availability and version share a row; ``CUBLAS_WORKSPACE_CONFIG`` and
        whether ``str`` hashing is fixed in this kernel (or IPython session, or process) come last.
        """
        settings = dict(self.settings)
        rows: list[tuple[str, str]] = []
        if "cudnn_available" in settings:
            available, version = settings["cudnn_available"], settings.get("cudnn_version")
            rows.append(("cuDNN", f"available, v{version}" if available else "not available"))
        for key, value in settings.items():
            if key not in _FOLDED:
                rows.append((SETTING_LABELS.get(key, key), "–" if value is None else str(value)))
        if not settings:
            rows.append(("torch flags", "set when torch is imported"))
        for name, value in self.environ.items():
            rows.append((name, "unset" if value is None else value))
        rows.append(("str hashing", hash_text(self.hash_seed, self.process)))
        return tuple(rows)

    @property
    def verdict(self) -> str:
        """``✓ reproducible``, ``⚠ 2 warnings`` or ``not seeded``."""
        if self.warnings:
            n = len(self.warnings)
            return f"⚠ {n} warning{'s' if n != 1 else ''}"
        return "✓ reproducible" if self.seed is not None else "not seeded"

    def summary(self, sources: bool = False) -> str:
        """One line: seed, profile, verdict (``seed 42 · profile debug · ✓ reproducible``).

        With ``sources``, also which streams are seeded and which will be at their import.
        """
        seed, profile, verdict, rank = self._summary_parts()
        text = f"seed {seed} · profile {profile} · {verdict}{rank}"
        if sources:
            rows = self.source_rows()
            seeded = [r.stream for r in rows if r.status in ("fresh", "moved")]
            later = [r.stream for r in rows if r.status == "seeded on import"]
            if seeded:
                text += " · seeded " + ", ".join(seeded)
            if later:
                text += " · on import: " + ", ".join(later)
        return text

    def _summary_parts(self) -> tuple[str, str, str, str]:
        """The summary line's parts (seed, profile, verdict, rank), which the text and the
        HTML head both write."""
        seed = "none" if self.seed is None else str(self.seed)
        rank = ""
        if self.rank is not None:
            rank = f" · rank {self.rank}"
            if self.world_size is not None:
                rank += f" of {self.world_size}"
        return seed, self.profile_label, self.verdict, rank

    def __str__(self) -> str:
        lines = [f"repro: {self.summary()}", "sources:"]
        for stream, seed, fp, status in self.source_rows():
            lines.append(f"  {stream:<16} seed {seed:<11} {fp:<9} {status}")
        lines.append("settings:")
        lines.extend(f"  {label:<27} {value}" for label, value in self.setting_rows())
        if self.last_verify:
            lines.append(f"last verify: {self.last_verify}")
        if self.warnings:
            lines.append("warnings:")
            lines.extend(f"  ! {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return (
            f"{CSS}<div class='repro-panel'>{head_html(self)}"
            f"<div class='repro-tables' style='display:flex'>{sources_html(self)}"
            f"{settings_html(self)}</div>{warnings_html(self)}</div>"
        )


#: A stream's status, for people: word -> what it means (the panel's tooltip).
STATUS = {
    "fresh": "untouched since seeding: the next draw is the seed's first",
    "moved": "random numbers were drawn since seeding",
    "not seeded": "imported, but no seed was applied yet",
    "seeded on import": "not imported yet; repro seeds it when it is imported",
    "not imported": "not imported yet",
}

#: Settings shown in one row together (cuDNN's availability and version).
_FOLDED = ("cudnn_available", "cudnn_version")


# --- the HTML form (the panel draws the same fragments; the CSS uses JupyterLab's theme) ---

CSS = """<style>
.repro-panel { font-family: var(--jp-ui-font-family, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px); color: var(--jp-ui-font-color1, inherit);
  background: var(--jp-layout-color1, transparent);
  border: 1px solid var(--jp-border-color2, #ccc); border-radius: 4px;
  padding: 6px 10px 8px; max-width: 940px; box-sizing: border-box; }
.repro-panel .repro-head { display: flex; align-items: baseline; gap: 10px; }
.repro-panel .repro-title { font-weight: 600; font-size: var(--jp-ui-font-size2, 14px); }
.repro-panel .repro-summary { color: var(--jp-ui-font-color2, #555); }
.repro-panel .repro-verify { color: var(--jp-ui-font-color2, #555); margin: 1px 0 2px; }
.repro-panel .repro-ok { color: var(--jp-success-color1, #2e7d32); }
.repro-panel .repro-bad { color: var(--jp-warn-color0, #b45309); font-weight: 600; }
.repro-panel .repro-label { color: var(--jp-ui-font-color2, #555); min-width: 52px; }
.repro-panel .repro-hint { color: var(--jp-ui-font-color2, #555); padding-left: 60px;
  font-size: var(--jp-ui-font-size0, 11px); margin: -2px 0 4px; }
.repro-panel table { border-collapse: collapse; }
.repro-panel th { text-align: left; font-weight: 600; color: var(--jp-ui-font-color2, #555);
  border-bottom: 1px solid var(--jp-border-color2, #ccc); padding: 2px 12px 2px 0; }
.repro-panel td { padding: 1px 12px 1px 0; vertical-align: top; white-space: nowrap;
  text-align: left; }
.repro-panel h4 { margin: 4px 0 2px; font-size: var(--jp-ui-font-size1, 13px);
  font-weight: 600; color: var(--jp-ui-font-color1, inherit); }
.repro-panel code, .repro-panel pre { font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 12px); }
.repro-panel .repro-moved { color: var(--jp-ui-font-color2, #555); }
.repro-panel .repro-fresh { color: var(--jp-success-color1, #2e7d32); }
.repro-panel .repro-unseeded { color: var(--jp-warn-color0, #b45309); }
.repro-panel .repro-muted { color: var(--jp-ui-font-color3, #888); }
.repro-panel .repro-tables { gap: 24px; flex-wrap: wrap; align-items: flex-start; }
/* room for a ten-digit seed whatever the seed: a new seed must not move the layout */
.repro-panel table.repro-sources td:nth-child(2) code { display: inline-block; min-width: 10ch; }
.repro-panel ul.repro-warnings code { color: var(--jp-content-font-color1, inherit);
  background: var(--jp-layout-color2, #eee); padding: 0 3px; border-radius: 2px;
  white-space: nowrap; }
.repro-panel ul.repro-warnings { margin: 4px 0 2px; padding-left: 18px;
  color: var(--jp-warn-color0, #b45309); white-space: normal; }
.repro-panel ul.repro-warnings li { margin: 1px 0; }
.repro-panel .repro-status { min-height: 1.3em; color: var(--jp-ui-font-color2, #555); }
.repro-panel .repro-error { color: var(--jp-error-color1, #c62828); white-space: pre-wrap; }
.repro-panel pre.repro-code { max-height: 220px; overflow: auto; margin: 4px 0 0;
  padding: 6px 8px; background: var(--jp-cell-editor-background, #f7f7f7);
  border: 1px solid var(--jp-border-color2, #ccc); border-radius: 2px;
  color: var(--jp-content-font-color1, inherit); user-select: text; }
</style>"""

_STATUS_CLASS = {
    "fresh": "repro-fresh",
    "moved": "repro-moved",
    "not seeded": "repro-unseeded",
    "seeded on import": "repro-muted",
    "not imported": "repro-muted",
}


def head_html(st: State) -> str:
    """The title line: ``repro``, seed, profile and the verdict, coloured."""
    css = "repro-bad" if st.warnings else ("repro-ok" if st.seed is not None else "repro-summary")
    seed, profile, verdict, rank = (html.escape(part) for part in st._summary_parts())
    # The space: where <style> is dropped (a notebook opened untrusted), it still reads
    # "repro seed 42", not "reproseed 42"; in the flex line it draws nothing.
    return (
        "<div class='repro-head'><span class='repro-title'>repro</span> "
        f"<span class='repro-summary'>seed {seed} · profile {profile} · "
        f"<span class='{css}'>{verdict}</span>{rank}</span></div>"
        + (
            f"<div class='repro-verify'>last verify: {html.escape(st.last_verify)}</div>"
            if st.last_verify
            else ""
        )
    )


def sources_html(st: State) -> str:
    """The sources of randomness as a table, each status with its meaning as a tooltip."""
    e = html.escape
    body = "".join(
        f"<tr><td>{e(stream)}</td><td><code>{e(seed)}</code></td>"
        f"<td><code class='repro-fingerprint'>{e(fp)}</code></td>"
        f"<td class='{_STATUS_CLASS[status]}' title='{e(STATUS[status])}'>{e(status)}</td></tr>"
        for stream, seed, fp, status in st.source_rows()
    )
    return (
        "<div><h4>Sources of randomness</h4><table class='repro-sources'>"
        "<tr><th>source</th><th>seed</th><th>fingerprint</th><th>since seeding</th></tr>"
        f"{body}</table></div>"
    )


def settings_html(st: State) -> str:
    """The backend settings as a table."""
    e = html.escape
    body = "".join(
        f"<tr><td>{e(label)}</td><td><code>{e(value)}</code></td></tr>"
        for label, value in st.setting_rows()
    )
    return f"<div><h4>Backend settings</h4><table class='repro-settings'>{body}</table></div>"


def warnings_html(st: State) -> str:
    """The warnings, each with its fix, as a list (empty without warnings)."""
    if not st.warnings:
        return ""
    items = "".join(f"<li>{code_html(w)}</li>" for w in st.warnings)
    return f"<ul class='repro-warnings'>{items}</ul>"


def code_html(text: str) -> str:
    """``text`` as HTML, its `backticked` spans (code in repro's messages) as ``<code>``.

    The text forms keep the backticks, which mark code in a terminal; the HTML shows code
    as code. A lone backtick stays as it is.
    """
    parts = text.split("`")
    if len(parts) % 2 == 0:  # unbalanced: not markup
        return html.escape(text)
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part)
        for i, part in enumerate(parts)
    )


def _warnings(
    settings: dict[str, Any], environ: dict[str, str | None], fixed: bool, process: str
) -> list[str]:
    out = []
    if settings.get("cudnn_benchmark") and settings.get("cudnn_deterministic"):
        out.append(
            "cudnn.benchmark=True overrides cudnn.deterministic: autotuning may pick a "
            "different algorithm each run. Fix: %repro --profile final (benchmark off)."
        )
    algorithms = settings.get("deterministic_algorithms", "off")
    if algorithms != "off" and not environ.get("CUBLAS_WORKSPACE_CONFIG"):
        out.append(
            "deterministic algorithms are on but CUBLAS_WORKSPACE_CONFIG is unset, so cuBLAS "
            "on CUDA may raise or differ. Fix: set it to :4096:8 before the first CUDA call."
        )
    if not fixed:
        out.append(hash_warning(process))
    return out


#: How each kind of process is named in the advice about its hashing.
_PROCESS_WORDS = {"kernel": "kernel", "ipython": "IPython session", "script": "process"}


def process_kind() -> str:
    """``kernel`` inside a Jupyter kernel, ``ipython`` in another IPython shell, else ``script``.

    Never imports IPython: a script that did not import it is a script.
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    if shell is None:
        return "script"
    return "kernel" if getattr(shell, "kernel", None) is not None else "ipython"


def hash_warning(process: str) -> str:
    """The warning about randomized ``str`` hashing, with the fix for this kind of process.

    A running interpreter cannot change its hash seed: a kernel is replaced by one whose
    kernelspec sets it (``%repro kernel install``, one step), a terminal or a script is
    started again with ``PYTHONHASHSEED=0`` in front.
    """
    what = _PROCESS_WORDS.get(process, "process")
    text = (
        f"str hashing is randomized in this {what} (PYTHONHASHSEED was not set when it "
        "started): set iteration order and hash() differ between runs. Fix: "
    )
    if process == "kernel":
        return text + (
            f'`%repro kernel install`, then switch to the kernel "{kernel_display_name(0)}" '
            "(Kernel → Change Kernel…) and run the notebook again."
        )
    if process == "ipython":
        return text + "start IPython with it set: `PYTHONHASHSEED=0 ipython`."
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0].endswith(".py") else ""
    command = f"PYTHONHASHSEED=0 python {script or 'script.py'}"
    return text + f"start the process with it set: `{command}`."


def state() -> State:
    """The kernel's state now. Never imports a framework and never initialises CUDA."""
    with lock:
        session = current()
        sources: list[Source] = []
        settings: dict[str, Any] = {}
        for fw in _frameworks.frameworks():
            if not fw.imported:
                sources.append(Source(fw.name, fw.label, False, None, None, None))
                continue
            seed = session.seeds.get(fw.name)
            for stream, fp in fw.fingerprints().items():
                mark = session.marks.get(stream)
                moved = None if seed is None or mark is None else mark != fp
                sources.append(Source(fw.name, stream, True, seed, fp, moved))
            settings.update(fw.read_settings())
        environ = {name: os.environ.get(name) for name in _environ.SHOWN}
        seed_fixed = hash_seed()
        process = process_kind()
        warnings = _warnings(settings, environ, seed_fixed is not None, process)
        warnings += [n for n in session.notes if n not in warnings]
        rank, world_size = _ranks.shown_rank(session.rank)
        return State(
            seed=session.seed,
            profile=session.profile,
            overrides=MappingProxyType(dict(session.overrides)),
            sources=tuple(sources),
            settings=MappingProxyType(settings),
            environ=MappingProxyType(environ),
            hash_seed=seed_fixed,
            warnings=tuple(warnings),
            last_verify=history().last_verify,
            rank=rank,
            world_size=world_size,
            process=process,
        )
