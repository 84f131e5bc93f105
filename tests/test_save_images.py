"""Saving images into folders: nothing lost, nothing outside the target."""
import errno
import io
import os
import socket
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from Orange.data import DiscreteVariable, Domain, StringVariable, Table
from PIL import Image
from thumbnail_fixtures import image_server

from orangecontrib.imageanalytics import save_target
from orangecontrib.imageanalytics.save_images import (
    FORMATS,
    KEEP_FORMAT,
    MISSING_FOLDER,
    SCALE_SIZES,
    TEMP_PREFIX,
    folder_columns,
    image_columns,
    save_images,
)

ROOT = os.path.join(os.path.dirname(__file__), "..")


def make_image(path, size=(40, 30), color=(200, 30, 40), mode="RGB", **save):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.new(mode, size, color).save(str(path), **save)
    return str(path)


def image_table(paths, classes=None, origin=None, class_values=None, metas=()):
    """A table with an image column (and a class, and extra metas)."""
    image = StringVariable("image")
    image.attributes["type"] = "image"
    if origin is not None:
        image.attributes["origin"] = str(origin)
    class_var = None
    y = None
    if classes is not None:
        values = class_values or sorted({c for c in classes if c is not None})
        class_var = DiscreteVariable("category", values=values)
        y = np.array([np.nan if c is None else values.index(c) for c in classes])
    extra_vars = [var for var, _ in metas]
    domain = Domain([], class_var, metas=[image, *extra_vars])
    meta_rows = [[p, *(col[i] for _, col in metas)] for i, p in enumerate(paths)]
    return Table.from_numpy(domain, np.empty((len(paths), 0)), y,
                            metas=np.array(meta_rows, dtype=object).reshape(len(paths), -1))


