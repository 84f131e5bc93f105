"""Open images from paths and URLs safely and fast.

This is the one place in the add-on that reads and decodes images. Every
failure becomes an :class:`ImageLoadError` whose ``reason`` a person can
understand ("file not found", "truncated file", "HTTP 404", ...);
:func:`load_image` wraps it all into a :class:`LoadResult` and never raises.

Decoded images are always RGB with the EXIF orientation applied; transparent
images are composited on white; 16-bit and float images are scaled to 8 bits.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from orangecontrib.imageanalytics.image_sources import (
    DEFAULT_MAX_BYTES,
    HTTP_CACHE_ENV,
    ImageLoadError,
    clear_http_cache,
    http_cache_dir,
    is_url,
    open_local,
    read_source,
    resolve_source,
    set_http_cache_dir,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "HTTP_CACHE_ENV",
    "IMAGE_EXTENSIONS",
    "ImageInfo",
    "ImageLoadError",
    "LoadResult",
    "clear_http_cache",
    "decode_image",
    "http_cache_dir",
    "is_url",
    "load_image",
    "read_image_info",
    "read_source",
    "resolve_source",
    "set_http_cache_dir",
]

#: Largest image (width * height) that is decoded; Pillow's own default bomb limit.
DEFAULT_MAX_PIXELS: int = 178_956_970

#: File name extensions of the formats this module can open (lower case, with dot).
IMAGE_EXTENSIONS: frozenset[str] = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif",
    ".png", ".apng",
    ".tif", ".tiff",
    ".bmp", ".dib",
    ".gif",
    ".webp",
    ".pbm", ".pgm", ".ppm", ".pnm",
    ".ico",
    ".xbm", ".xpm",  # X bitmaps and pixmaps, as the older add-on listed them
    ".heic", ".heif", ".hif",
    ".avif",
    ".svg", ".svgz",
})  # fmt: skip

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112
_SVGZ_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LoadResult:
    """The outcome of :func:`load_image`: exactly one of the fields is None."""

    image: Image.Image | None
    error: str | None


@dataclass(frozen=True)
class ImageInfo:
    """Size of an image as displayed (after EXIF orientation) and its format."""

    width: int
    height: int
    format: str


# ---------------------------------------------------------------- opening

_heif_lock = threading.Lock()
_heif_state: bool | None = None  # None: not tried yet


def _ensure_heif() -> bool:
    """Register pillow-heif's opener once, on the first HEIF file seen."""
    global _heif_state
    if _heif_state is None:
        with _heif_lock:
            if _heif_state is None:
                try:
                    import pillow_heif

                    pillow_heif.register_heif_opener()
                    _heif_state = True
                except Exception:  # noqa: BLE001 - any failure means "no HEIF"
                    _heif_state = False
    return _heif_state


