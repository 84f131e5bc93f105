"""Which rows Image Grid lays out, and which of them a Data Subset holds.

A row goes on the grid when it has an image value and a whole vector; the
others are left out with a reason the widget shows. No Qt here: the widget
runs :func:`grid_rows` in its worker, since with 100,000 rows it reads
800 MB of features.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from Orange.data import DiscreteVariable, Domain, Table, Variable

from orangecontrib.imageanalytics.table_images import image_columns
from orangecontrib.imageanalytics.widgets.utils.grid_groups import restore_groups

__all__ = [
    "ColumnText",
    "GridRows",
    "grid_rows",
    "image_candidates",
    "image_values",
    "subset_membership",
    "usable_rows",
]


@dataclass
class GridRows:
    """The rows a grid shows and what the widget says of the others."""
    #: the rows with an image and a whole vector (the input itself when
    #: that is all of them); None when no row has both
    data: Table | None
    #: the image value of each row of ``data``
    values: list
    #: the group of each row of ``data``, restored from the stored marks
    groups: np.ndarray
    #: how many rows are left out, and why (empty when none is)
    left_out: int = 0
    reasons: tuple[str, ...] = ()


def grid_rows(data: Table, var: Variable,
              stored_groups: Mapping[str, int] | Sequence[int] | None) -> GridRows:
    """The rows of ``data`` to lay out, their image values and their groups
    (see :func:`~.grid_groups.restore_groups`)."""
    keep, reasons = usable_rows(data, var)
    left_out = len(data) - int(keep.sum())
    if not keep.any():
        return GridRows(None, [], np.zeros(0, np.int64), left_out, tuple(reasons))
    # a subset only when some rows are left out: no copy of the features else
    rows = data if left_out == 0 else data[keep]
    values = image_values(rows, var)
    return GridRows(rows, values, restore_groups(values, stored_groups),
                    left_out, tuple(reasons))


def image_candidates(domain: Domain) -> list[Variable]:
    """Meta String/Discrete variables, those with ``type=image`` first (the
    older add-on's ``imageAttr`` is an index into this list)."""
    return image_columns(domain)


def image_values(data: Table, var: Variable) -> list:
    """The image column as text (a categorical column's value names)."""
    column = data.get_column(var)
    if isinstance(var, DiscreteVariable):
        return [var.str_val(v) for v in column]
    return list(column)


def usable_rows(data: Table, var: Variable) -> tuple[np.ndarray, list[str]]:
    """A mask of the rows with an image and a whole vector, and why the
    others are left out (e.g. ``["2 without an image"]``)."""
    values = data.get_column(var)
    if isinstance(var, DiscreteVariable):
        has_image = ~np.isnan(values.astype(float))
    else:
        has_image = np.array([bool(v) and v == v for v in values], dtype=bool)
    x = data.X
    # a row's sum is NaN when any of its values is (or +inf meets -inf): one
    # pass over the features and no array of their size (100,000 × 1,000
    # floats would take a 100 MB mask and three times as long)
    has_vector = ~np.isnan(x.sum(axis=1, dtype=float)) if x.size \
        else np.zeros(len(data), bool)
    reasons = []
    if n := int((~has_image).sum()):
        reasons.append(f"{n} without an image")
    if n := int((has_image & ~has_vector).sum()):
        reasons.append(f"{n} without a whole vector")
    return has_image & has_vector, reasons


class ColumnText(Sequence):
    """A column's values as text, each made when it is asked for: labels and
    tooltips read a screenful of rows, and 100,000 at once would hold the
    GUI thread for a third of a second."""

    def __init__(self, data: Table, var: Variable):
        self.var = var
        self.column = data.get_column(var)

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self.var.str_val(v) for v in self.column[row]]
        return self.var.str_val(self.column[row])


def subset_membership(data: Table, subset: Table,
                      var: Variable | None) -> tuple[np.ndarray, int]:
    """Which rows of ``data`` are in ``subset`` (by row id, or by image value
    when the subset has the image column), and how many subset rows were
    found in ``data``."""
    sub_ids = set(subset.ids.tolist())
    in_subset = np.array([i in sub_ids for i in data.ids], dtype=bool)
    n_found = len(set(data.ids.tolist()) & sub_ids)
    if var is not None and var in subset.domain:
        sub_values = set(map(str, subset.get_column(var)))
        mine = [str(v) for v in data.get_column(var)]
        in_subset |= np.array([v in sub_values for v in mine], dtype=bool)
        n_found = max(n_found, len(sub_values & set(mine)))
    return in_subset, n_found
