"""Save the images of a table into folders, one per category, safely.

:func:`save_images` never deletes a file and never replaces one: a name that
is already taken by a different image gets a suffix (``name-2.png``), and a
file that already holds the very result counts as saved, so saving twice, or
again after a stop or a crash, changes nothing. Every path stays inside the
target folder; every file is written under a temporary name and then renamed,
so an interrupted save leaves no half-written image. Rows that cannot be
saved are skipped with a reason; a target that cannot be written stops the
save with a message and keeps what was written.

With ``format=KEEP_FORMAT`` each image keeps its own format: a JPEG stays a
JPEG, and an image that is not scaled is copied byte for byte (re-encoding a
photo would lose quality and make it larger for nothing). The format is
read from the image's bytes, not its name, so a PNG named ``.jpg`` is saved
as ``.png``.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field

from Orange.data import DiscreteVariable, Table, Variable
from PIL import Image

from orangecontrib.imageanalytics.counts_text import (
    MAX_REASONS_SHOWN,
    SkipReasons,
    count_reasons,
    reasons_text,
)
from orangecontrib.imageanalytics.embedders.registry import LEGACY_ORDER, get_embedder
from orangecontrib.imageanalytics.images import (
    ImageLoadError,
    decode_image,
    is_url,
    read_image_info,
    read_source,
    resolve_source,
)
from orangecontrib.imageanalytics.safe_names import safe_component
from orangecontrib.imageanalytics.save_target import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    TargetError,
    TargetFolder,
)
from orangecontrib.imageanalytics.table_images import (
    column_texts,
    image_columns,
    origin_of,
)
from orangecontrib.imageanalytics.table_images import (
    image_column as find_column,
)

__all__ = [
    "CLASS_VAR",
    "FORMATS",
    "KEEP_FORMAT",
    "KEEP_FORMAT_FALLBACK",
    "MISSING_FOLDER",
    "SCALE_SIZES",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "THIS_FOLDER",
    "SaveReport",
    "SavedFile",
    "SkippedRow",
    "folder_columns",
    "image_columns",
    "save_images",
]

#: File formats, in the older add-on's order (its ``file_format_index``),
#: then those added since.
FORMATS: tuple[str, ...] = ("png", "jpg", "gif", "tiff", "pdf", "bmp", "eps", "ico",
                            "webp")
#: ``format`` value that saves each image in its own format.
KEEP_FORMAT = "original"
#: What :data:`KEEP_FORMAT` writes for images in a format that cannot be
#: written (HEIC, AVIF, SVG, PNM, ...): lossless, and every program opens it.
KEEP_FORMAT_FALLBACK = "png"
#: ``(embedder key, label, (width, height))`` in the older add-on's order
#: (its ``scale_index``); sizes come from the embedder registry.
SCALE_SIZES: tuple[tuple[str, str, tuple[int, int]], ...] = tuple(
    (key, get_embedder(key).label, get_embedder(key).input_shape) for key in LEGACY_ORDER)
#: The folder of rows whose category is missing.
MISSING_FOLDER = "(missing)"
#: The category that Import Images gives images lying directly in the chosen
#: folder (beside sub-folders); they are saved directly into the target, so
#: that importing and saving keeps the layout.
THIS_FOLDER = "."


class _ClassVar:
    def __repr__(self):
        return "CLASS_VAR"


#: ``folders_by`` default: one folder per value of the (categorical) class.
CLASS_VAR = _ClassVar()

_PIL_FORMAT = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "tiff": "TIFF", "pdf": "PDF",
               "bmp": "BMP", "eps": "EPS", "ico": "ICO", "webp": "WEBP"}
# Pillow's format names of the formats that can be written as they are
_OWN_FORMAT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "TIFF": "tiff",
               "BMP": "bmp", "ICO": "ico", "WEBP": "webp"}
_WITH_ICC = {"png", "jpg", "tiff", "webp"}
#: Formats whose files keep a photo's EXIF (date taken, camera, place).
_WITH_EXIF = {"png", "jpg", "webp"}
_ORIENTATION = 0x0112
_WITH_ALPHA = {"png", "gif", "tiff", "ico", "webp"}
# source extensions that hold the format as it is, for the byte-for-byte copy
_SAME_FORMAT = {"png": {".png"}, "jpg": {".jpg", ".jpeg"}, "gif": {".gif"},
                "tiff": {".tif", ".tiff"}, "bmp": {".bmp"}, "ico": {".ico"},
                "webp": {".webp"}}
_ENCODER_OPTIONS = {
    "jpg": {"quality": 90},
    "webp": {"quality": 90},
    # no dates: the same image must encode to the same bytes
    "pdf": {"creationDate": None, "modDate": None},
}
_MAX_PENDING_PER_WORKER = 4
# how soon a stop is seen while an image is being prepared
_STOP_POLL_S = 0.05


@dataclass(frozen=True)
class SavedFile:
    """A row whose image is in the target folder."""

    row: int
    source: str
    #: relative to the target, with ``/`` between folders
    path: str


@dataclass(frozen=True)
class SkippedRow:
    """A row that was not saved, and why."""

    row: int
    source: str
    reason: str


@dataclass
class SaveReport:
    """What :func:`save_images` did.

    ``saved`` lists the files written now, ``already_there`` the rows whose
    result was in the target already. ``error`` says why the save stopped
    early (a folder that cannot be written, a full disk); ``cancelled`` is
    true after ``should_stop``.
    """

    target: str
    total: int = 0
    saved: list[SavedFile] = field(default_factory=list)
    already_there: list[SavedFile] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    error: str | None = None
    cancelled: bool = False

    @property
    def done(self) -> int:
        """Rows handled so far (saved, already there or skipped)."""
        return len(self.saved) + len(self.already_there) + len(self.skipped)

    @property
    def finished(self) -> bool:
        return self.error is None and not self.cancelled and self.done == self.total

    def skip_reasons(self) -> SkipReasons:
        """``(reason, count)``, most common first."""
        return count_reasons(skip.reason for skip in self.skipped)

    def summary(self, max_reasons: int = MAX_REASONS_SHOWN, into: str | None = None) -> str:
        """"N saved, M already there, K skipped: reasons"; with ``into``
        (the target as the reader knows it), "N saved into ``into``, ..."."""
        where = f" into {into}" if into else ""
        text = f"{len(self.saved)} saved{where}, {len(self.already_there)} already there"
        if self.skipped:
            shown = reasons_text(self.skip_reasons(), max_reasons)
            text += f", {len(self.skipped)} skipped: {shown}"
        return text


# ---------------------------------------------------------------- columns


def folder_columns(table: Table | None) -> list[DiscreteVariable]:
    """Categorical columns that images can be sorted into folders by: the
    class first, then other attributes and metas (e.g. a prediction)."""
    if table is None:
        return []
    domain = table.domain
    return [var for var in (*domain.class_vars, *domain.attributes, *domain.metas)
            if isinstance(var, DiscreteVariable)]


def _lookup(table: Table, column, kind: str) -> Variable:
    try:
        return table.domain[column]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"The data has no {kind} column {column!r}") from None


# ---------------------------------------------------------------- encoding


def _stem(source: str) -> str:
    """The source's file name without its last extension."""
    if is_url(source):
        from urllib.parse import unquote, urlparse

        try:
            path = unquote(urlparse(source).path)
        except ValueError:
            path = source
        name = path.rstrip("/").rsplit("/", 1)[-1]
    else:
        name = os.path.basename(source.rstrip("/" + os.sep))
    return os.path.splitext(name)[0]


