"""Counts as a person reads them: "1 image", "2,048 images", and the most
common reasons why images were skipped.

Skip reasons have one type and one visible form everywhere in the add-on:
:func:`count_reasons` gives ``(reason, count)`` pairs, most common first, and
:func:`reasons_text` shows them count first, "2 × file not found, 1 × not an
image, …". The count comes first because a reason may end in a number or a
parenthesis of its own ("HTTP 404", "image too large (20000 × 20000)"), and
a count put after it would read as part of it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

__all__ = ["MAX_REASONS_SHOWN", "SkipReasons", "count_reasons", "plural",
           "reasons_text"]

#: ``(reason, count)`` pairs, most common first.
SkipReasons = list[tuple[str, int]]

#: How many distinct reasons a message names before "…".
MAX_REASONS_SHOWN = 3


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``n`` and the noun that goes with it: "1 image", "2,048 images",
    "3 categories" (with ``plural_form="categories"``)."""
    noun = singular if n == 1 else (plural_form or singular + "s")
    return f"{n:,} {noun}"


def count_reasons(reasons: Iterable[str]) -> SkipReasons:
    """How often each reason occurs, most common first (ties in the order
    they first occur)."""
    return Counter(reasons).most_common()


def reasons_text(reasons: SkipReasons, limit: int = MAX_REASONS_SHOWN) -> str:
    """The ``limit`` most common reasons with their counts, "2 × file not
    found, 1 × not an image", and "…" when there are more; "" for none."""
    text = ", ".join(f"{count:,} × {reason}" for reason, count in reasons[:limit])
    if len(reasons) > limit:
        text += ", …"
    return text
