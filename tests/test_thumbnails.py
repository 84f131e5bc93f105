"""Thumbnails and their disk cache, without Qt."""
import io
import multiprocessing
import os
import shutil
import time

import pytest
from PIL import Image
from thumbnail_fixtures import bad_files, image_server, write_panorama, write_photo

from orangecontrib.imageanalytics import image_sources, thumbnails
from orangecontrib.imageanalytics.thumbnails import (
    SIZE_BUCKETS,
    Thumbnail,
    ThumbnailCache,
    bucket_for,
    make_thumbnail,
)


def test_buckets():
    assert SIZE_BUCKETS == tuple(sorted(SIZE_BUCKETS))
    assert bucket_for(1) == SIZE_BUCKETS[0]
    assert bucket_for(100) == 128
    assert bucket_for(128) == 128
    assert bucket_for(129) == 256
    assert bucket_for(10**6) == SIZE_BUCKETS[-1]


def test_size_and_source_size(tmp_path):
    path = write_photo(tmp_path / "a.jpg", (800, 600))
    thumb = make_thumbnail(path, 100, cache=None)
    assert thumb.error is None
    assert max(thumb.image.size) == 128
    assert thumb.image.size == (128, 96)
    assert thumb.source_size == (800, 600)
    small = write_photo(tmp_path / "s.png", (40, 30))
    assert make_thumbnail(small, 256, cache=None).image.size == (40, 30)


def test_relative_to_origin_and_file_url(tmp_path):
    write_photo(tmp_path / "b.png", (50, 20))
    assert make_thumbnail("b.png", 64, origin=str(tmp_path), cache=None).image.size == (50, 20)
    url = (tmp_path / "b.png").as_uri()
    assert make_thumbnail(url, 64, cache=None).image.size == (50, 20)


def test_jpeg_decoded_at_draft_size(tmp_path, monkeypatch):
    path = write_photo(tmp_path / "big.jpg", (4000, 3000))
    seen = []
    real = Image.Image.thumbnail

    def spy(self, *args, **kwargs):
        seen.append(self.size)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "thumbnail", spy)
    thumb = make_thumbnail(path, 128, cache=None)
    assert thumb.image.size == (128, 96)
    # DCT scaling decoded 500 × 375, not 12 megapixels
    assert seen and seen[0][0] <= 1000


def test_exif_orientation_and_alpha(tmp_path):
    im = Image.new("RGB", (60, 30), "red")
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert make_thumbnail(str(tmp_path / "rot.jpg"), 64, cache=None).image.size == (30, 60)
    Image.new("RGBA", (20, 20), (0, 0, 255, 100)).save(tmp_path / "t.png")
    thumb = make_thumbnail(str(tmp_path / "t.png"), 64, cache=None)
    assert thumb.image.mode == "RGBA"
    assert thumb.image.getpixel((5, 5))[3] == 100


@pytest.mark.parametrize("name, reason", [
    ("zero.jpg", "empty file"),
    ("truncated.jpg", "truncated"),
    ("text.jpg", "not an image"),
    ("bomb.png", "image too large"),
    ("missing.jpg", "file not found"),
])
def test_bad_inputs_give_reasons(tmp_path, name, reason):
    files = bad_files(tmp_path)
    thumb = make_thumbnail(files[name], 128, origin=str(tmp_path))
    assert thumb.image is None
    assert reason in thumb.error


@pytest.mark.parametrize("value", [None, "", "   ", float("nan")])
def test_missing_value(value):
    assert make_thumbnail(value, 128) == Thumbnail(None, "missing value", None)


def test_panorama_is_shown(tmp_path):
    path = write_panorama(tmp_path / "pano.png")
    thumb = make_thumbnail(path, 256, cache=None)
    assert thumb.error is None
    assert thumb.image.size[0] == 256 and thumb.image.size[1] >= 1
    assert thumb.source_size == (30000, 500)


def test_url_and_404(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), "green").save(buf, "PNG")
    cache = ThumbnailCache(str(tmp_path / "c"))
    with image_server({"/img/a.png": buf.getvalue()}) as base:
        thumb = make_thumbnail("a.png", 128, origin=base + "/img", cache=cache)
        assert thumb.error is None and thumb.image.size == (128, 85)
        missing = make_thumbnail(base + "/img/none.png", 128, cache=cache)
        assert missing.image is None and "404" in missing.error
    assert len(cache) == 1


def test_never_raises(monkeypatch):
    def boom(*_, **__):
        raise RuntimeError("kaput")

    monkeypatch.setattr(thumbnails, "resolve_source", boom)
    thumb = make_thumbnail("x.jpg", 64)
    assert thumb.image is None and "kaput" in thumb.error


def test_cache_hit_and_edited_file_not_stale(tmp_path):
    cache = ThumbnailCache(str(tmp_path / "cache"))
    path = write_photo(tmp_path / "p.png", (100, 50), color=(255, 0, 0))
    first = make_thumbnail(path, 64, cache=cache)
    assert len(cache) == 1
    again = make_thumbnail(path, 64, cache=cache)
    assert again.image.size == first.image.size
    assert abs(again.image.getpixel((1, 1))[0] - 255) < 8
    assert again.source_size == (100, 50)
    # another size is another entry
    make_thumbnail(path, 128, cache=cache)
    assert len(cache) == 2
    # an edited file (new mtime) is made again
    write_photo(path, (100, 50), color=(0, 0, 255))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    edited = make_thumbnail(path, 64, cache=cache)
    assert edited.image.getpixel((1, 1))[2] > 240 and edited.image.getpixel((1, 1))[0] < 10