def _iso_brand(head: bytes) -> bytes | None:
    """The major brand of an ISO-BMFF file (HEIF, AVIF, MP4, ...), or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12]
    return None


_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
                b"mif2", b"MiHE"}
# recognisable files that are images of formats we cannot decode, or not images
_OTHER_MAGIC = (
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop"),
)
# magics of the formats we decode: such a file that fails to open is damaged
_KNOWN_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a",
                b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00")
_PNM_RE = re.compile(rb"P[1-7]\s")


def _looks_like_svg(head: bytes) -> bool:
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype svg", b"<!--")) and b"<svg" in head


def _open_unchecked(fp: BinaryIO) -> ImageFile.ImageFile:
    """Identify an image like ``Image.open`` but without Pillow's global
    decompression-bomb check: our own ``max_pixels`` decides, per call."""
    prefix = fp.read(16)
    tried: set[str] = set()
    for loader in (Image.preinit, Image.init):
        loader()
        for fmt in list(Image.ID):
            if fmt in tried:
                continue
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            result = not accept or accept(prefix)
            if not result or isinstance(result, str):
                continue
            fp.seek(0)
            try:
                return factory(fp, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise UnidentifiedImageError("cannot identify image file")


def _open(fp: BinaryIO, head: bytes) -> ImageFile.ImageFile:
    """Identify the image in ``fp`` (whose first bytes are ``head``)."""
    if _iso_brand(head) is not None:
        _ensure_heif()
    try:
        try:
            return _open_unchecked(fp)
        except (AttributeError, KeyError, ValueError):
            # Pillow's registry looked different: fall back to its own opener
            fp.seek(0)
            return Image.open(fp)
    except UnidentifiedImageError:
        raise ImageLoadError(_unidentified_reason(head)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError("image too large") from None
    except (EOFError, OSError, SyntaxError, struct.error, ValueError, IndexError):
        raise ImageLoadError("truncated file" if _known_magic(head) else "not an image") from None


def _known_magic(head: bytes) -> bool:
    return (head.startswith(_KNOWN_MAGIC)
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            # BMP: two reserved header fields are zero
            or (head[:2] == b"BM" and head[6:10] == b"\0\0\0\0")
            or _PNM_RE.match(head) is not None
            or _iso_brand(head) in _HEIF_BRANDS | _AVIF_BRANDS)


def _unidentified_reason(head: bytes) -> str:
    brand = _iso_brand(head)
    if brand is not None:
        if brand in _HEIF_BRANDS and not _ensure_heif():
            return "unsupported format: HEIF needs pillow-heif"
        if brand in _HEIF_BRANDS or (brand in _AVIF_BRANDS and "AVIF" in Image.OPEN):
            return "truncated file"
        name = brand.decode("latin-1").strip()
        return f"unsupported format: {name}" if name.isalnum() else "corrupt image"
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            return f"unsupported format: {name}"
    if _known_magic(head):
        return "truncated file"
    return "not an image"


def _megapixels(width: int, height: int) -> str:
    mp = width * height / 1e6
    return f"{mp:.0f}" if mp >= 10 else f"{mp:.2g}"


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError("image has no pixels")
    if width * height > max_pixels:
        raise ImageLoadError(f"image too large: {_megapixels(width, height)} megapixels")


def _orientation(im: Image.Image) -> int:
    # only formats that carry EXIF; reading it elsewhere costs time for nothing
    # (pillow-heif applies HEIF transforms itself; Pillow's AVIF plugin turns
    # them into this tag)
    if im.format not in ("JPEG", "MPO", "TIFF", "WEBP", "PNG", "AVIF"):
        return 1
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not lose the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# ---------------------------------------------------------------- SVG


def _svg_bytes(data: bytes) -> bytes | None:
    """SVG text, decompressing .svgz with a bound; None if it is not SVG."""
    if data[:2] == b"\x1f\x8b":
        try:
            out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, _SVGZ_MAX_BYTES)
        except zlib.error:
            return None
        return out if _looks_like_svg(out[:4096]) else None
    return data if _looks_like_svg(data[:4096]) else None


def _render_svg(svg: bytes, max_pixels: int, size_only: bool = False):
    try:
        import cairosvg.parser
        import cairosvg.surface
    except Exception:  # noqa: BLE001 - missing package or missing cairo library
        raise ImageLoadError("SVG support needs cairosvg") from None

    class _SizeOnly(Exception):
        pass

    class Surface(cairosvg.surface.PNGSurface):
        def _create_surface(self, width, height):
            # the check happens before cairo allocates the pixels
            w, h = round(width), round(height)
            _check_size(w, h, max_pixels)
            if size_only:
                raise _SizeOnly(w, h)
            return super()._create_surface(width, height)

    try:
        tree = cairosvg.parser.Tree(bytestring=svg)
        out = io.BytesIO()
        surface = Surface(tree, out, 96)
        surface.finish()
    except ImageLoadError:
        raise
    except _SizeOnly as e:
        return e.args
    except Exception as e:  # noqa: BLE001 - cairosvg raises all sorts
        # without the parser's position, equal faults read the same in summaries
        detail = _short(re.sub(r":? line \d+, column \d+", "", str(e)))
        raise ImageLoadError(f"broken SVG: {detail}" if detail else "broken SVG") from None
    png = _open_unchecked(io.BytesIO(out.getvalue()))
    png.load()
    return png


# ---------------------------------------------------------------- decoding


def _to_rgb(im: Image.Image, keep_alpha: bool = False) -> Image.Image:
    mode = im.mode
    if mode in ("P", "L", "RGB", "1") and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("PA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        if keep_alpha:
            return im
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_scale_to_8bit(np.asarray(im), mode)).convert("RGB")
    if mode in ("LAB",):
        from PIL import ImageCms

        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        return ImageCms.applyTransform(im, transform)
    return im.convert("RGB")


def _scale_to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(arr.min()), float(arr.max())
        if low >= 0.0 and high <= 1.0:
            return np.round(arr * 255).astype(np.uint8)
        if high <= low:
            return np.zeros(arr.shape, np.uint8)
        return np.round((arr - low) * (255 / (high - low))).astype(np.uint8)
    arr = arr.astype(np.int64)
    low, high = int(arr.min()), int(arr.max())
    if low >= 0 and high <= 65535:
        # 16-bit samples: scale the full range, never clip at 255
        return ((arr * 255 + 32767) // 65535).astype(np.uint8)
    if high <= low:
        return np.zeros(arr.shape, np.uint8)
    return ((arr - low) * 255 // (high - low)).astype(np.uint8)


def _load(im: ImageFile.ImageFile) -> None:
    try:
        im.load()
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError("out of memory") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            f"image too large: {_megapixels(*im.size)} megapixels") from None
    except Exception as e:  # noqa: BLE001 - plugins (pillow-heif) raise their own types
        raise ImageLoadError(_decode_reason(e)) from None


def _short(message: str) -> str:
    """First line of a library's message, bounded, for a reason column."""
    line = message.strip().split("\n", 1)[0].strip()
    return line if len(line) <= 100 else line[:97] + "..."


