"""Tooltips that wrap at a readable width.

Qt shows a plain-text tooltip on one line however long it is (a failed
download's message ran wider than a 1600-pixel screen), and Orange's message
bar keeps a message's lines unbroken in its tooltip.  A tooltip made here is
rich text with its lines broken at a fixed number of characters, so it reads
the same whatever the font or the screen.  No Qt here: the widgets pass the
text on to ``setToolTip``.
"""
from __future__ import annotations

import html
import textwrap

__all__ = ["TOOLTIP_WIDTH", "wrapped_tooltip"]

#: Characters on one line of a tooltip (about 450 pixels in a usual font).
TOOLTIP_WIDTH = 72


def wrapped_tooltip(text: str, width: int = TOOLTIP_WIDTH) -> str:
    """``text`` as a rich-text tooltip with lines of at most ``width``
    characters.

    Each line of ``text`` becomes a paragraph; a word longer than a line (a
    long path or address) is broken too.  Empty text gives an empty string,
    which removes a tooltip.
    """
    paragraphs = [
        "<br/>".join(html.escape(line) for line in textwrap.wrap(
            paragraph, width, break_on_hyphens=False))
        for paragraph in text.splitlines() if paragraph.strip()]
    if not paragraphs:
        return ""
    return "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
