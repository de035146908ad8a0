"""The live panel: ``%repro panel`` or ``repro.panel()``.

A thin shell over the core: it reads :func:`repro.state` and calls
:func:`repro.seed` / :func:`repro.use_profile`; it keeps no state of its own
beyond what it last drew. The pure part (what the rows say) is plain functions
on a :class:`repro.State`; :class:`Panel` is the ipywidgets plumbing.

It stays true as cells run: one ``post_run_cell`` callback per kernel refreshes
every live panel, and each panel subscribes to the session, so a change made
by the API, a magic or another panel shows at once. A refresh takes a new
state and redraws only if it differs from the one last drawn.

Export inserts the config cell (:func:`repro.config_cell`) below the panel's
cell through ipylab's ``JupyterFrontEnd`` (JupyterLab 4, Notebook 7); where no
such bridge answers, the panel shows the cell's code ready to copy instead.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets

from repro import _extension, _session
from repro._profiles import Profile, profiles
from repro._seed import parse_seed
from repro._state import CSS, State, head_html, settings_html, sources_html, state, warnings_html

__all__ = ["Panel", "panel", "profile_hint", "snapshot_html"]


def profile_hint(profile: Profile | None) -> str:
    """What a profile is meant for and what it trades, in one line."""
    if profile is None:
        return "no profile: torch's backend flags are left as they are"
    trade = f" · {profile.trade}" if profile.trade else ""
    return f"{profile.name}: {profile.meant_for}{trade}"


# --- the export bridge --------------------------------------------------------------


class _Bridge:
    """ipylab's ``JupyterFrontEnd``: runs JupyterLab commands from the kernel.

    Created with the first panel, so that the frontend has answered (``lab_ready``)
    by the time someone clicks export; a frontend without ipylab never answers,
    and the panel falls back to showing the code.
    """

    def __init__(self) -> None:
        from ipylab import JupyterFrontEnd

        self.ready = False
        self.app = JupyterFrontEnd()
        self.app.on_ready(self._on_ready)

    def _on_ready(self) -> None:
        self.ready = True

    def insert_below(self, source: str) -> None:
        """Insert a new cell below the active cell of the current notebook, holding ``source``.

        Clicking a button in a cell's output makes that cell the active one, so
        from the panel's button this is the panel's cell. The new cell is empty
        when ``replace-selection`` runs, so no existing cell is ever changed.
        """
        self.app.commands.execute("notebook:insert-cell-below")
        self.app.commands.execute("notebook:replace-selection", {"text": source})

    def close(self) -> None:
        """Close the frontend widget and the widgets it made (commands, shell, sessions, ...)."""
        for name in ("commands", "shell", "sessions", "menu", "toolbar"):
            child = getattr(self.app, name, None)
            if isinstance(child, widgets.Widget):
                child.close()
        self.app.close()


def _make_bridge() -> _Bridge | None:
    try:
        return _Bridge()
    except ImportError:  # ipylab is the optional extra jupyter-repro[lab]
        return None


# --- the widget ---------------------------------------------------------------------


class Panel(widgets.VBox):
    """The reproducibility panel. Create it with :func:`panel`.

    Its controls are attributes, so that code and tests can drive it like a
    person would: ``seed_text``, ``apply_button``, ``random_button``,
    ``profile_buttons``, ``export_button``, ``kernel_button``; and what it shows: ``header``,
    ``hint``, ``sources``, ``settings``, ``warnings``, ``status``, ``code``.
    """

    def __init__(self, bridge: _Bridge | None = None) -> None:
        self._bridge = bridge
        self._drawn: tuple[Any, ...] | None = None
        self._drawn_seed: int | None = None
        self._syncing = False
        self._closed = False

        self.header = widgets.HTML()
        self.seed_text = widgets.Text(
            placeholder="none",
            description="seed",
            layout=widgets.Layout(width="180px"),
            style={"description_width": "52px"},
        )
        self.apply_button = widgets.Button(
            description="Apply", tooltip="seed Python, NumPy and torch with this seed"
        )
        self.random_button = widgets.Button(
            description="New random seed", tooltip="draw a fresh seed from the OS and apply it"
        )
        for button in (self.apply_button, self.random_button):
            button.layout = widgets.Layout(width="auto")
        self.profile_buttons = widgets.ToggleButtons(
            options=[], value=None, description="profile", style={"description_width": "52px"}
        )
        self.hint = widgets.HTML()
        self.sources = widgets.HTML()
        self.settings = widgets.HTML()
        self.warnings = widgets.HTML()
        self.export_button = widgets.Button(
            description="Export config cell",
            icon="file-export",
            tooltip="insert a cell below that records and re-applies this run (repro.config_cell)",
            # never squeezed by a long status line beside it
            layout=widgets.Layout(width="auto", flex="0 0 auto"),
        )
        self.status = widgets.HTML()
        self.code = widgets.HTML()
        # The fix for randomized hashing, one click from its warning (shown only then).
        self.kernel_button = widgets.Button(
            description="Install a kernel with fixed hashing",
            icon="wrench",
            tooltip="%repro kernel install: a kernelspec for this Python with PYTHONHASHSEED=0",
            layout=widgets.Layout(width="auto", display="none", align_self="flex-start"),
        )
        self.kernel_button.on_click(self._reporting(self._install_kernel))

        self.apply_button.on_click(self._reporting(self._apply_seed))
        self.random_button.on_click(self._reporting(self._random_seed))
        self.export_button.on_click(self._reporting(self._export))
        self.profile_buttons.observe(self._reporting(self._switch_profile), names="value")

        tables = widgets.HBox([self.sources, self.settings])
        tables.add_class("repro-tables")
        super().__init__(
            [
                widgets.HTML(CSS, layout=widgets.Layout(display="none")),
                self.header,
                widgets.HBox([self.seed_text, self.apply_button, self.random_button]),
                self.profile_buttons,
                self.hint,
                tables,
                self.warnings,
                self.kernel_button,
                widgets.HBox([self.export_button, self.status]),
                self.code,
            ]
        )
        self.add_class("repro-panel")
        self.hint.add_class("repro-hint")
        self.status.add_class("repro-status")
        self._unsubscribe: Callable[[], None] | None = _session.subscribe(self._on_session_change)
        self.refresh()

    def __repr__(self) -> str:
        # Short enough to stay whole: ipywidgets cuts a widget's repr at 110 characters.
        return f"repro panel: {state().summary()}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget, and two views of it as it is now that a saved notebook keeps.

        A notebook opened before it runs (no kernel, or not trusted, so no widget) shows
        the ``text/html`` view: the same head, tables and warnings the panel draws. Where
        no HTML is drawn (a terminal), ``text/plain``: the summary and where to see the rest.
        """
        data = super()._repr_mimebundle_(**kwargs)
        st = state()
        data["text/plain"] = (
            f"repro panel: {st.summary()}\n"
            "(a live widget in JupyterLab, Notebook 7 and VS Code; %repro shows this state as text)"
        )
        data["text/html"] = snapshot_html(st)
        return data

    # -- refreshing --

    def refresh(self, now: State | None = None) -> bool:
        """Redraw if the kernel's state differs from what was drawn; return whether it did.

        Comparing states (seed, profile, fingerprints, flags, warnings) and the
        profile registry is what keeps a cell in which nothing changed cheap.
        """
        st = state() if now is None else now
        key = (st, profiles())
        if key == self._drawn:
            return False
        self._draw(st, key[1])
        self._drawn = key
        return True

    def _draw(self, st: State, registered: tuple[Profile, ...]) -> None:
        self.header.value = head_html(st)
        if st.seed != self._drawn_seed or self._drawn is None:
            # Only when the seed changed: a cell finishing must not wipe what is being typed.
            self.seed_text.value = "" if st.seed is None else str(st.seed)
            self._drawn_seed = st.seed
        by_name = {p.name: p for p in registered}
        with self._sync():
            names = tuple(by_name)
            if self.profile_buttons.options != names:
                self.profile_buttons.options = names
                self.profile_buttons.tooltips = [str(p) for p in registered]
            self.profile_buttons.value = st.profile if st.profile in by_name else None
        hint = html.escape(profile_hint(by_name.get(st.profile) if st.profile else None))
        if st.overrides:
            hint += " · " + html.escape(", ".join(f"{k}={v}" for k, v in st.overrides.items()))
        self.hint.value = hint
        self.sources.value = sources_html(st)
        self.settings.value = settings_html(st)
        self.warnings.value = warnings_html(st)
        fixable = not st.hash_fixed and st.process == "kernel"
        self.kernel_button.layout.display = None if fixable else "none"
        # The status line tells what just happened; once the kernel moves on, it is old news.
        self.status.value = ""

    @contextmanager
    def _sync(self) -> Iterator[None]:
        # Setting a control to mirror the kernel must not apply it back to the kernel.
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _on_session_change(self) -> None:
        # While a cell runs, post_run_cell refreshes once at its end: a loop that
        # reseeds thousands of times must not redraw thousands of times.
        if not _extension.cell_running():
            self._safely(self.refresh)

    def _safely(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:  # a panel that cannot draw says so instead of breaking a cell
            self._show_error(exc)

    # -- actions --

    def _reporting(self, action: Callable[..., Any]) -> Callable[..., None]:
        """``action`` for a widget callback: an exception shows in the status line."""

        def run(*args: Any) -> None:
            try:
                action(*args)
            except Exception as exc:
                self._show_error(exc)

        return run

    def _show_error(self, exc: BaseException) -> None:
        text = str(exc).removeprefix("repro: ") or type(exc).__name__
        self.status.value = f"<span class='repro-error'>⚠ {html.escape(text)}</span>"

    def _say(self, text: str) -> None:
        self.status.value = html.escape(text)

    def _apply_seed(self, _button: Any = None) -> None:
        # Read as %repro reads it: decimal, 0x.., or 'random' for a fresh seed, same messages.
        seeded = _session.seed(parse_seed(self.seed_text.value))
        self.refresh()
        self._say(f"seeded Python, NumPy and torch with {seeded}")

    def _random_seed(self, _button: Any = None) -> None:
        seeded = _session.seed(None)
        self.refresh()
        self._say(f"new seed {seeded} applied (pin it with %repro {seeded})")

    def _switch_profile(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] is None:
            return
        try:
            chosen = _session.use_profile(change["new"])
        except Exception:
            self._drawn = None  # redraw, so the switch shows the profile that is really active
            self.refresh()
            raise
        self.refresh()
        self._say(f"profile {chosen.name} applied")

    def _export(self, _button: Any = None) -> None:
        from repro._config import config_cell  # lazy: the environment capture is heavier

        source = config_cell()
        if self._bridge is not None and self._bridge.ready:
            self._bridge.insert_below(source)
            self.code.value = ""
            self._say("config cell inserted below this panel")
            return
        self.code.value = f"<pre class='repro-code'>{html.escape(source)}</pre>"
        self._say(
            "this frontend cannot insert cells from a button (that needs ipylab, "
            "jupyter-repro[lab], in JupyterLab 4 or Notebook 7): copy the code below "
            "into a new cell, or run %repro export in a cell"
        )

    def _install_kernel(self, _button: Any = None) -> None:
        from repro._kernel import install_kernel, kernel_display_name, switch_advice

        folder = install_kernel(hash_seed=0)
        advice = switch_advice(kernel_display_name(0), folder).removeprefix("repro: ")
        self._say(" ".join(advice.split()))  # the terminal's line breaks, as one paragraph

    # -- life cycle --

    def detach(self, reason: str | None = None) -> None:
        """Stop following the kernel: unsubscribe, leave the hooks' list, disable the controls."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        _live.forget(self)
        if reason is not None and not self._closed:
            for control in (
                self.seed_text,
                self.apply_button,
                self.random_button,
                self.profile_buttons,
                self.export_button,
                self.kernel_button,
            ):
                control.disabled = True
            self._say(reason)

    def close(self) -> None:
        """Close the panel and every widget in it; it stops listening to the kernel."""
        self.detach()
        self._closed = True
        for child in _descendants(self):
            child.close()
        super().close()


def snapshot_html(st: State) -> str:
    """The panel as it was when its cell ran, as static HTML (what a saved notebook shows).

    Inline styles carry the layout, since a notebook opened untrusted drops ``<style>``.
    """
    note = (
        "<div class='repro-snapshot' style='color: #777; font-size: 11px'>"
        "the panel as it was when this cell ran: run the cell for the live panel</div>"
    )
    return (
        f"{CSS}<div class='repro-panel'>{head_html(st)}{note}"
        # margin, not gap: JupyterLab 4.0's sanitizer keeps the one and drops the other
        "<div class='repro-tables' style='display: flex; flex-wrap: wrap'>"
        f"<div style='margin-right: 24px'>{sources_html(st)}</div>{settings_html(st)}</div>"
        f"{warnings_html(st)}</div>"
    )


def _descendants(box: widgets.Box) -> Iterator[widgets.Widget]:
    for child in box.children:
        if isinstance(child, widgets.Box):
            yield from _descendants(child)
        yield child


# --- the live panels: one refresh after each cell, all detached when repro unloads ---------


class _Live:
    """The live panels and the export bridge they share."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self.bridge: _Bridge | None = None
        self.bridge_tried = False
        self.subscriptions: list[Callable[[], None]] = []  # the unsubscribe functions

    def add(self, p: Panel) -> None:
        if not self.subscriptions:
            self.subscriptions = [
                _extension.on_cell_end(self.refresh_all),
                _extension.on_unload(self.unload),
            ]
        self.panels.append(p)

    def forget(self, p: Panel) -> None:
        if p in self.panels:
            self.panels.remove(p)

    def get_bridge(self) -> _Bridge | None:
        # Only inside a kernel: a plain IPython shell or a script has no frontend.
        if not self.bridge_tried and getattr(_ipython(), "kernel", None) is not None:
            self.bridge_tried = True
            self.bridge = _make_bridge()
        return self.bridge

    def refresh_all(self, result: Any = None) -> None:
        """After a cell: one state, drawn by every panel that differs from it."""
        if not self.panels:
            return
        try:
            now = state()
        except Exception as exc:
            for p in self.panels:
                p._show_error(exc)
            return
        for p in list(self.panels):
            p._safely(lambda p=p: p.refresh(now))

    def unload(self) -> None:
        """The extension was unloaded: every panel stops following the kernel."""
        for p in list(self.panels):
            p.detach(
                "repro was unloaded (%unload_ext repro): this panel no longer follows the kernel"
            )
        for unsubscribe in self.subscriptions:
            unsubscribe()
        self.subscriptions = []
        if self.bridge is not None:
            self.bridge.close()
        self.bridge, self.bridge_tried = None, False


_live = _Live()


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def panel() -> Panel:
    """The live reproducibility panel (an ipywidgets ``VBox``); ``%repro panel`` shows it.

    It shows the seed and profile (and switches them in this kernel), each source
    of randomness with its seed, fingerprint and whether it moved, the backend
    flags, the warnings with their fix, and exports the config cell. It refreshes
    after every cell and whenever the seed or profile changes; ``close()`` it to
    stop that. Several panels stay in sync.

    In IPython without ``%load_ext repro``, it loads the extension (as ``%load_ext repro``
    would, so ``%unload_ext repro`` detaches it): refreshing after each cell needs the
    extension's cell callbacks, and only the extension registers them. Outside IPython it
    follows the changes made through repro.
    """
    shell = _ipython()
    if shell is not None and not _extension.loaded():
        shell.extension_manager.load_extension("repro")
    p = Panel(bridge=_live.get_bridge())
    _live.add(p)
    return p
