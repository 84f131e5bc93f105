"""Groups marked on Image Grid, and how they survive new data.

A group belongs to an image, not to a row position: the widget keeps
``{image value: group}`` (the image column's text, without its origin, as
Image Viewer keeps its selection), so the groups stay when the same photos
come again with a new embedding, in another order, or as a subset.

No Qt here: the widget turns mouse modifiers into a :class:`Mark`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

import numpy as np

__all__ = ["Mark", "mark", "renumber", "groups_by_value", "restore_groups", "summary"]


class Mark(Enum):
    """What a click or a rubber band does to the groups."""
    NEW_SELECTION = "new"      # plain: these rows become group 1, others none
    NEW_GROUP = "group"        # Shift: these rows form a new group
    ADD_TO_LAST = "add"        # Shift+Ctrl: these rows join the last group
    REMOVE = "remove"          # Alt: these rows leave their group


def renumber(groups: np.ndarray) -> np.ndarray:
    """Groups numbered 1..k in their order, 0 kept for rows in no group."""
    groups = np.asarray(groups, dtype=np.int64)
    used = np.unique(groups[groups > 0])
    remap = np.zeros(int(groups.max(initial=0)) + 1, dtype=np.int64)
    remap[used] = np.arange(1, len(used) + 1)
    return remap[groups]


def mark(groups: np.ndarray, rows: Sequence[int], how: Mark) -> np.ndarray:
    """A new array of groups after marking ``rows`` (data row indexes)."""
    groups = np.array(groups, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    last = int(groups.max(initial=0))
    if how is Mark.REMOVE:
        groups[rows] = 0
    elif how is Mark.ADD_TO_LAST:
        groups[rows] = max(last, 1)
    elif how is Mark.NEW_GROUP:
        groups[rows] = last + 1
    else:
        groups[:] = 0
        groups[rows] = 1
    return renumber(groups)


def groups_by_value(values: Sequence, groups: np.ndarray) -> dict[str, int]:
    """``{image value: group}`` of the rows in a group (``values[i]`` is row
    i's image value; rows without one are not kept)."""
    return {str(values[i]): int(groups[i]) for i in np.flatnonzero(groups)
            if values[i] is not None and str(values[i])}


def restore_groups(values: Sequence,
                   stored: Mapping[str, int] | Sequence[int] | None) -> np.ndarray:
    """The group of each row whose image value is in ``stored``, 0 elsewhere,
    renumbered 1..k (a group whose photos are all gone leaves no gap).

    ``stored`` may also be the form of workflows of settings version 2: a
    list with one group per row, used only when the number of rows matches.
    """
    groups = np.zeros(len(values), dtype=np.int64)
    if isinstance(stored, Mapping):
        for i, value in enumerate(values):
            if value is not None:
                groups[i] = stored.get(str(value), 0)
    elif stored is not None and len(stored) == len(values):
        groups[:] = np.asarray(stored, dtype=np.int64).clip(0)
    return renumber(groups)


def summary(groups: np.ndarray) -> str:
    """How many images are marked, in how many groups."""
    marked = groups[groups > 0]
    return f"{len(marked)} selected in {len(np.unique(marked))} group(s)."
