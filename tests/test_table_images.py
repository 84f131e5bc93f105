"""The one way the add-on finds image columns and where their values point."""
from __future__ import annotations

import os

import numpy as np
import pytest
from Orange.data import (
    ContinuousVariable,
    DiscreteVariable,
    Domain,
    StringVariable,
    Table,
)

from orangecontrib.imageanalytics.table_images import (
    column_texts,
    find_image_column,
    image_column,
    image_columns,
    image_sources,
    origin_of,
)


def _image_var(name: str, origin: str | None = None) -> StringVariable:
    var = StringVariable(name)
    var.attributes["type"] = "image"
    if origin is not None:
        var.attributes["origin"] = origin
    return var


@pytest.fixture
def table():
    plain = StringVariable("name")
    image = _image_var("img", origin=os.path.join("photos", "trip"))
    cat = DiscreteVariable("cat", values=("a.jpg", "b.png"))
    domain = Domain([ContinuousVariable("x")],
                    metas=[plain, cat, ContinuousVariable("n"), image])
    metas = np.array([["p", 0, 1, "a.jpg"],
                      ["q", np.nan, 2, ""],
                      ["r", 1, 3, "/abs/c.jpg"],
                      ["s", 1, 4, None]], dtype=object)
    return Table.from_numpy(domain, np.zeros((4, 1)), metas=metas)


def test_image_columns_are_text_metas_marked_first(table):
    names = [v.name for v in image_columns(table)]
    assert names == ["img", "name", "cat"]
    # a domain works as well as its table, and no data gives no columns
    assert image_columns(table.domain) == image_columns(table)
    assert image_columns(None) == []


def test_image_columns_for_the_viewer_are_strings_only():
    domain = Domain([ContinuousVariable("x")],
                    metas=[DiscreteVariable("cat", values=("a",)),
                           StringVariable("note"), _image_var("img")])
    assert [v.name for v in image_columns(domain, any_string=True)] \
        == ["img", "note"]
    assert [v.name for v in image_columns(domain)] == ["img", "cat", "note"]


def test_find_image_column_needs_the_mark(table):
    assert find_image_column(table).name == "img"
    unmarked = Domain([], metas=[StringVariable("name")])
    assert find_image_column(unmarked) is None
    assert find_image_column(None) is None


def test_image_column_by_default_name_variable(table):
    assert image_column(table).name == "img"
    assert image_column(table, "name").name == "name"
    assert image_column(table, table.domain["cat"]).name == "cat"
    with pytest.raises(ValueError, match="no column 'nope'"):
        image_column(table, "nope")
    with pytest.raises(ValueError, match="not a text column"):
        image_column(table, "n")
    unmarked = Table.from_numpy(Domain([], metas=[StringVariable("path")]),
                                np.empty((1, 0)),
                                metas=np.array([["a.jpg"]], dtype=object))
    # the message names the columns that could be meant
    with pytest.raises(ValueError, match="no image column.*path"):
        image_column(unmarked)


def test_column_texts(table):
    assert column_texts(table, table.domain["img"]) \
        == ["a.jpg", None, "/abs/c.jpg", None]
    assert column_texts(table, table.domain["cat"]) \
        == ["a.jpg", None, "b.png", "b.png"]


def test_origin_and_sources(table):
    var = table.domain["img"]
    assert origin_of(var) == os.path.join("photos", "trip")
    assert origin_of(table.domain["name"]) is None
    assert origin_of(None) is None
    sources = image_sources(table, var)
    assert sources[0] == os.path.join("photos", "trip", "a.jpg")
    assert sources[1] is None and sources[3] is None
    # an absolute path ignores the origin
    assert sources[2] == "/abs/c.jpg"


def test_sources_join_a_url_origin():
    var = _image_var("img", origin="https://example.org/pics")
    table = Table.from_numpy(Domain([], metas=[var]), np.empty((2, 0)),
                             metas=np.array([["a b.jpg"], ["x/y.png"]],
                                            dtype=object))
    assert image_sources(table, var) == ["https://example.org/pics/a b.jpg",
                                         "https://example.org/pics/x/y.png"]
