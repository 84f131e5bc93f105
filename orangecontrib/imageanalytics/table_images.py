"""Which column of a table holds images, and where its values point.

Every widget and core of the add-on asks these questions the same way:

* :func:`image_columns` -- the columns a user may pick, those marked
  ``type=image`` first (the older add-on stored an index into this list);
* :func:`find_image_column` and :func:`image_column` -- the column a script
  means, by name, by variable or by the ``type=image`` mark;
* :func:`column_texts`, :func:`origin_of` and :func:`image_sources` -- the
  column's values as text, and as paths or URLs resolved against the
  column's ``origin``.

No Qt, and no Orange import either: variables are asked what they are
(``is_string``, ``is_discrete``), so a script that embeds a list of paths
does not pay the second that importing Orange's data classes takes.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from orangecontrib.imageanalytics.image_sources import resolve_source

if TYPE_CHECKING:
    from Orange.data import Domain, Table, Variable

__all__ = [
    "column_texts",
    "find_image_column",
    "image_column",
    "image_columns",
    "image_sources",
    "is_image_marked",
    "origin_of",
]


def is_image_marked(var: Variable) -> bool:
    """Whether ``var`` is marked ``type=image`` (``type=image`` in the third
    header row of a .tab file)."""
    return var.attributes.get("type") == "image"


def image_columns(data: Table | Domain | None, *,
                  any_string: bool = False) -> list[Variable]:
    """The columns that may hold image paths or URLs, as a user is offered
    them: those marked ``type=image`` first, otherwise in domain order.

    Parameters
    ----------
    data
        A table or its domain; None gives no columns.
    any_string
        Offer the string variables of the whole domain, as Image Viewer
        does, instead of the meta string and categorical variables that
        the other widgets offer.
    """
    if data is None:
        return []
    domain = getattr(data, "domain", data)
    if any_string:
        candidates = [var for var in (*domain.variables, *domain.metas)
                      if var.is_string]
    else:
        candidates = [var for var in domain.metas
                      if var.is_string or var.is_discrete]
    # sorted() is stable: the order within each part stays the domain's
    return sorted(candidates, key=lambda var: not is_image_marked(var))


def find_image_column(data: Table | Domain | None) -> Variable | None:
    """The first meta string or categorical variable marked ``type=image``,
    or None."""
    for var in image_columns(data):
        if is_image_marked(var):
            return var
    return None


def image_column(data: Table | Domain, col: Variable | str | int | None = None
                 ) -> Variable:
    """The image column ``col`` (a variable, name or index) of ``data``; by
    default the first meta column marked ``type=image``.

    Raises
    ------
    ValueError
        With a message for the user: there is no such column, or it cannot
        hold paths.
    """
    domain = getattr(data, "domain", data)
    if col is None:
        var = find_image_column(domain)
        if var is None:
            names = [v.name for v in image_columns(domain)]
            hint = f"; name one of: {', '.join(names)}" if names else ""
            raise ValueError("the table has no image column (a meta column "
                             f"marked type=image){hint}")
        return var
    try:
        var = domain[col]
    except (KeyError, IndexError, TypeError, ValueError):
        raise ValueError(f"the table has no column {col!r}") from None
    if not (var.is_string or var.is_discrete):
        raise ValueError(
            f"column {var.name!r} is not a text column and cannot hold "
            "image paths")
    return var


def column_texts(table: Table, var: Variable) -> list[str | None]:
    """The values of ``var`` as text: a categorical column's value names;
    None for a missing or blank value."""
    column = table.get_column(var)
    if var.is_discrete:
        return [None if _is_nan(x) else var.values[int(x)] for x in column]
    texts = []
    for value in column:
        if value is None or _is_nan(value):
            texts.append(None)
        else:
            text = str(value)
            texts.append(text if text.strip() else None)
    return texts


def origin_of(var: Variable | None) -> str | None:
    """The folder or base URL that relative values of ``var`` are resolved
    against (its ``origin`` attribute); None without one."""
    if var is None:
        return None
    return var.attributes.get("origin")


def image_sources(table: Table, var: Variable) -> list[str | None]:
    """Paths or URLs in column ``var``, resolved against its origin (see
    :func:`~orangecontrib.imageanalytics.image_sources.resolve_source`);
    None for a missing or blank value."""
    origin = origin_of(var)
    return [resolve_source(text, origin) for text in column_texts(table, var)]


def _is_nan(value) -> bool:
    try:
        return math.isnan(value)
    except TypeError:
        return False
