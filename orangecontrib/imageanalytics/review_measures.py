"""What Review Images measures in one photo: hashes, sharpness, exposure.

:func:`measure` reads an image once and returns its :class:`Measures`:

* ``sha256`` of the file's bytes, which finds copies of the same file;
* a 64-bit perceptual hash (DCT of a 32×32 grey image, the "pHash" idea) and
  a 96×96 grey *thumb*; the hash finds candidates of the same picture through
  an index, the thumbs confirm them (:func:`match`: a correlation that allows
  a small crop, zoom and shift), so that two different photos with close
  hashes are told apart;
* sharpness and exposure computed on a copy whose longest side is
  :data:`WORK_SIDE` pixels, so that a photo's score does not depend on how many
  pixels its camera had: a large sharp photo and its small copy score alike;
* what tells the best version of a picture: pixels, format, JPEG quality
  (from the quantisation tables), bytes per pixel, modification time.

Images are decoded by :func:`~orangecontrib.imageanalytics.images.decode_image`
(JPEG draft decoding: a camera photo is decoded at a fraction of its size);
every failure is an :class:`~orangecontrib.imageanalytics.images.ImageLoadError`
with the reason a person reads.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy.fft import dctn

from orangecontrib.imageanalytics.images import decode_image, is_url, read_source

__all__ = [
    "LOSSLESS_FORMATS",
    "THUMB_SIDE",
    "WORK_SIDE",
    "Match",
    "Measures",
    "match",
    "measure",
]

#: Longest side (pixels) of the copy that sharpness and exposure are measured on.
WORK_SIDE = 256
#: Side of the grey thumb kept to confirm that two photos match.
THUMB_SIDE = 96
# thumbs are compared at this side, the middle MATCH_WINDOW pixels of one
# slid over the other: shifts up to (MATCH_SIDE - MATCH_WINDOW) / 2 pixels
MATCH_SIDE = 48
MATCH_WINDOW = 40
# one photo's middle is also zoomed by these factors (a crop, the next frame)
MATCH_ZOOMS = (1.0, 0.96, 0.92, 0.88, 0.85)
#: Formats that store pixels exactly.
LOSSLESS_FORMATS = frozenset({"PNG", "TIFF", "BMP", "PPM", "GIF", "DIB"})

# the standard IJG luminance table at quality 50, in natural order
_STD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=float)


@dataclass(frozen=True, eq=False)
class Measures:
    """What :func:`measure` found in one image.

    Attributes
    ----------
    sha256 : str
        Of the file's bytes.
    phash : int
        64-bit perceptual hash.
    thumb : np.ndarray
        96×96 uint8 grey image (the whole photo, its aspect not kept).
    width, height : int
        As displayed (after EXIF orientation).
    format : str
        Pillow's format name ("JPEG", "PNG", ...).
    jpeg_quality : float or None
        Estimated quality (1..100) of a JPEG, from its quantisation tables.
    n_bytes : int
        The file's size.
    mtime : float or None
        Modification time of a local file.
    sharpness : float
        Fine detail relative to coarse detail (see :func:`_sharpness`):
        about 0.35 and above for sharp photos, towards 0.25 for blurred ones.
    brightness : float
        The 95th percentile of luminance (0..1): low when even the brightest
        parts of a photo are dark.
    clipped : float
        Share of pixels that are burnt out (luminance at 0.98 or above).
    shadows : float
        The 5th percentile of luminance: high when even the darkest parts of a
        photo are washed out.
    median : float
        The median luminance.
    """

    sha256: str
    phash: int
    thumb: np.ndarray
    width: int
    height: int
    format: str
    jpeg_quality: float | None
    n_bytes: int
    mtime: float | None
    sharpness: float
    brightness: float
    clipped: float
    shadows: float
    median: float

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def lossless(self) -> bool:
        return self.format in LOSSLESS_FORMATS


def measure(source: str) -> Measures:
    """Read the image at ``source`` (a resolved path or URL) and measure it.

    Raises
    ------
    ImageLoadError
        With the reason the image cannot be read or decoded.
    """
    data = read_source(source)
    sha = hashlib.sha256(data).hexdigest()
    fmt, quality = _format_and_quality(data)
    image = decode_image(data, min_size=(WORK_SIDE, WORK_SIDE))
    width, height = _displayed_size(data, image)
    if max(image.size) > WORK_SIDE:
        image = image.copy()
        # reducing_gap: a fast box-filter reduction, then a good filter
        image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BILINEAR,
                        reducing_gap=2.0)
    luma = image.convert("L")  # ITU-R BT.601 weights, as 8-bit
    counts = np.bincount(np.asarray(luma).ravel(), minlength=256)
    # percentiles from the histogram: exact to 1/255, a fraction of the time
    low, middle, high = np.searchsorted(np.cumsum(counts),
                                        np.array([0.05, 0.5, 0.95]) * counts.sum()) / 255.0
    grey = np.asarray(luma, dtype=np.float32) / 255.0
    mtime = None
    if not is_url(source):
        try:
            mtime = os.stat(source).st_mtime
        except OSError:
            mtime = None
    return Measures(
        sha256=sha,
        phash=_phash(luma),
        thumb=np.asarray(luma.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)),
        width=width,
        height=height,
        format=fmt,
        jpeg_quality=quality,
        n_bytes=len(data),
        mtime=mtime,
        sharpness=_sharpness(grey),
        brightness=float(high),
        clipped=float(counts[250:].sum() / counts.sum()),  # 250/255 ≈ 0.98
        shadows=float(low),
        median=float(middle),
    )


def _format_and_quality(data: bytes) -> tuple[str, float | None]:
    """Pillow's format name and a JPEG's estimated quality; only the header
    is parsed (decoding is left to :func:`decode_image`)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
            tables = getattr(im, "quantization", None) if fmt in ("JPEG", "MPO") else None
    except Exception:  # noqa: BLE001 - decode_image then says what is wrong
        return "", None
    if not tables or 0 not in tables:
        return fmt, None
    return fmt, _jpeg_quality(np.asarray(tables[0], dtype=float))