def snapshot(folder):
    """Every file below ``folder`` with its bytes."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder).replace(os.sep, "/")] = f.read()
    return out


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "photos"
    make_image(src / "tom.jpg", color=(250, 0, 0))
    make_image(src / "felix.png", color=(0, 250, 0))
    make_image(src / "rex.jpg", color=(0, 0, 250))
    return src


def test_formats_and_sizes_in_the_older_add_ons_order():
    assert FORMATS[:8] == ("png", "jpg", "gif", "tiff", "pdf", "bmp", "eps", "ico")
    assert FORMATS[8:] == ("webp",)
    assert [(key, size) for key, _, size in SCALE_SIZES] == [
        ("inception-v3", (299, 299)), ("squeezenet", (227, 227)),
        ("vgg16", (224, 224)), ("vgg19", (224, 224)), ("painters", (256, 256)),
        ("deeploc", (64, 64)), ("openface", (256, 256))]


def test_folders_by_class(photos, tmp_path):
    table = image_table(["tom.jpg", "felix.png", "rex.jpg"], ["cats", "cats", "dogs"],
                        origin=photos)
    report = save_images(table, tmp_path / "out")
    assert report.finished
    assert sorted(f.path for f in report.saved) == [
        "cats/felix.png", "cats/tom.png", "dogs/rex.png"]
    assert sorted(snapshot(tmp_path / "out")) == ["cats/felix.png", "cats/tom.png",
                                                  "dogs/rex.png"]
    assert report.summary() == "3 saved, 0 already there"
    with Image.open(tmp_path / "out" / "cats" / "tom.png") as im:
        assert im.size == (40, 30)
        assert im.getpixel((5, 5))[0] > 240


def test_target_with_the_users_files_keeps_them_all(photos, tmp_path):
    out = tmp_path / "out"
    make_image(out / "cats" / "tom.png", color=(1, 2, 3))  # a different image
    (out / "cats" / "notes.txt").write_text("mine")
    (out / "dogs").mkdir()
    (out / "dogs" / "rex.png").write_bytes(b"not even an image")
    (out / "holiday.jpg").write_bytes(b"...")
    before = snapshot(out)
    table = image_table(["tom.jpg", "rex.jpg"], ["cats", "dogs"], origin=photos)
    report = save_images(table, out)
    after = snapshot(out)
    for name, data in before.items():
        assert after[name] == data
    assert sorted(f.path for f in report.saved) == ["cats/tom-2.png", "dogs/rex-2.png"]
    assert len(after) == len(before) + 2


def test_saving_twice_changes_nothing(photos, tmp_path):
    table = image_table(["tom.jpg", "felix.png", "rex.jpg"], ["cats", "cats", "dogs"],
                        origin=photos)
    save_images(table, tmp_path / "out", format="jpg", size=(20, 20))
    first = snapshot(tmp_path / "out")
    mtimes = {p: os.stat(tmp_path / "out" / p).st_mtime_ns for p in first}
    report = save_images(table, tmp_path / "out", format="jpg", size=(20, 20))
    assert not report.saved
    assert len(report.already_there) == 3
    assert report.summary() == "0 saved, 3 already there"
    assert snapshot(tmp_path / "out") == first
    assert {p: os.stat(tmp_path / "out" / p).st_mtime_ns for p in first} == mtimes


def test_two_rows_with_the_same_file_name(tmp_path):
    make_image(tmp_path / "a" / "img.jpg", color=(255, 0, 0))
    make_image(tmp_path / "b" / "img.jpg", color=(0, 0, 255))
    table = image_table(["a/img.jpg", "b/img.jpg"], origin=tmp_path)
    report = save_images(table, tmp_path / "out")
    assert [f.path for f in report.saved] == ["img.png", "img-2.png"]
    with Image.open(tmp_path / "out" / "img-2.png") as im:
        assert im.getpixel((1, 1))[2] > 240
    again = save_images(table, tmp_path / "out")
    assert [f.path for f in again.already_there] == ["img.png", "img-2.png"]


def test_names_differing_in_case_do_not_collide(tmp_path):
    make_image(tmp_path / "x" / "Tom.jpg", color=(255, 0, 0))
    make_image(tmp_path / "y" / "tom.jpg", color=(0, 255, 0))
    table = image_table(["x/Tom.jpg", "y/tom.jpg", "x/Tom.jpg"], ["Cats", "cats", "Cats"],
                        origin=tmp_path, class_values=["Cats", "cats"])
    report = save_images(table, tmp_path / "out", folders_by=None)
    assert [f.path for f in report.saved] == ["Tom.png", "tom-2.png"]
    assert [f.path for f in report.already_there] == ["Tom.png"]
    report = save_images(table, tmp_path / "out2")
    assert sorted(f.path for f in report.saved) == ["Cats/Tom.png", "cats-2/tom.png"]


def test_existing_folder_in_other_case_is_used(photos, tmp_path):
    (tmp_path / "out" / "CATS").mkdir(parents=True)
    table = image_table(["tom.jpg"], ["cats"], origin=photos)
    report = save_images(table, tmp_path / "out")
    assert [f.path for f in report.saved] == ["CATS/tom.png"]


@pytest.mark.parametrize("value", ["../x", "a/b", "CON", " ", "..", "/etc", "C:\\x",
                                   "nul.txt", "x\ny", "Škofja Loka/日本"])
def test_class_values_stay_inside_the_target(photos, tmp_path, value):
    out = tmp_path / "deep" / "out"
    table = image_table(["tom.jpg"], [value], origin=photos)
    report = save_images(table, out)
    assert len(report.saved) == 1, report.skipped
    folder, name = report.saved[0].path.split("/")
    assert name == "tom.png"
    assert os.path.isfile(out / folder / name)
    assert sorted(os.listdir(tmp_path)) == ["deep", "photos"]
    assert os.listdir(tmp_path / "deep") == ["out"]
    assert os.listdir(out) == [folder]
    assert folder.strip() and folder not in (".", "..")
    assert folder.split(".")[0].upper() not in ("CON", "NUL")


def test_unicode_file_names(tmp_path):
    make_image(tmp_path / "src" / "čebela 日本.jpg")
    make_image(tmp_path / "src" / "e\u0301te\u0301.png")  # decomposed, as on macOS
    table = image_table(["čebela 日本.jpg", "e\u0301te\u0301.png"], ["žival", "žival"],
                        origin=tmp_path / "src")
    report = save_images(table, tmp_path / "out")
    assert {f.path for f in report.saved} == {"žival/čebela 日本.png", "žival/\u00e9t\u00e9.png"}


def test_names_keep_all_but_the_last_extension(tmp_path):
    make_image(tmp_path / "a.b.jpg")
    make_image(tmp_path / "CON.jpg")
    make_image(tmp_path / ".hidden.jpg")
    table = image_table(["a.b.jpg", "CON.jpg", ".hidden.jpg"], origin=tmp_path)
    report = save_images(table, tmp_path / "out")
    assert [f.path for f in report.saved] == ["a.b.png", "CON_.png", "_hidden.png"]


def test_missing_values_and_bad_files_are_skipped_with_reasons(photos, tmp_path):
    data = (photos / "tom.jpg").read_bytes()
    (photos / "cut.jpg").write_bytes(data[:len(data) // 2])
    (photos / "text.jpg").write_text("hello")
    table = image_table(["tom.jpg", "", "nope.jpg", "cut.jpg", "text.jpg", None],
                        origin=photos)
    report = save_images(table, tmp_path / "out")
    assert [f.path for f in report.saved] == ["tom.png"]
    reasons = {skip.row: skip.reason for skip in report.skipped}
    assert reasons == {1: "missing image value", 2: "file not found", 3: "truncated file",
                       4: "not an image", 5: "missing image value"}
    assert report.finished
    assert report.summary().startswith("1 saved, 0 already there, 5 skipped: "
                                       "2 × missing image value, ")
    assert snapshot(tmp_path / "out").keys() == {"tom.png"}


def test_truncated_file_is_not_copied(photos, tmp_path):
    data = (photos / "tom.jpg").read_bytes()
    (photos / "cut.jpg").write_bytes(data[:len(data) // 2])
    report = save_images(image_table(["cut.jpg"], origin=photos), tmp_path / "out",
                         format="jpg")
    assert [s.reason for s in report.skipped] == ["truncated file"]
    assert not snapshot(tmp_path / "out")


def test_refused_url_is_skipped(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on the port now
    table = image_table([f"http://127.0.0.1:{port}/cat.jpg"])
    report = save_images(table, tmp_path / "out")
    assert not report.saved
    assert report.skipped[0].reason.startswith("connection failed")
    assert report.finished


def test_missing_folder_value_goes_to_a_named_folder(photos, tmp_path):
    table = image_table(["tom.jpg", "rex.jpg"], ["cats", None], origin=photos)
    report = save_images(table, tmp_path / "out")
    assert sorted(f.path for f in report.saved) == [f"{MISSING_FOLDER}/rex.png", "cats/tom.png"]


def test_import_images_top_folder_category_saves_into_the_target(photos, tmp_path):
    # Import Images names the category of images beside the sub-folders "."
    table = image_table(["tom.jpg", "rex.jpg"], ["cats", "."], origin=photos)
    report = save_images(table, tmp_path / "out")
    assert sorted(f.path for f in report.saved) == ["cats/tom.png", "rex.png"]
    assert sorted(os.listdir(tmp_path / "out")) == ["cats", "rex.png"]


def test_folders_by_any_categorical_column(photos, tmp_path):
    predicted = DiscreteVariable("Logistic Regression", values=["cat", "dog"])
    table = image_table(["tom.jpg", "rex.jpg"], ["cats", "cats"], origin=photos,
                        metas=[(predicted, [0.0, 1.0])])
    assert folder_columns(table) == [table.domain.class_var, predicted]
    report = save_images(table, tmp_path / "by-pred", folders_by="Logistic Regression")
    assert sorted(f.path for f in report.saved) == ["cat/tom.png", "dog/rex.png"]
    report = save_images(table, tmp_path / "flat", folders_by=None)
    assert sorted(f.path for f in report.saved) == ["rex.png", "tom.png"]
    with pytest.raises(ValueError):
        save_images(table, tmp_path / "x", folders_by="image")
    with pytest.raises(ValueError):
        save_images(table, tmp_path / "x", folders_by="no such column")


def test_image_columns_put_type_image_first():
    plain = StringVariable("title")
    image = StringVariable("img")
    image.attributes["type"] = "image"
    table = Table.from_numpy(Domain([], metas=[plain, image]), np.empty((1, 0)),
                             metas=np.array([["a", "b"]], dtype=object))
    assert image_columns(table) == [image, plain]


def test_copy_is_byte_for_byte_for_the_same_format(tmp_path):
    src = tmp_path / "src"
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    path = make_image(src / "photo.JPEG", exif=exif.tobytes(), quality=60)
    make_image(src / "other.jpeg")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    table = image_table(["photo.JPEG", "other.jpeg"], origin=src)
    report = save_images(table, tmp_path / "out", format="jpg")
    assert [f.path for f in report.saved] == ["photo.jpg", "other.jpg"]
    assert (tmp_path / "out" / "photo.jpg").read_bytes() == (src / "photo.JPEG").read_bytes()
    assert os.stat(tmp_path / "out" / "photo.jpg").st_mtime == 1_000_000_000
    # scaling re-encodes
    report = save_images(table, tmp_path / "scaled", format="jpg", size=(10, 10))
    assert (tmp_path / "scaled" / "photo.jpg").read_bytes() != (src / "photo.JPEG").read_bytes()


def test_misnamed_file_is_re_encoded_not_copied(tmp_path):
    make_image(tmp_path / "src" / "fake.jpg", format="PNG")
    report = save_images(image_table(["fake.jpg"], origin=tmp_path / "src"),
                         tmp_path / "out", format="jpg")
    assert len(report.saved) == 1
    with Image.open(tmp_path / "out" / "fake.jpg") as im:
        assert im.format == "JPEG"


def test_exif_orientation_applied_when_re_encoding(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°
    make_image(tmp_path / "src" / "rot.jpg", size=(40, 20), exif=exif.tobytes())
    report = save_images(image_table(["rot.jpg"], origin=tmp_path / "src"), tmp_path / "out")
    assert report.saved
    with Image.open(tmp_path / "out" / "rot.png") as im:
        assert im.size == (20, 40)


def test_exif_kept_upright_when_re_encoding(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°
    exif[0x0110] = "Camera X"
    exif[0x0132] = "2024:05:01 10:00:00"
    make_image(tmp_path / "src" / "rot.jpg", size=(40, 20), exif=exif.tobytes())
    table = image_table(["rot.jpg"], origin=tmp_path / "src")
    for fmt in ("png", "jpg", "webp"):
        save_images(table, tmp_path / fmt, format=fmt, size=(30, 30), keep_aspect=True)
        with Image.open(tmp_path / fmt / f"rot.{fmt}") as im:
            saved = im.getexif()
            assert saved.get(0x0110) == "Camera X", fmt
            assert saved.get(0x0132) == "2024:05:01 10:00:00", fmt
            # the pixels are upright: no viewer may turn them again
            assert saved.get(0x0112, 1) == 1, fmt
            assert im.size[1] > im.size[0], fmt
    # formats without EXIF still save
    save_images(table, tmp_path / "bmp", format="bmp")
    assert (tmp_path / "bmp" / "rot.bmp").exists()


def test_damaged_exif_does_not_lose_the_image(tmp_path):
    make_image(tmp_path / "src" / "bad.jpg", size=(40, 20),
               exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7fgarbage")
    report = save_images(image_table(["bad.jpg"], origin=tmp_path / "src"),
                         tmp_path / "out", format="png")
    assert [f.path for f in report.saved] == ["bad.png"]
    with Image.open(tmp_path / "out" / "bad.png") as im:
        assert im.size == (40, 20)


def test_alpha_kept_or_composited_on_white(tmp_path):
    make_image(tmp_path / "src" / "clear.png", size=(8, 8), color=(255, 0, 0, 0), mode="RGBA")
    table = image_table(["clear.png"], origin=tmp_path / "src")
    for fmt in ("png", "webp", "tiff"):
        save_images(table, tmp_path / fmt, format=fmt, size=(4, 4))
        with Image.open(tmp_path / fmt / f"clear.{fmt}") as im:
            assert im.mode == "RGBA"
            assert im.getpixel((1, 1))[3] == 0
    for fmt in ("jpg", "bmp"):
        save_images(table, tmp_path / fmt, format=fmt)
        with Image.open(tmp_path / fmt / f"clear.{fmt}") as im:
            assert im.mode == "RGB"
            assert min(im.getpixel((1, 1))) > 240


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_writes_and_is_stable(photos, tmp_path, fmt):
    table = image_table(["tom.jpg", "felix.png"], origin=photos)
    report = save_images(table, tmp_path / "out", format=fmt, size=(16, 16))
    assert len(report.saved) == 2, report.skipped
    again = save_images(table, tmp_path / "out", format=fmt, size=(16, 16))
    assert len(again.already_there) == 2
    assert len(os.listdir(tmp_path / "out")) == 2


def test_scaling_with_and_without_aspect(photos, tmp_path):
    make_image(photos / "wide.jpg", size=(640, 480))
    table = image_table(["wide.jpg"], origin=photos)
    save_images(table, tmp_path / "a", size=(227, 227))
    save_images(table, tmp_path / "b", size=(227, 227), keep_aspect=True)
    with Image.open(tmp_path / "a" / "wide.png") as im:
        assert im.size == (227, 227)
    with Image.open(tmp_path / "b" / "wide.png") as im:
        assert im.size == (227, 170)


def test_link_leading_outside_is_not_followed(photos, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(outside, tmp_path / "out" / "cats")
    os.symlink(outside / "x.png", tmp_path / "out" / "tom.png")
    table = image_table(["tom.jpg"], ["cats"], origin=photos)
    report = save_images(table, tmp_path / "out")
    assert [f.path for f in report.saved] == ["cats-2/tom.png"]
    report = save_images(table, tmp_path / "out", folders_by=None)
    assert [f.path for f in report.saved] == ["tom-2.png"]
    assert os.listdir(outside) == []


def test_read_only_target_stops_with_a_message(photos, tmp_path):
    table = image_table(["tom.jpg", "rex.jpg"], origin=photos)
    out = tmp_path / "out"
    out.mkdir()
    with mock.patch.object(save_target.tempfile, "mkstemp",
                           side_effect=OSError(errno.EROFS, "Read-only file system")):
        report = save_images(table, out)
    assert report.error is not None and "read-only" in report.error
    assert not report.saved and not report.finished
    assert os.listdir(out) == []


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="permissions do not stop this user")
def test_folder_without_write_permission(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        report = save_images(image_table(["tom.jpg"], origin=photos), out)
    finally:
        out.chmod(0o700)
    assert "permission" in report.error


def test_target_that_is_a_file(photos, tmp_path):
    (tmp_path / "out").write_text("x")
    report = save_images(image_table(["tom.jpg"], origin=photos), tmp_path / "out")
    assert "not a folder" in report.error
    assert (tmp_path / "out").read_text() == "x"


def test_full_disk_keeps_what_was_written(photos, tmp_path):
    table = image_table(["tom.jpg", "felix.png", "rex.jpg"], origin=photos)
    real_fdopen = os.fdopen
    calls = []

    class FullDisk(io.RawIOBase):
        def __init__(self, fd):
            self.file = real_fdopen(fd, "wb")

        def write(self, data):
            self.file.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.file.close()

    def fdopen(fd, mode):
        calls.append(fd)
        return real_fdopen(fd, mode) if len(calls) <= 1 else FullDisk(fd)

    with mock.patch.object(save_target.os, "fdopen", fdopen):
        report = save_images(table, tmp_path / "out", workers=1)
    assert "disk is full" in report.error
    assert [f.path for f in report.saved] == ["tom.png"]
    assert sorted(os.listdir(tmp_path / "out")) == ["tom.png"]  # no temporary file
    with Image.open(tmp_path / "out" / "tom.png") as im:
        im.load()
    report = save_images(table, tmp_path / "out")
    assert report.finished and len(report.saved) == 2 and len(report.already_there) == 1


def test_stop_keeps_what_was_written_and_resume_finishes(photos, tmp_path):
    table = image_table(["tom.jpg", "felix.png", "rex.jpg"], origin=photos)
    done = []
    report = save_images(table, tmp_path / "out", progress=lambda d, t: done.append(d),
                         should_stop=lambda: len(done) >= 1)
    assert report.cancelled and not report.finished
    assert len(report.saved) == 1
    report = save_images(table, tmp_path / "out")
    assert len(report.saved) == 2 and len(report.already_there) == 1
    assert len(os.listdir(tmp_path / "out")) == 3


def test_stop_does_not_wait_for_an_image_being_prepared(photos, tmp_path):
    # a 12 MP photo takes seconds to encode; Stop must not wait for it
    import threading
    import time

    from orangecontrib.imageanalytics import save_images as module

    release, started = threading.Event(), threading.Event()
    real_prepare = module._prepare

    def slow_prepare(source, *args):
        if source.endswith("rex.jpg"):
            started.set()
            release.wait(30)
        return real_prepare(source, *args)

    table = image_table(["tom.jpg", "rex.jpg", "felix.png"], origin=photos)
    try:
        with mock.patch.object(module, "_prepare", slow_prepare):
            start = time.perf_counter()
            done = []
            report = save_images(table, tmp_path / "out", workers=1,
                                 progress=lambda d, t: done.append(d),
                                 should_stop=lambda: bool(done) and started.is_set())
            elapsed = time.perf_counter() - start
    finally:
        release.set()
    assert elapsed < 10
    assert report.cancelled
    assert [f.path for f in report.saved] == ["tom.png"]
    assert sorted(os.listdir(tmp_path / "out")) == ["tom.png"]


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from orangecontrib.imageanalytics import save_images, save_target as module
    sys.path.insert(0, "tests")
    from test_save_images import image_table

    real_fdopen = os.fdopen
    opened = []

    class Killer:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *args):
            self.f.close()
        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def fdopen(fd, mode):
        opened.append(fd)
        f = real_fdopen(fd, mode)
        return Killer(f) if len(opened) == 4 else f

    module.os.fdopen = fdopen
    src, out = sys.argv[1:]
    names = sorted(os.listdir(src))
    save_images.save_images(image_table(names, origin=src), out, workers=1)
""")