def _decode_reason(e: BaseException) -> str:
    msg = _short(str(e))
    low = msg.lower()
    if "not available" in low and "decoder" in low:
        return f"unsupported format: {msg}"
    if "security limit" in low:
        return "image too large"
    if ("truncated" in low or "broken data stream" in low or "premature end" in low
            or isinstance(e, EOFError) or "buffer is not large enough" in low
            or "not enough data" in low or "end of file" in low):
        return "truncated file"
    return f"corrupt image: {msg}" if msg else "corrupt image"


def decode_image(data: bytes, *, min_size: tuple[int, int] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 keep_alpha: bool = False) -> Image.Image:
    """Decode an image to RGB (or RGBA) with EXIF orientation applied.

    Parameters
    ----------
    data : bytes
        The encoded image (JPEG, PNG, TIFF, BMP, GIF, WebP, PNM, ICO,
        HEIC/HEIF, or SVG when cairosvg is installed).
    min_size : (int, int), optional
        The smallest (width, height) the caller needs. JPEGs are then decoded
        at a reduced scale (DCT scaling) that is still at least this large in
        both dimensions, after orientation; the caller resizes. Without it the
        image is decoded at full size.
    max_pixels : int
        Images whose header claims more pixels are refused before decoding.
    keep_alpha : bool
        Return images with transparency as RGBA instead of compositing them
        on white (thumbnails, saving in a format with alpha).

    Returns
    -------
    PIL.Image.Image
        An RGB image (RGBA with ``keep_alpha`` when the image has
        transparency): the first frame of animations, the largest icon of an
        ICO, transparency composited on white, 16-bit and float data scaled
        to 8 bits.

    Raises
    ------
    ImageLoadError
        With a reason such as "not an image", "truncated file",
        "image too large: 400 megapixels".
    """
    try:
        return _decode(data, min_size, max_pixels, keep_alpha)
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError("out of memory") from None
    except Exception as e:  # noqa: BLE001 - the contract: only ImageLoadError leaves
        raise ImageLoadError(f"cannot decode image: {_short(str(e)) or type(e).__name__}") from None


