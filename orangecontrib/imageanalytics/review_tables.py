"""Tables out of a :class:`~orangecontrib.imageanalytics.review.Review`.

The Review Images widget and the ``review`` command pass the reviewed table
on in three forms, which keep the input's columns, ids and table class:

* :func:`unique_table` — the keepers and the photos in no group (and, if
  asked, without the flagged ones): what to keep;
* :func:`duplicates_table` — the other members of the groups, with the
  columns *Group*, *Kind* and *Keeper* (the keeper's value of the image
  column): what could go;
* :func:`annotated_table` — every row, with *Group*, *Kind*, *Keeper*,
  *Issues* and, when some image could not be read, *skip reason*.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from Orange.data import DiscreteVariable, Domain, StringVariable, Table, Variable
from Orange.data.util import get_unique_names

from orangecontrib.imageanalytics.review import KEEPER, KINDS, Review

__all__ = [
    "GROUP", "ISSUES", "KEEPER_COLUMN", "KIND", "SKIP_REASON",
    "annotated_table", "duplicates_table", "table_makers", "unique_table",
]

GROUP = "Group"
KIND = "Kind"
KEEPER_COLUMN = "Keeper"
ISSUES = "Issues"
SKIP_REASON = "skip reason"


def _values(table: Table, var: Variable) -> list[str]:
    column = table.get_column(var)
    if isinstance(var, DiscreteVariable):
        return ["" if np.isnan(x) else var.values[int(x)] for x in column]
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            for v in column]


def _group_columns(table: Table, review: Review, image_var: Variable, names):
    """The Group, Kind and Keeper variables and their values per row."""
    n = len(table)
    values = _values(table, image_var)
    group = np.full(n, np.nan)
    kind = np.full(n, np.nan)
    keeper = np.full(n, "", dtype=object)
    kinds = [KEEPER, *KINDS]
    for index, (members, member_kinds) in enumerate(zip(review.groups, review.kinds)):
        for row, member_kind in zip(members, member_kinds):
            group[row] = index
            kind[row] = kinds.index(member_kind)
            keeper[row] = values[members[0]]
    group_var = DiscreteVariable(
        names[0], values=[f"G{i + 1}" for i in range(len(review.groups))])
    kind_var = DiscreteVariable(names[1], values=kinds)
    keeper_var = StringVariable(names[2])
    return [group_var, kind_var, keeper_var], [group, kind, keeper]


def _with_metas(table: Table, rows, variables, columns) -> Table:
    domain = table.domain
    new_domain = Domain(domain.attributes, domain.class_vars,
                        domain.metas + tuple(variables))
    rows = np.asarray(rows, dtype=int)
    out = table.from_table(new_domain, table, row_indices=rows)
    if len(rows):
        start = len(domain.metas)
        with out.unlocked(out.metas):
            for k, column in enumerate(columns):
                out.metas[:, start + k] = np.asarray(column, dtype=object)[rows]
    return out


def _check(table: Table, review: Review) -> None:
    if len(table) != review.n_rows:
        raise ValueError(f"the review has {review.n_rows} rows, the table {len(table)}")


def unique_table(table: Table, review: Review, *,
                 without_issues: bool = False) -> Table | None:
    """The rows to keep (see :meth:`Review.unique_rows`); None if none."""
    _check(table, review)
    rows = review.unique_rows(without_issues=without_issues)
    return table[rows] if rows else None


def duplicates_table(table: Table, review: Review, image_var: Variable) -> Table | None:
    """The group members that are not keepers, with Group, Kind and Keeper;
    None if there are none."""
    _check(table, review)
    rows = review.duplicate_rows()
    if not rows:
        return None
    names = get_unique_names(table.domain, [GROUP, KIND, KEEPER_COLUMN])
    variables, columns = _group_columns(table, review, image_var, names)
    return _with_metas(table, rows, variables, columns)


def annotated_table(table: Table, review: Review, image_var: Variable) -> Table:
    """Every row with Group, Kind, Keeper, Issues (and skip reason)."""
    _check(table, review)
    wanted = [GROUP, KIND, KEEPER_COLUMN, ISSUES]
    if review.skipped:
        wanted.append(SKIP_REASON)
    names = get_unique_names(table.domain, wanted)
    variables, columns = _group_columns(table, review, image_var, names)
    issues = np.full(len(table), "", dtype=object)
    for row, found in review.issues.items():
        issues[row] = ", ".join(found)
    variables.append(StringVariable(names[3]))
    columns.append(issues)
    if review.skipped:
        reasons = np.full(len(table), "", dtype=object)
        for skip in review.skipped:
            reasons[skip.row] = skip.reason
        variables.append(StringVariable(names[4]))
        columns.append(reasons)
    return _with_metas(table, np.arange(len(table)), variables, columns)


def table_makers(table: Table, review: Review, image_var: Variable, *,
                 without_issues: bool = False) -> dict[str, tuple[int, Callable]]:
    """For ``"unique"``, ``"duplicates"`` and ``"data"``: how many rows the
    table will have and a function that makes it. Each table copies its
    rows' features, so a widget makes them only when they are asked for."""
    _check(table, review)
    unique = len(review.unique_rows(without_issues=without_issues))
    return {
        "unique": (unique, lambda: unique_table(table, review,
                                                without_issues=without_issues)),
        "duplicates": (len(review.duplicate_rows()),
                       lambda: duplicates_table(table, review, image_var)),
        "data": (len(table), lambda: annotated_table(table, review, image_var)),
    }
