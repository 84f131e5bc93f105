"""Writing into the target folder: nothing replaced, even in a race."""
import os

import pytest

from orangecontrib.imageanalytics.save_target import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    TargetError,
    TargetFolder,
)


def test_file_that_appears_after_the_listing_is_not_replaced(tmp_path):
    target = TargetFolder(str(tmp_path))
    (tmp_path / "a.png").write_bytes(b"someone else's")
    assert target.put("", "a", ".png", b"ours", None) == ("a-2.png", True)
    assert (tmp_path / "a.png").read_bytes() == b"someone else's"
    (tmp_path / "b.png").write_bytes(b"ours")
    assert target.put("", "b", ".png", b"ours", None) == ("b.png", False)
    assert sorted(os.listdir(tmp_path)) == ["a-2.png", "a.png", "b.png"]


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    stale = tmp_path / f"{TEMP_PREFIX}abc{TEMP_SUFFIX}"
    stale.write_bytes(b"half")
    (tmp_path / "keep.part").write_bytes(b"mine")
    (tmp_path / ".orange-other").write_bytes(b"mine")
    TargetFolder(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [".orange-other", "keep.part"]


def test_folder_names_are_reused_case_insensitively_and_kept_apart(tmp_path):
    (tmp_path / "Cats").mkdir()
    (tmp_path / "dogs").write_bytes(b"a file, not a folder")
    target = TargetFolder(str(tmp_path))
    assert target.folder_for("cats") == "Cats"
    assert target.folder_for("CATS") == "CATS-2"
    assert target.folder_for("dogs") == "dogs-2"
    assert (tmp_path / "dogs").read_bytes() == b"a file, not a folder"


def test_modification_time_is_kept_for_copies(tmp_path):
    target = TargetFolder(str(tmp_path))
    target.put("", "a", ".jpg", b"data", 1_000_000_000.0)
    assert os.stat(tmp_path / "a.jpg").st_mtime == 1_000_000_000.0


def test_target_inside_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(TargetError):
        TargetFolder(str(tmp_path / "f" / "sub"))
