"""The element ids that display libraries draw afresh in markup (HTML, JavaScript, SVG).

No reader sees them, and they differ between identical runs: they are left out of
displayed markup (:mod:`repro._verify.outputs`) and of markup a variable holds
(:mod:`repro._verify.digest`: ``fig.to_html()``, an animation's cached HTML).
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["IGNORED_MARKUP", "normalize_markup"]

#: What only markup (HTML, JavaScript) leaves out: the element ids that plotting and table
#: libraries draw afresh for each display, which no reader sees.
IGNORED_MARKUP: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "element ids in HTML and JavaScript (UUIDs: plotly, bokeh, altair, matplotlib animations)",
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
            # uuid4().hex: altair-viz-<hex>, matplotlib's animations (_anim_img<hex>)
            r"|(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])"
        ),
        "<id>",
    ),
    ("pandas Styler table ids", re.compile(r"\bT_[0-9a-f]{5}(?=[_\"'\s])"), "T_<id>"),
    # Matplotlib's SVG: the date it was drawn, and element ids hashed with a fresh uuid4 salt
    # (clip paths p…, markers m…, hatches h…, images, path collections C…_…_…).
    (
        "SVG figure dates and element ids (matplotlib)",
        re.compile(
            r"(?<=<dc:date>)[^<]*(?=</dc:date>)"
            r"|(?<=[\"#])(?:[hmp]|image|Im_image|C[0-9a-f]+_[0-9a-f]+_)[0-9a-f]{10}(?=[\")])"
        ),
        "<id>",
    ),
)


#: A text that is markup: it holds an element a display library draws.
_MARKUP_TEXT = re.compile(r"<(?:div|table|script|img|svg|style|span|iframe)\b", re.I)


def normalize_markup(text: str, ignored: Counter[str] | None = None, force: bool = False) -> str:
    """``text`` without the element ids of :data:`IGNORED_MARKUP` when it is markup (or
    ``force``: a display's HTML, JavaScript or SVG); other text as it is. Counts what it
    replaced in ``ignored``."""
    if not force and ("<" not in text or _MARKUP_TEXT.search(text) is None):
        return text
    for label, pattern, replacement in IGNORED_MARKUP:
        text, n = pattern.subn(replacement, text)
        if n and ignored is not None:
            ignored[label] += n
    return text