def test_killed_save_leaves_no_partial_file_and_resumes(tmp_path):
    src = tmp_path / "src"
    for i in range(8):
        make_image(src / f"img{i}.jpg", size=(64, 48), color=(30 * i, 0, 0))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(src), str(out)],
                          cwd=ROOT, capture_output=True, timeout=120, check=False)
    assert proc.returncode == -9, proc.stderr.decode()
    names = os.listdir(out)
    finished = sorted(n for n in names if not n.startswith(TEMP_PREFIX))
    assert finished == ["img0.png", "img1.png", "img2.png"]
    assert len(names) == 4  # and one half-written temporary
    for name in finished:
        with Image.open(out / name) as im:
            im.load()
    table = image_table(sorted(os.listdir(src)), origin=src)
    report = save_images(table, out)
    assert len(report.already_there) == 3 and len(report.saved) == 5
    assert sorted(os.listdir(out)) == [f"img{i}.png" for i in range(8)]


def test_progress_and_unknown_format(photos, tmp_path):
    table = image_table(["tom.jpg", "rex.jpg"], origin=photos)
    seen = []
    save_images(table, tmp_path / "out", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
    with pytest.raises(ValueError, match="png.*original"):
        save_images(table, tmp_path / "out", format="jpeg2000")


def test_categorical_image_column_and_empty_table(photos, tmp_path):
    image = DiscreteVariable("file", values=["rex.jpg", "tom.jpg"])
    image.attributes.update(type="image", origin=str(photos))
    table = Table.from_numpy(Domain([], metas=[image]), np.empty((3, 0)),
                             metas=np.array([[1.0], [np.nan], [0.0]]))
    report = save_images(table, tmp_path / "out")
    assert [f.path for f in report.saved] == ["tom.png", "rex.png"]
    assert [s.reason for s in report.skipped] == ["missing image value"]
    empty = save_images(table[:0], tmp_path / "empty")
    assert empty.finished and empty.total == 0


def test_colour_profile_kept_when_re_encoding(tmp_path):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    make_image(tmp_path / "src" / "p.jpg", size=(64, 48), icc_profile=profile)
    make_image(tmp_path / "src" / "clear.png", color=(9, 9, 9, 0), mode="RGBA",
               icc_profile=profile)
    table = image_table(["p.jpg", "clear.png"], origin=tmp_path / "src")
    save_images(table, tmp_path / "out", format="png", size=(32, 32))
    save_images(table, tmp_path / "jpg", format="jpg", size=(32, 32))
    for path in ("out/p.png", "out/clear.png", "jpg/p.jpg", "jpg/clear.jpg"):
        with Image.open(tmp_path / path) as im:
            assert im.info.get("icc_profile") == profile, path


def test_keep_format_copies_each_image_as_it_is(tmp_path):
    src = tmp_path / "src"
    make_image(src / "tom.JPEG", quality=55)
    make_image(src / "felix.png", color=(0, 250, 0))
    make_image(src / "anim.gif", mode="P", color=3)
    make_image(src / "fake.jpg", format="PNG")  # a PNG whatever its name says
    make_image(src / "scan.tif", compression="tiff_lzw")
    for path in src.iterdir():
        os.utime(path, (1_000_000_000, 1_000_000_000))
    names = ["tom.JPEG", "felix.png", "anim.gif", "fake.jpg", "scan.tif"]
    report = save_images(image_table(names, origin=src), tmp_path / "out",
                         format=KEEP_FORMAT)
    assert report.finished
    saved = {f.source: f.path for f in report.saved}
    assert saved == {"tom.JPEG": "tom.jpg", "felix.png": "felix.png", "anim.gif": "anim.gif",
                     "fake.jpg": "fake.png", "scan.tif": "scan.tiff"}
    for source, path in saved.items():
        assert (tmp_path / "out" / path).read_bytes() == (src / source).read_bytes(), path
        assert os.stat(tmp_path / "out" / path).st_mtime == 1_000_000_000, path
    # saving again finds them all there
    again = save_images(image_table(names, origin=src), tmp_path / "out", format=KEEP_FORMAT)
    assert (len(again.saved), len(again.already_there)) == (0, 5)


def test_keep_format_writes_png_for_formats_that_cannot_be_written(tmp_path):
    make_image(tmp_path / "src" / "scan.ppm", color=(10, 200, 30))
    report = save_images(image_table(["scan.ppm"], origin=tmp_path / "src"),
                         tmp_path / "out", format=KEEP_FORMAT)
    assert [f.path for f in report.saved] == ["scan.png"]
    with Image.open(tmp_path / "out" / "scan.png") as im:
        assert im.format == "PNG"
        assert im.getpixel((3, 3))[:3] == (10, 200, 30)


def test_keep_format_scales_in_the_images_own_format(photos, tmp_path):
    table = image_table(["tom.jpg", "felix.png"], origin=photos)
    report = save_images(table, tmp_path / "out", format=KEEP_FORMAT, size=(20, 10))
    assert sorted(f.path for f in report.saved) == ["felix.png", "tom.jpg"]
    for name, fmt in (("tom.jpg", "JPEG"), ("felix.png", "PNG")):
        with Image.open(tmp_path / "out" / name) as im:
            assert (im.format, im.size) == (fmt, (20, 10))


def test_keep_format_skips_a_truncated_file(photos, tmp_path):
    # large enough that the half kept holds the whole header
    pixels = np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG")
    data = out.getvalue()
    (photos / "cut.jpg").write_bytes(data[:len(data) // 2])
    report = save_images(image_table(["cut.jpg", "tom.jpg"], origin=photos),
                         tmp_path / "out", format=KEEP_FORMAT)
    assert [s.reason for s in report.skipped] == ["truncated file"]
    assert snapshot(tmp_path / "out").keys() == {"tom.jpg"}


def test_keep_format_copies_a_downloaded_image(photos, tmp_path):
    data = (photos / "tom.jpg").read_bytes()
    with image_server({"/pics/cat.jpg": data}) as base:
        report = save_images(image_table([base + "/pics/cat.jpg"]), tmp_path / "out",
                             format=KEEP_FORMAT)
    assert [f.path for f in report.saved] == ["cat.jpg"]
    assert (tmp_path / "out" / "cat.jpg").read_bytes() == data


def test_summary_says_where(photos, tmp_path):
    report = save_images(image_table(["tom.jpg"], origin=photos), tmp_path / "out")
    assert report.summary(into="~/out") == "1 saved into ~/out, 0 already there"
