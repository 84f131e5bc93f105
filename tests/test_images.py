"""Tests for images.py: sources, formats, modes, orientation, limits, failures."""

import gzip
import io
import random
import struct
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, features

from orangecontrib.imageanalytics.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageInfo,
    ImageLoadError,
    LoadResult,
    decode_image,
    load_image,
    read_image_info,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def two_halves(size=(64, 48), mode="RGB") -> Image.Image:
    """Left half red, right half blue: catches flips and channel swaps."""
    im = Image.new("RGB", size, BLUE)
    im.paste(RED, (0, 0, size[0] // 2, size[1]))
    return im.convert(mode) if mode != "RGB" else im


def pixel(im: Image.Image, x: int, y: int) -> tuple:
    return tuple(int(v) for v in np.asarray(im)[y, x])


def assert_close(actual, expected, tol=12):
    assert all(abs(a - e) <= tol for a, e in zip(actual, expected)), (actual, expected)


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header that claims a huge size, with almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def heif_can_encode() -> bool:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        encode(Image.new("RGB", (16, 16)), "HEIF")
        return True
    except Exception:  # noqa: BLE001 - any failure means "cannot test"
        return False


def svg_available() -> bool:
    try:
        import cairosvg

        cairosvg.svg2png(bytestring=SVG)
        return True
    except Exception:  # noqa: BLE001 - missing package or cairo library
        return False


SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
       b'width="64" height="48"><rect width="32" height="48" fill="#ff0000"/>'
       b'<rect x="32" width="32" height="48" fill="#0000ff"/></svg>')


# ---------------------------------------------------------------- formats

FORMATS = [
    ("JPEG", ".jpg", {"quality": 95}),
    ("PNG", ".png", {}),
    ("TIFF", ".tiff", {}),
    ("BMP", ".bmp", {}),
    ("GIF", ".gif", {}),
    ("WEBP", ".webp", {"lossless": True}),
    ("PPM", ".ppm", {}),
    ("ICO", ".ico", {"sizes": [(64, 48)]}),
]


@pytest.mark.parametrize("fmt, ext, kwargs", FORMATS)
def test_formats(tmp_path, fmt, ext, kwargs):
    assert ext in IMAGE_EXTENSIONS
    path = tmp_path / f"img{ext}"
    path.write_bytes(encode(two_halves(), fmt, **kwargs))
    result = load_image(str(path))
    assert result.error is None
    im = result.image
    assert im.mode == "RGB"
    assert im.size == (64, 48)
    assert_close(pixel(im, 5, 5), RED)
    assert_close(pixel(im, 60, 40), BLUE)
    info = read_image_info(str(path))
    assert (info.width, info.height) == (64, 48)
    assert info.format == ("PPM" if fmt == "PPM" else fmt)


@pytest.mark.skipif(not heif_can_encode(), reason="pillow-heif cannot encode HEIF here")
def test_heif(tmp_path):
    assert ".heic" in IMAGE_EXTENSIONS
    path = tmp_path / "img.heic"
    path.write_bytes(encode(two_halves(), "HEIF", quality=95))
    im = decode_image(path.read_bytes())
    assert im.size == (64, 48)
    assert_close(pixel(im, 5, 5), RED, tol=30)
    assert_close(pixel(im, 60, 40), BLUE, tol=30)
    assert read_image_info(str(path)) == ImageInfo(64, 48, "HEIF")


@pytest.mark.skipif(not svg_available(), reason="SVG support needs cairosvg and cairo")
def test_svg(tmp_path):
    path = tmp_path / "img.svg"
    path.write_bytes(SVG)
    im = decode_image(SVG)
    assert im.mode == "RGB" and im.size == (64, 48)
    assert_close(pixel(im, 5, 5), RED)
    assert_close(pixel(im, 60, 40), BLUE)
    assert read_image_info(str(path)) == ImageInfo(64, 48, "SVG")
    huge = SVG.replace(b'width="64" height="48"', b'width="100000" height="100000"')
    with pytest.raises(ImageLoadError, match="image too large: 10000 megapixels"):
        decode_image(huge)
    # transparent background ends up white
    assert pixel(decode_image(SVG.replace(b'fill="#0000ff"', b'fill="none"')), 60, 40) \
        == (255, 255, 255)


def test_svg_without_cairosvg(monkeypatch):
    monkeypatch.setitem(sys.modules, "cairosvg", None)
    monkeypatch.setitem(sys.modules, "cairosvg.parser", None)
    monkeypatch.setitem(sys.modules, "cairosvg.surface", None)
    with pytest.raises(ImageLoadError, match="SVG support needs cairosvg"):
        decode_image(SVG)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")
def test_avif_with_orientation(tmp_path):
    path = tmp_path / "img.avif"
    path.write_bytes(oriented(fmt="AVIF", quality=95))
    assert ".avif" in IMAGE_EXTENSIONS
    im = decode_image(path.read_bytes())
    assert im.size == (40, 60)
    assert_close(pixel(im, 35, 5), RED, tol=40)
    assert read_image_info(str(path)) == ImageInfo(40, 60, "AVIF")


@pytest.mark.skipif(not heif_can_encode(), reason="pillow-heif cannot encode HEIF here")
def test_heif_truncated():
    data = encode(noise(), "HEIF")
    with pytest.raises(ImageLoadError, match="truncated file"):
        decode_image(data[:100])


@pytest.mark.skipif(not svg_available(), reason="SVG support needs cairosvg and cairo")
def test_svgz_and_broken_svg(tmp_path):
    path = tmp_path / "img.svgz"
    path.write_bytes(gzip.compress(SVG))
    assert decode_image(path.read_bytes()).size == (64, 48)
    assert read_image_info(str(path)) == ImageInfo(64, 48, "SVG")
    with pytest.raises(ImageLoadError) as err:
        decode_image(SVG[:-10])
    assert err.value.reason.startswith("broken SVG")
    assert "line" not in err.value.reason


def test_gif_first_frame():
    frames = [Image.new("RGB", (20, 10), RED), Image.new("RGB", (20, 10), BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert_close(pixel(decode_image(data), 3, 3), RED)


def test_ico_largest_size():
    data = encode(Image.new("RGB", (128, 128), RED), "ICO", sizes=[(16, 16), (128, 128)])
    assert decode_image(data).size == (128, 128)


# ---------------------------------------------------------------- modes


def test_alpha_composited_on_white():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    im = decode_image(encode(rgba, "PNG"))
    assert pixel(im, 5, 5) == (255, 255, 255)
    assert pixel(im, 0, 0) == RED
    assert_close(pixel(im, 1, 0), (127, 127, 127), tol=2)
    assert pixel(decode_image(encode(Image.new("LA", (4, 4), (0, 0)), "PNG")), 1, 1) \
        == (255, 255, 255)


def test_keep_alpha_returns_rgba_only_for_transparent_images():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    im = decode_image(encode(rgba, "PNG"), keep_alpha=True)
    assert im.mode == "RGBA"
    assert im.getpixel((0, 0)) == (255, 0, 0, 255)
    assert im.getpixel((5, 5))[3] == 0
    grey_alpha = decode_image(encode(Image.new("LA", (4, 4), (9, 0)), "PNG"), keep_alpha=True)
    assert grey_alpha.mode == "RGBA" and grey_alpha.getpixel((1, 1))[3] == 0
    opaque = decode_image(encode(Image.new("RGB", (4, 4), RED), "PNG"), keep_alpha=True)
    assert opaque.mode == "RGB"


@pytest.mark.parametrize("mode", ["P", "L", "RGB"])
def test_transparency_key_on_white(mode):
    im = Image.new(mode, (4, 4), 0)
    if mode == "P":
        im.putpalette([0, 0, 0] * 256)
    transparency = (0, 0, 0) if mode == "RGB" else 0
    out = decode_image(encode(im, "PNG", transparency=transparency))
    assert pixel(out, 2, 2) == (255, 255, 255)


def test_palette_gif_with_transparency():
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 0)
    out = decode_image(encode(im, "GIF", transparency=0))
    assert pixel(out, 0, 0) == (255, 255, 255)
    assert pixel(out, 2, 2) == RED


def test_grey_and_bilevel():
    assert pixel(decode_image(encode(Image.new("L", (4, 4), 77), "PNG")), 1, 1) == (77,) * 3
    assert pixel(decode_image(encode(Image.new("1", (4, 4), 1), "BMP")), 1, 1) == (255,) * 3


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PPM"])
def test_16bit_scaled_not_clipped(fmt):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(2, axis=0)
    im = decode_image(encode(Image.fromarray(values), fmt))
    assert np.asarray(im)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_float_image():
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    im = decode_image(encode(Image.fromarray(values), "TIFF"))
    assert np.asarray(im)[0, :, 1].tolist() == [0, 128, 255]


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk(fmt):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red
    assert_close(pixel(decode_image(encode(cmyk, fmt)), 4, 4), RED)


def test_ycbcr_jpeg():
    im = two_halves().convert("YCbCr")
    out = decode_image(encode(im, "JPEG", quality=95))
    assert out.mode == "RGB"
    assert_close(pixel(out, 5, 5), RED)


# ---------------------------------------------------------------- orientation


def oriented(size=(60, 40), orientation=6, fmt="JPEG", **kwargs) -> bytes:
    """Stored: a red square in the top-left corner on blue."""
    im = Image.new("RGB", size, BLUE)
    im.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, fmt, exif=exif.tobytes(), **kwargs)


def oriented_jpeg(size=(60, 40), orientation=6) -> bytes:
    return oriented(size, orientation, "JPEG", quality=95)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_orientation_other_formats(fmt):
    im = decode_image(oriented(fmt=fmt))
    assert im.size == (40, 60)
    assert_close(pixel(im, 35, 5), RED)


def test_exif_orientation(tmp_path):
    data = oriented_jpeg()
    im = decode_image(data)
    # orientation 6: displayed = stored rotated 90 degrees clockwise
    assert im.size == (40, 60)
    assert_close(pixel(im, 35, 5), RED)
    assert_close(pixel(im, 5, 5), BLUE)
    assert_close(pixel(im, 35, 55), BLUE)
    path = tmp_path / "rot.jpg"
    path.write_bytes(data)
    assert read_image_info(str(path)) == ImageInfo(40, 60, "JPEG")


@pytest.mark.parametrize("orientation, corner", [
    (1, (5, 5)), (2, (55, 5)), (3, (55, 35)), (4, (5, 35)),
    (5, (5, 5)), (7, (35, 55)), (8, (5, 55))])
def test_every_orientation(orientation, corner):
    im = decode_image(oriented_jpeg(orientation=orientation))
    assert im.size == ((60, 40) if orientation < 5 else (40, 60))
    assert_close(pixel(im, *corner), RED)


# ---------------------------------------------------------------- draft


def test_draft_keeps_min_size_and_saves_pixels():
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8))
    data = encode(big, "JPEG", quality=80)
    assert decode_image(data).size == (2000, 1500)
    small = decode_image(data, min_size=(227, 227))
    assert small.size[0] >= 227 and small.size[1] >= 227
    # 1/4 scale: 1/8 would give 188 rows, fewer than asked for
    assert small.size == (500, 375)
    thumb = decode_image(data, min_size=(128, 128))
    assert thumb.size == (250, 188)
    assert thumb.size[0] * thumb.size[1] * 60 < 2000 * 1500