def _decode(data: bytes, min_size, max_pixels: int, keep_alpha: bool) -> Image.Image:
    if not data:
        raise ImageLoadError("empty file")
    svg = _svg_bytes(data) if data[:1] in (b"<", b"\xef", b" ", b"\t", b"\r", b"\n",
                                            b"\x1f") else None
    if svg is not None:
        return _to_rgb(_render_svg(svg, max_pixels), keep_alpha)
    im = _open(io.BytesIO(data), data[:64])
    _check_size(*im.size, max_pixels)
    orientation = _orientation(im)
    # camera JPEGs with a preview frame are identified as MPO; same decoder
    if min_size is not None and im.format in ("JPEG", "MPO"):
        width, height = min_size
        if orientation >= 5:  # rotated by 90 degrees: the stored sides swap
            width, height = height, width
        if width > 0 and height > 0:
            im.draft("RGB", (int(width), int(height)))
    _load(im)
    # read again: some plugins (TIFF) apply the orientation while loading
    # and drop the tag, which must not be applied twice
    orientation = _orientation(im)
    rgb = _to_rgb(im, keep_alpha)
    if orientation != 1:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    return rgb


def load_image(source: str, *, origin: str | None = None,
               min_size: tuple[int, int] | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS,
               timeout: float = 30.0, keep_alpha: bool = False) -> LoadResult:
    """Read and decode one image; never raises.

    Parameters
    ----------
    source : str
        A path or URL, possibly relative to ``origin``.
    origin : str, optional
        The image column's origin (folder or base URL).
    min_size, max_pixels, keep_alpha
        As in :func:`decode_image`.
    timeout : float
        Seconds allowed for a download.

    Returns
    -------
    LoadResult
        The RGB image, or None and the reason it could not be loaded.
    """
    try:
        resolved = resolve_source(source, origin)
        if resolved is None:
            return LoadResult(None, "missing value")
        data = read_source(resolved, timeout=timeout)
        return LoadResult(decode_image(data, min_size=min_size, max_pixels=max_pixels,
                                       keep_alpha=keep_alpha), None)
    except ImageLoadError as e:
        return LoadResult(None, e.reason)
    except MemoryError:
        return LoadResult(None, "out of memory")
    except Exception as e:  # noqa: BLE001 - never raise, report
        return LoadResult(None, f"unexpected error: {e or type(e).__name__}")


def read_image_info(path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read an image's size and format from its header, without decoding.

    Parameters
    ----------
    path : str
        A local file.
    max_pixels : int
        Larger images are refused, as :func:`decode_image` would.

    Returns
    -------
    ImageInfo
        Width and height as displayed (EXIF orientations 5-8 swap them) and
        Pillow's format name ("JPEG", "PNG", ..., "SVG").

    Raises
    ------
    ImageLoadError
        With a reason such as "file not found" or "not an image".
    """
    try:
        return _read_info(path, max_pixels)
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError("out of memory") from None
    except Exception as e:  # noqa: BLE001 - the contract: only ImageLoadError leaves
        raise ImageLoadError(f"cannot read image: {_short(str(e)) or type(e).__name__}") from None


def _read_info(path: str, max_pixels: int) -> ImageInfo:
    with open_local(path) as f:
        # headers sit at the start; a bounded read keeps the scan fast
        head = f.read(4096)
        if not head:
            raise ImageLoadError("empty file")
        if head[:2] == b"\x1f\x8b" or _svg_bytes(head) is not None:
            f.seek(0)
            svg = _svg_bytes(f.read(_SVGZ_MAX_BYTES))
            if svg is None:
                raise ImageLoadError("not an image")
            width, height = _render_svg(svg, max_pixels, size_only=True)
            return ImageInfo(width, height, "SVG")
        f.seek(0)
        im = _open(f, head[:64])
        width, height = im.size
        _check_size(width, height, max_pixels)
        if _orientation(im) >= 5:
            width, height = height, width
        return ImageInfo(width, height, im.format or "")