def _jpeg_quality(table: np.ndarray) -> float:
    """Invert the IJG scaling of the standard luminance table."""
    if table.size != 64:
        return 100.0
    # the table is stored in zigzag order by some writers and natural by
    # Pillow; its mean against the standard's mean is order-free enough
    scale = 100.0 * float(np.sum(table)) / float(np.sum(_STD_LUMINANCE))
    if scale <= 0:
        return 100.0
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return float(np.clip(quality, 1.0, 100.0))


def _displayed_size(data: bytes, decoded: Image.Image) -> tuple[int, int]:
    """The original's size as displayed: a drafted JPEG is smaller."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - SVG and others: what was decoded
        return decoded.size
    if isinstance(orientation, int) and orientation >= 5:
        width, height = height, width
    # the decoder may know better (e.g. the largest frame of an icon)
    if decoded.size[0] > width or decoded.size[1] > height:
        return decoded.size
    return width, height


def _phash(image: Image.Image) -> int:
    grey = image.convert("L").resize((32, 32), Image.Resampling.BOX)
    coefficients = dctn(np.asarray(grey, dtype=np.float32), norm="ortho")
    low = coefficients[:8, :8].ravel()
    # the median of the 63 AC terms, so that the DC term does not move it
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def _laplacian(grey: np.ndarray) -> np.ndarray:
    return np.abs(grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1]
                  + grey[2:, 1:-1] - 4.0 * grey[1:-1, 1:-1])


def _half(grey: np.ndarray) -> np.ndarray:
    h, w = (grey.shape[0] // 2) * 2, (grey.shape[1] // 2) * 2
    g = grey[:h, :w]
    return 0.25 * (g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2])


def _sharpness(grey: np.ndarray) -> float:
    """The strongest fine detail over the strongest detail at half the scale.

    A photo's Laplacian depends on its content and contrast; how much of it
    survives halving the image depends mostly on blur. Both terms are
    measured on the same (size-normalised) image, so the ratio is about the
    same for a sharp photo of a busy street and of a quiet landscape, and
    falls towards 1/4 for blurred ones whatever their content. The 99th
    percentile looks at the edges, not at noise or JPEG ringing in flat parts
    (the mean did not separate the planted collection's blurred photos).
    """
    if min(grey.shape) < 16:
        return 1.0
    # measured from half the working size: JPEG's 8-pixel blocks and sensor
    # noise, which a blurred photo keeps, weigh less there
    grey = _half(grey)
    fine = float(np.percentile(_laplacian(grey), 99))
    coarse = float(np.percentile(_laplacian(_half(grey)), 99))
    if coarse < 1e-3:  # a flat image: nothing to be blurred
        return 1.0
    return fine / coarse


class Match(NamedTuple):
    """How well two thumbs match (see :func:`match`)."""

    score: float  #: the best normalised correlation, at most 1
    shift: int    #: the larger of the two shifts (pixels at MATCH_SIDE) there
    zoom: float   #: the zoom there (1: none)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows minus their mean, divided by their norm; flat rows become zeros,
    which match nothing."""
    x = np.array(x, dtype=np.float32, order="C")  # a copy, worked in place
    x -= x.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    flat = norms <= 1e-3
    norms[flat] = 1.0
    x /= norms[:, None]
    x[flat] = 0.0
    return x


class _Prepared(NamedTuple):
    #: the thumb at MATCH_SIDE, minus its mean (smaller numbers to multiply)
    plain: np.ndarray
    #: 1 / the norm of each window of ``plain`` minus the window's mean
    #: (0 for a flat window, which matches nothing), by position
    scale: np.ndarray
    #: (len(zooms), MATCH_WINDOW**2): the middle at each zoom, as unit rows
    templates: np.ndarray


def _window_sums(x: np.ndarray, side: int) -> np.ndarray:
    """The sum of every ``side`` × ``side`` window, from an integral image."""
    integral = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    integral[1:, 1:] = x.cumsum(axis=0).cumsum(axis=1)
    return (integral[side:, side:] - integral[:-side, side:]
            - integral[side:, :-side] + integral[:-side, :-side]).ravel()


@functools.lru_cache(maxsize=16)
def _zoom_weights(zoom: float) -> np.ndarray:
    """(MATCH_SIDE, THUMB_SIDE): the weights along one axis of Pillow's
    bilinear resize of the thumb's middle ``zoom`` to MATCH_SIDE pixels (read
    off a float image of unit rows), so that a zoom is two small matrix
    products: ``W @ thumb @ W.T``."""
    n = THUMB_SIDE
    side = n * zoom
    offset = (n - side) / 2
    basis = Image.fromarray(np.eye(n, dtype=np.float32), mode="F")
    rows = basis.resize((MATCH_SIDE, n), Image.Resampling.BILINEAR,
                        box=(offset, 0, offset + side, n))
    return np.ascontiguousarray(np.asarray(rows, dtype=np.float32).T)


def _prepare(thumb: np.ndarray, zooms) -> _Prepared:
    """What comparing a photo needs, small enough to keep for thousands: the
    windows' normalisation comes from integral images, not from each
    window centred and normalised (a template with a zero mean has the same
    product with a window as with the window minus its mean)."""
    cut = (MATCH_SIDE - MATCH_WINDOW) // 2
    middle = slice(cut, cut + MATCH_WINDOW)
    x = np.asarray(thumb, dtype=np.float32)
    if x.shape != (THUMB_SIDE, THUMB_SIDE):  # a thumb is square; any other
        x = np.asarray(Image.fromarray(np.asarray(thumb, np.uint8)).resize(
            (THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR), dtype=np.float32)
    w = _zoom_weights(1.0)
    plain = w @ x @ w.T
    plain -= plain.mean()
    area = MATCH_WINDOW * MATCH_WINDOW
    p = plain.astype(np.float64)
    sums = _window_sums(p, MATCH_WINDOW)
    spread = _window_sums(p * p, MATCH_WINDOW) - sums * sums / area
    norms = np.sqrt(np.maximum(spread, 0.0))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 1e-3)
    templates = np.stack([(w[middle] @ x @ w[middle].T).ravel()
                          for w in map(_zoom_weights, zooms)])
    return _Prepared(plain, scale.astype(np.float32), _unit(templates))


def _scores(templates: np.ndarray, other: _Prepared) -> np.ndarray:
    """Normalised correlation of each template with every window of the
    other photo: (len(templates), positions)."""
    windows = sliding_window_view(other.plain, (MATCH_WINDOW, MATCH_WINDOW))
    return (templates @ windows.reshape(-1, MATCH_WINDOW * MATCH_WINDOW).T) * other.scale


class Matcher:
    """Compares thumbs (see :meth:`match`), keeping what it prepared for the
    most recently compared photos, so that comparing one photo with several
    others prepares it once.

    Parameters
    ----------
    thumbs : sequence of np.ndarray
        The photos' thumbs, by row.
    zooms : tuple of float
        The zooms tried on the middle of either photo.
    keep : int
        How many prepared photos are kept (each takes about 40 kB).
    """

    def __init__(self, thumbs, zooms=MATCH_ZOOMS, keep: int = 2048):
        self.thumbs = thumbs
        self.zooms = tuple(zooms)
        self.keep = keep
        self._prepared: dict[int, _Prepared] = {}
        positions = MATCH_SIDE - MATCH_WINDOW + 1
        self._positions = positions

    def _get(self, row: int) -> _Prepared:
        prepared = self._prepared.pop(row, None)
        if prepared is None:
            prepared = _prepare(self.thumbs[row], self.zooms)
            if len(self._prepared) >= self.keep:
                del self._prepared[next(iter(self._prepared))]
        self._prepared[row] = prepared  # most recent last
        return prepared

    def match(self, i: int, j: int) -> Match:
        """How well the photos in rows ``i`` and ``j`` match, allowing a crop
        or zoom (the middle of either photo enlarged by up to 1 / 0.85) and a
        shift of up to 4 of 48 pixels, as between a photo and its crop or the
        next frame of a burst. Flat photos match nothing (score 0)."""
        a, b = self._get(i), self._get(j)
        # rows: zooms of one photo's middle; columns: positions in the other
        best = Match(0.0, 0, 1.0)
        middle = (self._positions - 1) // 2
        for scores in (_scores(a.templates, b), _scores(b.templates, a)):
            z, position = np.unravel_index(int(np.argmax(scores)), scores.shape)
            score = float(scores[z, position])
            if score > best.score:
                y, x = divmod(int(position), self._positions)
                shift = max(abs(y - middle), abs(x - middle))
                best = Match(score, shift, self.zooms[z])
        return best


def match(a: np.ndarray, b: np.ndarray) -> Match:
    """How well two thumbs match (see :meth:`Matcher.match`)."""
    return Matcher([a, b]).match(0, 1)