def _fit_inside(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    scale = min(box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _exif_bytes(image: Image.Image) -> bytes | None:
    """The image's EXIF for the new file: the pixels are already turned
    upright (images.py applies the orientation), so the tag says so."""
    if not image.info.get("exif"):
        return None
    try:
        exif = image.getexif()
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return exif.tobytes()
    except Exception:  # noqa: BLE001 -- a damaged EXIF is not worth a photo
        return None


def _encode(image: Image.Image, fmt: str) -> bytes:
    # before compositing drops the info
    icc = image.info.get("icc_profile")
    exif = _exif_bytes(image) if fmt in _WITH_EXIF else None
    if image.mode == "RGBA" and fmt not in _WITH_ALPHA:
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    if fmt == "gif" and image.mode == "RGB":
        # Pillow's own palette conversion takes ~0.3 s for a web photo
        image = image.quantize(256, method=Image.Quantize.FASTOCTREE)
    options = dict(_ENCODER_OPTIONS.get(fmt, {}))
    if icc and fmt in _WITH_ICC:
        # without the profile, photos in Adobe RGB (or P3) lose their colours
        options["icc_profile"] = icc
    if exif:
        # the date taken, the camera, the place: what photographers sort by
        options["exif"] = exif
    out = io.BytesIO()
    image.save(out, _PIL_FORMAT[fmt], **options)
    return out.getvalue()


def _ends_complete(data: bytes, fmt: str) -> bool:
    """Whether a JPEG or PNG ends as a whole file does; a cut download or
    copy does not. Other formats (and files that fail this) are decoded to
    check them."""
    if fmt == "jpg":
        return data.rstrip(b"\0")[-2:] == b"\xff\xd9"
    if fmt == "png":
        return data[-8:-4] == b"IEND"
    return False


def _own_format(data: bytes) -> str | None:
    """The format (one of :data:`FORMATS`) that the encoded ``data`` are in,
    or None when it is none of those that can be written as they are."""
    try:
        # reads only the header
        with Image.open(io.BytesIO(data)) as im:
            return _OWN_FORMAT.get(im.format or "")
    except Exception:  # noqa: BLE001 -- decoding tells the reason later
        return None


def _modified(source: str) -> float | None:
    try:
        return os.stat(source).st_mtime
    except OSError:
        return None


def _prepare(source: str, fmt: str, size: tuple[int, int] | None,
             keep_aspect: bool) -> tuple[bytes, float | None, str]:
    """The bytes to write for one image, the source's modification time
    (when the bytes are a copy of a file) and their format; raises
    ImageLoadError."""
    data = read_source(source)
    if fmt == KEEP_FORMAT:
        own = _own_format(data)
        fmt = own or KEEP_FORMAT_FALLBACK
        if size is None and own is not None:
            if not _ends_complete(data, fmt):
                decode_image(data, min_size=(1, 1))  # raises with the reason
            return data, None if is_url(source) else _modified(source), fmt
    elif size is None and not is_url(source) \
            and os.path.splitext(source)[1].lower() in _SAME_FORMAT.get(fmt, ()):
        # check it is what its name says and whole, then copy it as it is
        if read_image_info(source).format.upper().replace("MPO", "JPEG") == _PIL_FORMAT[fmt]:
            if not _ends_complete(data, fmt):
                decode_image(data, min_size=(1, 1))  # raises with the reason
            return data, _modified(source), fmt
    image = decode_image(data, min_size=size, keep_alpha=True)
    if size is not None:
        target = _fit_inside(*image.size, size) if keep_aspect else tuple(size)
        if image.size != target:
            image = image.resize(target, Image.Resampling.BICUBIC)
    try:
        return _encode(image, fmt), None, fmt
    except (OSError, ValueError) as e:
        raise ImageLoadError(f"cannot write as {fmt.upper()}: {e}") from None


# ---------------------------------------------------------------- the task


def save_images(table: Table, target: str, *, image_column: Variable | str | None = None,
                folders_by: Variable | str | None | _ClassVar = CLASS_VAR,
                format: str = "png", size: tuple[int, int] | None = None,
                keep_aspect: bool = False,
                progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                workers: int | None = None) -> SaveReport:
    """Save the images of ``table`` into ``target``, one folder per category.

    Parameters
    ----------
    table
        The images' table.
    target
        The folder to save into; made if it does not exist.
    image_column
        The column (or its name) with image paths or URLs, resolved against
        its ``origin``; by default the first meta column marked ``type=image``.
    folders_by
        A categorical column (or its name) whose values name the sub-folders;
        by default the class variable when it is categorical; None saves
        all images directly into ``target``. Rows with a missing value go
        to :data:`MISSING_FOLDER`, rows with the value ``.`` (see
        :data:`THIS_FOLDER`) directly into ``target``.
    format
        One of :data:`FORMATS`, or :data:`KEEP_FORMAT` to keep each image's
        own format (images in a format that cannot be written become
        :data:`KEEP_FORMAT_FALLBACK`).
    size
        ``(width, height)`` to scale images to (e.g. an embedder's input
        size, see :data:`SCALE_SIZES`); None keeps their size.
    keep_aspect
        Scale to fit inside ``size``, keeping the aspect ratio.
    progress
        Called as ``progress(done, total)`` after each row.
    should_stop
        Polled between rows and while an image is being prepared; when it
        returns true the save stops at once, keeping what was written (no
        file is written after it).
    workers
        Threads that read, decode and encode; by default one per core.

    Returns
    -------
    SaveReport

    Raises
    ------
    ValueError
        For an unknown format or column; problems with images and with
        the target are reported in the result, never raised.
    """
    if format != KEEP_FORMAT and format not in FORMATS:
        raise ValueError(f"Unknown format {format!r}; valid formats are: "
                         + ", ".join((*FORMATS, KEEP_FORMAT)))
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"Invalid size {size}")
    image_var = find_column(table, image_column)
    folder_var = _folder_var(table, folders_by)
    report = SaveReport(target=os.path.abspath(target), total=len(table))
    sources = column_texts(table, image_var)
    origin = origin_of(image_var)
    folder_values = column_texts(table, folder_var) if folder_var is not None \
        else [None] * len(table)
    try:
        target_folder = TargetFolder(target)
    except TargetError as e:
        report.error = str(e)
        return report

    def prepare(value: str | None):
        source = resolve_source(value, origin)
        if source is None:
            raise ImageLoadError("missing image value")
        return _prepare(source, format, size, keep_aspect)

    # closing: a break (a full disk) cancels the images still queued at once
    with closing(_in_order(prepare, sources, workers, should_stop)) as prepared:
        _save_rows(prepared, report, target_folder, folder_var, folder_values, origin,
                   progress)
    return report


def _save_rows(prepared, report: SaveReport, target_folder: TargetFolder,
               folder_var, folder_values, origin, progress) -> None:
    for row, value, future in prepared:
        if future is None:
            report.cancelled = True
            break
        source = "" if value is None else str(value)
        try:
            data, mtime, fmt = future.result()
        except ImageLoadError as e:
            report.skipped.append(SkippedRow(row, source, e.reason))
        except MemoryError:
            report.skipped.append(SkippedRow(row, source, "out of memory"))
        except Exception as e:  # noqa: BLE001 - a row never stops the save
            report.skipped.append(SkippedRow(row, source, f"unexpected error: {e}"))
        else:
            try:
                folder_value = folder_values[row]
                if folder_var is None or folder_value == THIS_FOLDER:
                    folder = ""
                else:
                    folder = target_folder.folder_for(
                        MISSING_FOLDER if folder_value is None else folder_value)
                stem = safe_component(_stem(resolve_source(value, origin)))
                path, written = target_folder.put(folder, stem, "." + fmt, data, mtime)
            except TargetError as e:
                report.error = str(e)
                break
            (report.saved if written else report.already_there).append(
                SavedFile(row, source, path))
        if progress is not None:
            progress(report.done, report.total)


def _in_order(prepare, values: list, workers: int | None,
              should_stop: Callable[[], bool] | None
              ) -> Iterator[tuple[int, object, Future | None]]:
    """Run ``prepare`` on each value in a thread pool, a bounded number ahead,
    and yield ``(index, value, future)`` in order; ``(.., None)`` once
    ``should_stop`` is true, also while waiting for an image.

    Closing the generator cancels the queued images and does not wait for
    those being prepared (a 12 MP photo takes seconds to encode): they only
    make bytes in memory, which are dropped; files are written by the
    caller alone."""
    workers = workers or min(8, os.cpu_count() or 1)
    window = workers * _MAX_PENDING_PER_WORKER
    pool = ThreadPoolExecutor(workers, thread_name_prefix="save-images")
    pending: list[tuple[int, object, Future]] = []
    submitted = 0
    try:
        while submitted < len(values) or pending:
            while submitted < len(values) and len(pending) < window:
                pending.append((submitted, values[submitted],
                                pool.submit(prepare, values[submitted])))
                submitted += 1
            row, value, future = pending[0]
            if should_stop is not None:
                while True:
                    if should_stop():
                        yield -1, None, None
                        return
                    if wait([future], timeout=_STOP_POLL_S).done:
                        break
            pending.pop(0)
            yield row, value, future
    finally:
        for _, _, future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def _folder_var(table: Table, column) -> DiscreteVariable | None:
    if column is CLASS_VAR:
        class_var = table.domain.class_var
        return class_var if isinstance(class_var, DiscreteVariable) else None
    if column is None:
        return None
    var = _lookup(table, column, "folder")
    if not isinstance(var, DiscreteVariable):
        raise ValueError(f"Column {var.name!r} is not categorical")
    return var