def is_red(thumb):  # kept as JPEG: near, not exactly
    r, g, b = thumb.image.getpixel((1, 1))[:3]
    return r > 240 and g < 15 and b < 15


def is_blue(thumb):
    r, g, b = thumb.image.getpixel((1, 1))[:3]
    return b > 240 and r < 15 and g < 15


def _next_file_time(path):
    """Wait until a file written now gets another change time than ``path``
    (file times are coarser than a test's steps); bounded."""
    probe = str(path) + ".probe"
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with open(probe, "wb"):
            pass
        if os.stat(probe).st_ctime_ns != os.stat(path).st_ctime_ns:
            break
        time.sleep(0.001)
    os.unlink(probe)


@pytest.mark.parametrize("how", ["copy", "rename"])
def test_edit_keeping_size_and_mtime_not_stale(tmp_path, how):
    # cp -p and some sync tools write new bytes but keep the size and the
    # modification time
    cache = ThumbnailCache(str(tmp_path / "cache"))
    path = write_photo(tmp_path / "p.bmp", (40, 30), color=(255, 0, 0))
    assert is_red(make_thumbnail(path, 64, cache=cache))
    _next_file_time(path)
    before = os.stat(path)
    edited = write_photo(tmp_path / "edited.bmp", (40, 30), color=(0, 0, 255))
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    if how == "copy":
        shutil.copy2(edited, path)  # as cp -p: into the same file
    else:
        os.replace(edited, path)  # a new file in its place
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert is_blue(make_thumbnail(path, 64, cache=cache))
    assert len(cache) == 2


def test_edited_image_at_the_same_url_not_stale(tmp_path, monkeypatch):
    image_sources.set_http_cache_dir(str(tmp_path / "http"))
    cache = ThumbnailCache(str(tmp_path / "cache"))
    decoded = []
    real = thumbnails.decode_image

    def counting(*args, **kwargs):
        decoded.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(thumbnails, "decode_image", counting)

    def png(color):
        buf = io.BytesIO()
        Image.new("RGB", (30, 20), color).save(buf, "PNG")
        return buf.getvalue()

    files = {"/a.png": png((255, 0, 0))}
    try:
        with image_server(files) as base:
            thumb = make_thumbnail(base + "/a.png", 64, cache=cache)
            assert is_red(thumb)
            # unchanged: the kept thumbnail, nothing decoded
            thumb = make_thumbnail(base + "/a.png", 64, cache=cache)
            assert is_red(thumb)
            assert len(decoded) == 1
            files["/a.png"] = png((0, 0, 255))
            thumb = make_thumbnail(base + "/a.png", 64, cache=cache)
            assert is_blue(thumb)
            assert len(decoded) == 2
    finally:
        image_sources.set_http_cache_dir(None)


def test_cache_hit_does_not_read_the_file(tmp_path, monkeypatch):
    cache = ThumbnailCache(str(tmp_path / "cache"))
    path = write_photo(tmp_path / "p.jpg", (100, 50))
    make_thumbnail(path, 64, cache=cache)
    monkeypatch.setattr(thumbnails, "read_source", lambda *a, **k: 1 / 0)
    assert make_thumbnail(path, 64, cache=cache).error is None


def test_cache_bounded_lru(tmp_path):
    cache = ThumbnailCache(str(tmp_path / "cache"), max_bytes=10_000)
    image = Image.effect_noise((64, 64), 80).convert("RGB")
    cache.put("old", Thumbnail(image, None, (64, 64)))
    size = cache.total_bytes()
    assert size > 1000
    for i in range(40):
        cache.put(f"k{i}", Thumbnail(image, None, (64, 64)))
        if i == 0:
            with cache.store.connection() as conn:  # make "old" the least recent
                conn.execute("UPDATE thumbnails SET used = 0 WHERE key = 'old'")
    cache.evict()
    assert cache.total_bytes() <= 10_000
    assert cache.get("old") is None
    assert cache.get("k39") is not None
    cache.clear()
    assert len(cache) == 0


def test_cache_stores_no_pickle(tmp_path):
    cache = ThumbnailCache(str(tmp_path / "cache"))
    cache.put("k", Thumbnail(Image.new("RGB", (8, 8)), None, (8, 8)))
    with cache.store.connection() as conn:
        (data,) = conn.execute("SELECT data FROM thumbnails").fetchone()
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG


def test_damaged_cache_file_is_a_miss(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "thumbnails.sqlite").write_bytes(b"garbage" * 100)
    cache = ThumbnailCache(str(folder))
    path = write_photo(tmp_path / "p.png")
    assert make_thumbnail(path, 64, cache=cache).error is None


def test_default_cache_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(thumbnails.THUMBNAIL_CACHE_ENV, str(tmp_path / "env"))
    assert thumbnails.DEFAULT_CACHE.folder == str(tmp_path / "env")
    make_thumbnail(write_photo(tmp_path / "p.png"), 64)
    assert (tmp_path / "env" / "thumbnails.sqlite").exists()


def _fill(args):
    folder, start = args
    cache = ThumbnailCache(folder)
    image = Image.new("RGB", (32, 32), "red")
    for i in range(start, start + 30):
        cache.put(f"k{i}", Thumbnail(image, None, (32, 32)))
        cache.get(f"k{i - 1}")
    return len(cache)


def test_two_processes(tmp_path):
    folder = str(tmp_path / "shared")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_fill, [(folder, 0), (folder, 100)])
    assert len(ThumbnailCache(folder)) == 60
