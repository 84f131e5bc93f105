"""The ``review`` command and the tables Review Images passes on."""
import os

import numpy as np
from Orange.data import Domain, StringVariable, Table
from review_fixtures import blurred, decoded, jpeg, scene, write

from orangecontrib.imageanalytics.__main__ import main
from orangecontrib.imageanalytics.review import KEEPER, SAME_FILE, SAME_PICTURE, review_images
from orangecontrib.imageanalytics.review_tables import (
    annotated_table,
    duplicates_table,
    unique_table,
)


def _collection(folder):
    data = jpeg(scene(1))
    write(folder, "a-original.jpg", data, age=100)
    write(folder, "b-copy.jpg", data)
    write(folder, "c-poor.jpg", jpeg(decoded(data), 25))
    write(folder, "d-other.jpg", jpeg(scene(2)))
    write(folder, "e-blurry.jpg", jpeg(blurred(scene(3))))
    write(folder, "f-broken.jpg", b"not an image" * 10)


def _table(folder, names):
    var = StringVariable("image")
    var.attributes.update(type="image", origin=str(folder))
    return Table.from_list(Domain([], metas=[var]), [[n] for n in names]), var


def test_tables(tmp_path):
    names = ["b-copy.jpg", "d-other.jpg", "a-original.jpg", "missing.jpg", "c-poor.jpg"]
    _collection(tmp_path)
    table, var = _table(tmp_path, names)
    review = review_images(table, strictness=1)
    assert review.groups == [[2, 0, 4]]

    unique = unique_table(table, review)
    assert list(unique.get_column(var)) == ["d-other.jpg", "a-original.jpg"]
    assert unique.domain == table.domain
    np.testing.assert_equal(unique.ids, table.ids[[1, 2]])

    dups = duplicates_table(table, review, var)
    assert list(dups.get_column(var)) == ["b-copy.jpg", "c-poor.jpg"]
    assert [dups.domain[n].str_val(v) for n, v in zip(
        ("Group", "Kind"), (dups[0, "Group"], dups[0, "Kind"]))] == ["G1", SAME_FILE]
    assert dups[1, "Kind"] == SAME_PICTURE
    assert list(dups.get_column("Keeper")) == ["a-original.jpg"] * 2

    every = annotated_table(table, review, var)
    assert len(every) == len(table)
    assert every[2, "Kind"] == KEEPER
    assert np.isnan(every.get_column("Group")[1])
    assert every[3, "skip reason"] == "file not found"
    assert unique_table(table, review, without_issues=True) is not None


def test_no_duplicates_gives_no_table(tmp_path):
    _collection(tmp_path)
    table, var = _table(tmp_path, ["d-other.jpg", "e-blurry.jpg"])
    review = review_images(table, strictness=1)
    assert duplicates_table(table, review, var) is None
    assert list(annotated_table(table, review, var).get_column("Issues")) == ["", "blurry"]
    assert unique_table(table, review, without_issues=True).get_column(var).tolist() \
        == ["d-other.jpg"]


def test_command_prints_groups_and_flags_and_writes_the_table(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    _collection(folder)
    before = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    out = tmp_path / "review.tab"
    code = main(["review", str(folder), "-o", str(out), "--strictness", "same-picture", "-q"])
    printed = capsys.readouterr().out
    assert code == 0
    lines = printed.splitlines()
    start = lines.index("G1:")
    assert lines[start + 1].split() == ["keeper", "a-original.jpg"]
    assert sorted(lines[start + 2:start + 4]) == sorted(
        ["  same file       b-copy.jpg", "  same picture    c-poor.jpg"])
    assert any(line.startswith("  e-blurry.jpg: blurry") for line in lines)
    assert any("f-broken.jpg" in line and "not imported" in line for line in lines)
    written = Table.from_file(str(out))
    assert len(written) == 5 and "Keeper" in written.domain
    # the photos are as they were, and nothing was added beside them
    assert {n: (folder / n).read_bytes() for n in os.listdir(folder)} == before


def test_command_errors(tmp_path, capsys):
    assert main(["review", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["review", str(empty), "-q"]) == 1
    assert "no images" in capsys.readouterr().err
    _collection(empty)
    assert main(["review", str(empty), "-o", str(tmp_path / "x.unknown")]) == 2
