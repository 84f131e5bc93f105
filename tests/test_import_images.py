"""Tests for scanning a folder of images into a table."""
import os
import time
from unittest import mock

import numpy as np
import pytest
from Orange.data import ContinuousVariable, DiscreteVariable, StringVariable
from PIL import Image, ImageFile

from orangecontrib.imageanalytics.import_images import (
    ImportCancelled,
    ImportResult,
    Skipped,
    import_images,
    run,
)


def make_image(path, size=(8, 6), fmt=None, color=(200, 30, 40), exif=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    kwargs = {"exif": exif} if exif is not None else {}
    Image.new("RGB", size, color).save(path, format=fmt, **kwargs)
    return path


@pytest.fixture
def photos(tmp_path):
    """Two categories with two images each, of different sizes and formats."""
    root = tmp_path / "photos"
    make_image(root / "cats" / "tom.jpg", (40, 30))
    make_image(root / "cats" / "felix.png", (20, 10))
    make_image(root / "city" / "ljubljana.jpg", (32, 24))
    make_image(root / "city" / "paris.bmp", (16, 16))
    return root


class FakeState:
    """Orange's TaskState, minus Qt."""

    def __init__(self, stop_after=None):
        self.progress = []
        self.status = []
        self.polls = 0
        self.stop_after = stop_after

    def set_progress_value(self, value):
        self.progress.append(value)

    def set_status(self, text):
        self.status.append(text)

    def is_interruption_requested(self):
        self.polls += 1
        return self.stop_after is not None and self.polls > self.stop_after


def test_table_shape_and_columns(photos):
    result = import_images(photos)
    assert isinstance(result, ImportResult)
    table = result.table
    domain = table.domain
    assert len(table) == 4
    assert domain.attributes == ()
    assert [m.name for m in domain.metas] == \
        ["image name", "image", "size", "width", "height"]
    assert [type(m) for m in domain.metas] == \
        [StringVariable, StringVariable] + [ContinuousVariable] * 3
    image = domain["image"]
    assert image.attributes["type"] == "image"
    assert image.attributes["origin"] == str(photos)
    assert isinstance(domain.class_var, DiscreteVariable)
    assert domain.class_var.name == "category"
    assert domain.class_var.values == ("cats", "city")
    assert table.name == "photos"

    # sorted by path: deterministic order
    assert list(table.get_column("image")) == [
        "cats/felix.png", "cats/tom.jpg", "city/ljubljana.jpg",
        "city/paris.bmp"]
    assert list(table.get_column("image name")) == \
        ["felix", "tom", "ljubljana", "paris"]
    assert list(table.get_column("width")) == [20, 40, 32, 16]
    assert list(table.get_column("height")) == [10, 30, 24, 16]
    sizes = [os.path.getsize(photos / p) for p in table.get_column("image")]
    assert list(table.get_column("size")) == sizes
    assert [domain.class_var.str_val(v) for v in table.Y] == \
        ["cats", "cats", "city", "city"]
    assert (result.n_images, result.n_categories, result.n_skipped) == \
        (4, 2, 0)


def test_nested_categories_are_relative_paths(tmp_path):
    make_image(tmp_path / "a" / "b" / "deep.png")
    make_image(tmp_path / "a" / "top.png")
    make_image(tmp_path / "a b" / "space.png")
    make_image(tmp_path / "c" / "d" / "e" / "deeper.gif", fmt="GIF")
    table = import_images(tmp_path).table
    assert table.domain.class_var.values == ("a", "a/b", "a b", "c/d/e")
    assert list(table.get_column("image")) == [
        "a/b/deep.png", "a/top.png", "a b/space.png", "c/d/e/deeper.gif"]
    assert [table.domain.class_var.str_val(v) for v in table.Y] == \
        ["a/b", "a", "a b", "c/d/e"]


def test_single_folder_has_no_class(tmp_path):
    make_image(tmp_path / "one.jpg")
    make_image(tmp_path / "two.png")
    result = import_images(tmp_path)
    assert result.table.domain.class_var is None
    assert len(result.table) == 2
    assert result.n_categories == 0


def test_single_sub_folder_has_no_class(tmp_path):
    make_image(tmp_path / "only" / "one.jpg")
    result = import_images(tmp_path)
    assert result.table.domain.class_var is None
    assert list(result.table.get_column("image")) == ["only/one.jpg"]


def test_images_in_root_have_category_dot(tmp_path):
    make_image(tmp_path / "loose.jpg")
    make_image(tmp_path / "dogs" / "rex.jpg")
    table = import_images(tmp_path).table
    assert table.domain.class_var.values == (".", "dogs")
    assert list(table.get_column("image")) == ["dogs/rex.jpg", "loose.jpg"]
    assert list(table.Y) == [1, 0]


def test_scripting_interface_of_earlier_versions(tmp_path):
    from orangecontrib.imageanalytics.import_images import ImportCancelled, ImportImages

    make_image(tmp_path / "cats" / "a.JPG")
    make_image(tmp_path / "dogs" / "b.png")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not an image")
    shares = []
    table, n_skipped = ImportImages(report_progress=shares.append)(str(tmp_path))
    assert len(table) == 2 and n_skipped == 1
    assert table.domain.class_var.values == ("cats", "dogs")
    assert shares and shares[-1] == 1.0
    assert ImportImages()(str(tmp_path / "cats" / ".."))[0] is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ImportImages()(str(empty)) == (None, 0)

    importer = ImportImages()

    def cancel(_share):
        importer.cancelled = True

    importer.report_progress = cancel
    with pytest.raises(ImportCancelled):
        importer(str(tmp_path))


def test_empty_folder_gives_no_table(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = import_images(tmp_path)
    assert result.table is None
    assert (result.n_images, result.n_skipped, result.n_ignored) == (0, 0, 1)


def test_not_a_folder(tmp_path):
    with pytest.raises(NotADirectoryError):
        import_images(tmp_path / "missing")
    path = make_image(tmp_path / "file.png")
    with pytest.raises(NotADirectoryError):
        import_images(path)


def test_hidden_files_and_folders_are_skipped(tmp_path):
    make_image(tmp_path / "visible.jpg")
    make_image(tmp_path / ".hidden.jpg")
    make_image(tmp_path / ".thumbnails" / "thumb.jpg")
    make_image(tmp_path / "sub" / ".cache" / "x.png")
    result = import_images(tmp_path)
    assert list(result.table.get_column("image")) == ["visible.jpg"]
    assert result.n_skipped == 0


def _symlink(target, link, target_is_directory=True):
    try:
        os.symlink(target, link, target_is_directory=target_is_directory)
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available")


def test_symlink_loop_terminates(tmp_path):
    make_image(tmp_path / "a" / "one.jpg")
    make_image(tmp_path / "b" / "two.jpg")
    _symlink(tmp_path, tmp_path / "a" / "loop")          # back to the root
    _symlink(tmp_path / "a", tmp_path / "b" / "to_a")    # sideways
    _symlink(tmp_path / "b" / "self", tmp_path / "b" / "self")  # to itself
    result = import_images(tmp_path)
    # every real folder is walked exactly once
    assert sorted(result.table.get_column("image")) == ["a/one.jpg",
                                                        "b/two.jpg"]


def test_symlinked_folder_is_followed(tmp_path):
    outside = tmp_path / "outside"
    make_image(outside / "far.png")
    root = tmp_path / "root"
    make_image(root / "near" / "near.png")
    _symlink(outside, root / "linked")
    table = import_images(root).table
    assert list(table.get_column("image")) == ["linked/far.png",
                                               "near/near.png"]


def test_unreadable_files_are_reported(tmp_path):
    make_image(tmp_path / "good.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "renamed.png").write_text("just some text, not an image\n")
    jpeg = make_image(tmp_path / "full.jpg", (64, 48))
    with open(jpeg, "rb") as f:
        (tmp_path / "truncated.jpg").write_bytes(f.read(40))
    os.remove(jpeg)
    (tmp_path / "readme.txt").write_text("ignored: not an image extension")
    _symlink(tmp_path / "nowhere.jpg", tmp_path / "dangling.jpg",
             target_is_directory=False)

    result = import_images(tmp_path)
    assert list(result.table.get_column("image")) == ["good.jpg"]
    assert result.n_ignored == 1
    reasons = dict(result.skipped)
    assert sorted(reasons) == ["dangling.jpg", "empty.jpg", "renamed.png",
                               "truncated.jpg"]
    assert all(isinstance(s, Skipped) for s in result.skipped)
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["renamed.png"] == "not an image"
    assert reasons["truncated.jpg"] == "truncated file"
    assert reasons["dangling.jpg"] == "broken link"
    assert result.n_skipped == 4
    assert sum(n for _, n in result.skip_reasons()) == 4


def test_exif_rotation_swaps_width_and_height(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: shown as 30 wide, 40 high
    make_image(tmp_path / "rotated.jpg", (40, 30), exif=exif.tobytes())
    table = import_images(tmp_path).table
    assert (table[0]["width"], table[0]["height"]) == (30, 40)


def test_sizes_come_from_headers_not_decoding(photos):
    def no_decoding(*_args, **_kwargs):
        raise AssertionError("an image was decoded")

    with mock.patch.object(ImageFile.ImageFile, "load", no_decoding):
        result = import_images(photos)
    assert result.n_images == 4 and result.n_skipped == 0


@pytest.mark.parametrize("workers", [1, 3])
def test_threads_give_the_same_table(tmp_path, workers, monkeypatch):
    # small chunks, so that several threads really take part
    monkeypatch.setattr(
        "orangecontrib.imageanalytics.import_images._CHUNK", 3)
    for i in range(20):
        make_image(tmp_path / f"d{i % 3}" / f"img{i:02d}.png", (i + 1, 2))
    (tmp_path / "d0" / "bad.png").write_bytes(b"bad")
    serial = import_images(tmp_path, workers=1)
    threaded = import_images(tmp_path, workers=workers)
    assert list(threaded.table.get_column("image")) == \
        list(serial.table.get_column("image"))
    np.testing.assert_equal(threaded.table.metas, serial.table.metas)
    assert threaded.skipped == serial.skipped == [("d0/bad.png",
                                                   "not an image")]


def test_progress_reaches_total(photos):
    calls = []
    import_images(photos, progress=lambda done, total: calls.append(
        (done, total)))
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)


@pytest.mark.parametrize("stop_after", [0, 1, 2])
def test_cancel(tmp_path, monkeypatch, stop_after):
    monkeypatch.setattr(
        "orangecontrib.imageanalytics.import_images._CHUNK", 2)
    for i in range(10):
        make_image(tmp_path / f"d{i % 2}" / f"{i}.png")
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) > stop_after

    with pytest.raises(ImportCancelled):
        import_images(tmp_path, should_stop=should_stop)


def test_run_reports_progress_to_task_state(photos):
    state = FakeState()
    result = run(str(photos), state)
    assert result.n_images == 4
    assert state.progress[-1] == 100
    assert state.status


def test_run_cancelled_by_task_state(photos):
    with pytest.raises(ImportCancelled):
        run(str(photos), FakeState(stop_after=0))


@pytest.mark.parametrize("workers", [1, 4])
def test_cancel_while_reading_headers_stops_within_a_second(
        tmp_path, monkeypatch, workers):
    # slow storage: each header read takes a while, chunks hold many files
    from orangecontrib.imageanalytics import import_images as module
    from orangecontrib.imageanalytics.images import ImageInfo

    for i in range(600):
        (tmp_path / f"{i:03d}.jpg").write_bytes(b"x")
    stop_at = []

    def slow_info(path, **_kwargs):
        time.sleep(0.02)
        if not stop_at:
            stop_at.append(time.monotonic())
        return ImageInfo(1, 1, "JPEG")

    monkeypatch.setattr(module, "read_image_info", slow_info)
    with pytest.raises(ImportCancelled):
        import_images(tmp_path, workers=workers,
                      should_stop=lambda: bool(stop_at))
    assert time.monotonic() - stop_at[0] < 1


def test_cancel_while_listing_a_large_folder(tmp_path, monkeypatch):
    from orangecontrib.imageanalytics import import_images as module

    for i in range(3000):
        (tmp_path / f"{i:04d}.jpg").write_bytes(b"x")
    real_is_hidden = module._is_hidden
    stop_at = []

    def slow_is_hidden(entry):
        time.sleep(0.001)  # a slow network share
        if not stop_at:
            stop_at.append(time.monotonic())
        return real_is_hidden(entry)

    monkeypatch.setattr(module, "_is_hidden", slow_is_hidden)
    with pytest.raises(ImportCancelled):
        import_images(tmp_path, should_stop=lambda: bool(stop_at))
    assert time.monotonic() - stop_at[0] < 1


@pytest.mark.parametrize("reverse", [False, True])
def test_real_folder_wins_over_a_link_to_it(tmp_path, monkeypatch, reverse):
    # the table must not depend on the order in which the file system
    # lists a folder: the real folder is walked, the link to it is not
    from orangecontrib.imageanalytics import import_images as module

    make_image(tmp_path / "zoo" / "lion.jpg")
    make_image(tmp_path / "birds" / "owl.jpg")
    _symlink(tmp_path / "zoo", tmp_path / "animals")
    real_scandir = os.scandir

    class Listing:
        def __init__(self, path):
            with real_scandir(path) as it:
                self.entries = sorted(it, key=lambda e: e.name,
                                      reverse=reverse)

        def __enter__(self):
            return iter(self.entries)

        def __exit__(self, *_):
            return False

    monkeypatch.setattr(module.os, "scandir", Listing)
    table = import_images(tmp_path).table
    assert list(table.get_column("image")) == ["birds/owl.jpg", "zoo/lion.jpg"]
    assert table.domain.class_var.values == ("birds", "zoo")


XPM = b"""/* XPM */
static char *picture[] = {
"4 2 2 1",
"r c #FF0000",
"b c #0000FF",
"rrbb",
"rrbb"
};
"""


def test_x_bitmaps_and_pixmaps_are_imported_as_in_earlier_versions(tmp_path):
    Image.new("1", (16, 8), 1).save(tmp_path / "mark.xbm")
    (tmp_path / "flag.xpm").write_bytes(XPM)
    # an XPM that Pillow cannot decode is skipped with its reason
    (tmp_path / "broken.xpm").write_bytes(XPM.replace(b'"4 2 2 1"', b'"4 2 2 9"'))

    result = import_images(tmp_path)
    table = result.table
    assert sorted(table.get_column("image")) == ["flag.xpm", "mark.xbm"]
    sizes = dict(zip(table.get_column("image"),
                     zip(table.get_column("width"), table.get_column("height"))))
    assert sizes == {"flag.xpm": (4, 2), "mark.xbm": (16, 8)}
    reasons = dict(result.skipped)
    assert list(reasons) == ["broken.xpm"] and reasons["broken.xpm"]