def test_draft_respects_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (1600, 800), RED), "JPEG", exif=exif.tobytes())
    im = decode_image(data, min_size=(300, 100))  # displayed: 800 wide, 1600 high
    assert im.size[0] >= 300 and im.size[1] >= 100
    assert im.size == (400, 800)


def test_draft_for_mpo():
    frames = [Image.new("RGB", (1600, 1200), RED), Image.new("RGB", (1600, 1200), BLUE)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    im = decode_image(data, min_size=(200, 150))
    assert im.size == (200, 150)
    assert_close(pixel(im, 10, 10), RED)


def test_draft_ignored_for_other_formats():
    data = encode(Image.new("RGB", (800, 600), RED), "PNG")
    assert decode_image(data, min_size=(100, 100)).size == (800, 600)


# ---------------------------------------------------------------- bad input


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert load_image(str(path)) == LoadResult(None, "empty file")
    with pytest.raises(ImageLoadError, match="empty file"):
        read_image_info(str(path))
    with pytest.raises(ImageLoadError, match="empty file"):
        decode_image(b"")


def noise(size=(300, 200)) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_truncated(fmt):
    data = encode(noise(), fmt)
    with pytest.raises(ImageLoadError) as err:
        decode_image(data[: len(data) // 2])
    assert err.value.reason == "truncated file"


def test_truncated_header_is_truncated():
    data = encode(noise(), "JPEG")
    with pytest.raises(ImageLoadError, match="truncated file"):
        decode_image(data[:8])


def test_truncated_image_does_not_flip_global_flag():
    from PIL import ImageFile

    data = encode(noise(), "JPEG")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageLoadError):
        decode_image(data[:-100])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: milk, eggs\n" * 10)
    assert load_image(str(path)) == LoadResult(None, "not an image")
    with pytest.raises(ImageLoadError, match="not an image"):
        read_image_info(str(path))


def test_unsupported_format():
    with pytest.raises(ImageLoadError, match="unsupported format: PDF"):
        decode_image(b"%PDF-1.4\n" + b"x" * 100)
    with pytest.raises(ImageLoadError, match="unsupported format"):
        decode_image(b"\x00\x00\x00\x20ftypqt  " + b"\x00" * 100)


def test_bomb_refused_before_decoding(tmp_path):
    data = png_header_only(30000, 30000)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Pillow bomb warning either
        with pytest.raises(ImageLoadError) as err:
            decode_image(data)
        assert err.value.reason == "image too large: 900 megapixels"
        with pytest.raises(ImageLoadError, match="image too large: 900 megapixels"):
            read_image_info(str(path))
        assert load_image(str(path)).error == "image too large: 900 megapixels"
        # the limit is ours, not Pillow's global one
        assert read_image_info(str(path), max_pixels=10**9) == ImageInfo(30000, 30000, "PNG")
    small = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageLoadError, match="image too large: 0.01 megapixels"):
        decode_image(small, max_pixels=9999)
    assert decode_image(small, max_pixels=10000).size == (100, 100)
    assert DEFAULT_MAX_PIXELS < 30000 * 30000


def test_missing_file(tmp_path):
    assert load_image(str(tmp_path / "nope.jpg")) == LoadResult(None, "file not found")
    assert load_image("nope.jpg", origin=str(tmp_path)).error == "file not found"
    with pytest.raises(ImageLoadError, match="file not found"):
        read_image_info(str(tmp_path / "nope.jpg"))
    assert load_image(None) == LoadResult(None, "missing value")


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on broken EXIF
def test_garbage_raises_only_image_load_error():
    rng = random.Random(7)
    heads = [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00",
             b"RIFF\x00\x00\x00\x00WEBP", b"P6\n", b"\x00\x00\x01\x00", b"<svg"]
    for i in range(150):
        data = heads[i % len(heads)] + rng.randbytes(rng.randrange(0, 300))
        try:
            decode_image(data, min_size=(10, 10))
        except ImageLoadError as e:
            assert e.reason


def test_threads_agree(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(encode(two_halves(), "PNG"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(encode(noise(), "JPEG")[:500])
    sources = [str(good), str(bad), str(tmp_path / "missing.gif")] * 20
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(load_image, sources))
    assert [r.error for r in results] == [None, "truncated file", "file not found"] * 20
    assert all(r.image.size == (64, 48) for r in results[::3])


def test_read_image_info_is_header_only(tmp_path):
    # a JPEG whose scan data is cut off still reports its size from the header
    path = tmp_path / "cut.jpg"
    path.write_bytes(encode(noise(), "JPEG")[:2000])
    assert read_image_info(str(path)) == ImageInfo(300, 200, "JPEG")
