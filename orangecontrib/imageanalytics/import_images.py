"""Scan a folder of images into an Orange :class:`~Orange.data.Table`.

The table has the shape that the Image Analytics widgets (and workflows made
with earlier versions of the add-on) expect:

* metas, in this order: ``image name`` (the file name without its extension),
  ``image`` (the path relative to the folder, with ``/`` separators, marked
  ``type=image`` and with ``origin`` set to the folder), ``size`` (bytes),
  ``width`` and ``height`` (pixels, as displayed, i.e. after EXIF rotation);
* a class ``category`` whose values are the sub-folder paths relative to the
  folder, present only when the images lie in more than one folder. Images
  directly in the chosen folder then have the category ``.`` (the folder's
  own relative path), as in earlier versions of the add-on.

Image sizes come from the file headers, so a large collection imports
quickly. Hidden files and folders (names starting with a dot) are skipped,
symbolic links are followed but never twice into the same folder, and every
file with an image extension that cannot be read is reported with a reason.

Example
-------
>>> from orangecontrib.imageanalytics.import_images import import_images
>>> result = import_images("photos")                        # doctest: +SKIP
>>> result.table, result.n_skipped, result.skipped[:1]      # doctest: +SKIP
"""
from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
from Orange.data import (
    ContinuousVariable,
    DiscreteVariable,
    Domain,
    StringVariable,
    Table,
)

from orangecontrib.imageanalytics.counts_text import SkipReasons, count_reasons
from orangecontrib.imageanalytics.images import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    read_image_info,
)

__all__ = [
    "CATEGORY",
    "HEIGHT",
    "IMAGE",
    "IMAGE_NAME",
    "SIZE",
    "WIDTH",
    "ImportCancelled",
    "ImportResult",
    "ImportImages",
    "Skipped",
    "import_images",
    "run",
]

IMAGE_NAME = "image name"
IMAGE = "image"
SIZE = "size"
WIDTH = "width"
HEIGHT = "height"
CATEGORY = "category"

# Header reads are handed to worker threads in chunks: one future per file
# costs more than reading a small JPEG header, and chunks keep the GIL
# hand-offs rare while still overlapping slow (network, cold) storage.
_CHUNK = 256
_DEFAULT_WORKERS = 4
# how often (in folder entries) a folder listing polls ``should_stop``, and
# how long (in seconds) the calling thread waits on a worker between polls
_STOP_POLL = 256
_STOP_WAIT = 0.05

# the constant exists everywhere, the attribute it tests only on Windows
_FILE_ATTRIBUTE_HIDDEN = stat.FILE_ATTRIBUTE_HIDDEN if os.name == "nt" else 0


class ImportCancelled(Exception):
    """Raised by :func:`import_images` when ``should_stop()`` turns true."""


class Skipped(NamedTuple):
    """A file (or folder) that was not imported, and why."""

    path: str    #: relative to the imported folder, ``/``-separated
    reason: str  #: human readable


@dataclass(frozen=True)
class ImportResult:
    """The outcome of :func:`import_images`.

    Attributes
    ----------
    folder : str
        The absolute path of the imported folder.
    table : Table or None
        One row per readable image; ``None`` when there is none.
    skipped : list of Skipped
        Files with an image extension (and folders) that could not be read,
        sorted by path.
    n_ignored : int
        Visible files without an image extension (not reported as skipped).
    """

    folder: str
    table: Table | None
    skipped: list[Skipped] = field(default_factory=list)
    n_ignored: int = 0

    @property
    def n_images(self) -> int:
        """Number of imported images."""
        return 0 if self.table is None else len(self.table)

    @property
    def n_skipped(self) -> int:
        """Number of skipped files and folders."""
        return len(self.skipped)

    @property
    def n_categories(self) -> int:
        """Number of categories (0 when the images lie in a single folder)."""
        if self.table is None or self.table.domain.class_var is None:
            return 0
        return len(self.table.domain.class_var.values)

    def skip_reasons(self) -> SkipReasons:
        """``(reason, count)`` for the skipped files, most common first."""
        return count_reasons(s.reason for s in self.skipped)


class _Candidate(NamedTuple):
    relpath: str   # "/"-separated, relative to the folder
    path: str      # as the OS needs it
    size: int


class _State(Protocol):
    def set_progress_value(self, value: float) -> None: ...
    def set_status(self, text: str) -> None: ...
    def is_interruption_requested(self) -> bool: ...


def _is_hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    if _FILE_ATTRIBUTE_HIDDEN:  # Windows: the stat is cached by scandir
        try:
            attrs = entry.stat(follow_symlinks=False).st_file_attributes
        except OSError:
            return False
        return bool(attrs & _FILE_ATTRIBUTE_HIDDEN)
    return False


def _is_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink() or entry.is_junction()
    except (OSError, AttributeError):  # is_junction: Python 3.12+
        try:
            return entry.is_symlink()
        except OSError:
            return True


def _sort_key(relpath: str) -> tuple[str, ...]:
    # by path components, so that "a/x" and "a b/x" sort as the folder tree
    return tuple(relpath.split("/"))


def _scan(folder: str, should_stop: Callable[[], bool]
          ) -> tuple[list[_Candidate], list[Skipped], int]:
    """Walk `folder`, returning image files, skipped entries, ignored count."""
    candidates: list[_Candidate] = []
    skipped: list[Skipped] = []
    n_ignored = 0
    extensions = IMAGE_EXTENSIONS
    visited = {os.path.realpath(folder)}
    stack = [("", folder)]
    while stack:
        if should_stop():
            raise ImportCancelled
        reldir, path = stack.pop()
        prefix = reldir + "/" if reldir else ""
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError as ex:
            skipped.append(Skipped(reldir or ".",
                                   f"cannot read folder: {_os_reason(ex)}"))
            continue
        subdirs = []
        for i, entry in enumerate(entries):
            # a huge folder on slow storage must not delay a Cancel
            if i % _STOP_POLL == _STOP_POLL - 1 and should_stop():
                raise ImportCancelled
            if _is_hidden(entry):
                continue
            name = entry.name
            relpath = prefix + name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append((_is_link(entry), relpath, entry.path))
                continue
            if os.path.splitext(name)[1].lower() not in extensions:
                n_ignored += 1
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                skipped.append(Skipped(relpath, "broken link"))
                continue
            except OSError as ex:
                skipped.append(Skipped(relpath, _os_reason(ex)))
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append(Skipped(relpath, "not a regular file"))
                continue
            candidates.append(_Candidate(relpath, entry.path, st.st_size))
        # Real folders first, then by name: when a link and a real folder
        # lead to the same place, the real one is walked, whatever order the
        # file system lists them in. A link back up the tree (or to a folder
        # seen already) would otherwise be walked forever or twice.
        found = []
        for _, relpath, path in sorted(subdirs):
            real = os.path.realpath(path)
            if real not in visited:
                visited.add(real)
                found.append((relpath, path))
        # reversed, so that the stack pops them in name order
        stack.extend(sorted(found, reverse=True))
    candidates.sort(key=lambda c: _sort_key(c.relpath))
    return candidates, skipped, n_ignored


def _os_reason(ex: OSError) -> str:
    if isinstance(ex, PermissionError):
        return "permission denied"
    if isinstance(ex, FileNotFoundError):
        return "file not found"
    return ex.strerror or str(ex)


def _read_sizes(chunk: list[_Candidate], halted: Callable[[], bool]
                ) -> list[tuple[int, int] | str]:
    """(width, height) or a reason, per file of the chunk.

    Fewer results than files means that `halted()` turned true.
    """
    out: list[tuple[int, int] | str] = []
    for cand in chunk:
        if halted():
            break
        if cand.size == 0:
            out.append("empty file")
            continue
        try:
            info = read_image_info(cand.path)
        except ImageLoadError as ex:
            out.append(ex.reason)
        except OSError as ex:  # the contract says it should not, but be safe
            out.append(_os_reason(ex))
        else:
            out.append((info.width, info.height))
    return out


def _build_table(folder: str, rows: list[tuple[_Candidate, int, int]]
                 ) -> Table:
    relpaths = [c.relpath for c, _, _ in rows]
    dirs = [r.rpartition("/")[0] for r in relpaths]
    folders = sorted(set(dirs), key=_sort_key)

    image_var = StringVariable(IMAGE)
    image_var.attributes["type"] = "image"
    image_var.attributes["origin"] = folder
    metas_vars = [
        StringVariable(IMAGE_NAME), image_var,
        ContinuousVariable(SIZE, number_of_decimals=0),
        ContinuousVariable(WIDTH, number_of_decimals=0),
        ContinuousVariable(HEIGHT, number_of_decimals=0),
    ]

    n = len(rows)
    metas = np.empty((n, 5), dtype=object)
    metas[:, 0] = [os.path.splitext(r.rpartition("/")[2])[0]
                   for r in relpaths]
    metas[:, 1] = relpaths
    metas[:, 2] = np.array([c.size for c, _, _ in rows], dtype=float)
    metas[:, 3] = np.array([w for _, w, _ in rows], dtype=float)
    metas[:, 4] = np.array([h for _, _, h in rows], dtype=float)

    class_vars = []
    y = None
    if len(folders) > 1:
        # the chosen folder itself is "." (its relative path), sorted first
        values = [f or "." for f in folders]
        index = {v: float(i) for i, v in enumerate(values)}
        class_vars = [DiscreteVariable(CATEGORY, values=values)]
        y = np.array([index[d or "."] for d in dirs], dtype=float)

    domain = Domain([], class_vars, metas_vars)
    table = Table.from_numpy(domain, np.empty((n, 0)), y, metas=metas)
    table.name = os.path.basename(folder.rstrip("/\\")) or folder
    return table


def import_images(
        folder: str | os.PathLike, *,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        workers: int | None = None,
) -> ImportResult:
    """Import every image under `folder` (recursively) into a table.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to scan.
    progress : callable, optional
        Called as ``progress(done, total)`` while image headers are read.
    should_stop : callable, optional
        Polled regularly; when it returns true the import stops with
        :class:`ImportCancelled`.
    workers : int, optional
        Threads that read image headers (default 4). They pay off on slow
        or network storage; ``1`` reads in the calling thread.

    Returns
    -------
    ImportResult

    Raises
    ------
    NotADirectoryError
        If `folder` is not an existing folder.
    ImportCancelled
        If `should_stop()` returned true.
    """
    folder = os.path.abspath(os.fspath(folder))
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"not a folder: {folder}")
    if should_stop is None:
        def should_stop() -> bool:
            return False

    candidates, skipped, n_ignored = _scan(folder, should_stop)
    total = len(candidates)
    if progress is not None:
        progress(0, total)

    chunks = [candidates[i:i + _CHUNK] for i in range(0, total, _CHUNK)]
    workers = _DEFAULT_WORKERS if workers is None else max(1, workers)
    stop = threading.Event()
    results: list[tuple[int, int] | str] = []
    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            if should_stop():
                raise ImportCancelled
            sizes = _read_sizes(chunk, should_stop)
            if len(sizes) < len(chunk):
                raise ImportCancelled
            results.extend(sizes)
            if progress is not None:
                progress(len(results), total)
    else:
        with ThreadPoolExecutor(workers, "image-import") as executor:
            futures = [executor.submit(_read_sizes, chunk, stop.is_set)
                       for chunk in chunks]
            try:
                for chunk, future in zip(chunks, futures):
                    # should_stop is polled here, in the calling thread;
                    # the workers stop at their next file once told
                    while True:
                        if should_stop():
                            raise ImportCancelled
                        try:
                            sizes = future.result(timeout=_STOP_WAIT)
                        except FutureTimeout:
                            continue
                        break
                    if len(sizes) < len(chunk):
                        raise ImportCancelled
                    results.extend(sizes)
                    if progress is not None:
                        progress(len(results), total)
            except BaseException:
                # queued chunks return at once, so the pool shuts down fast
                stop.set()
                for future in futures:
                    future.cancel()
                raise
    if should_stop():
        raise ImportCancelled

    rows = []
    for cand, res in zip(candidates, results):
        if isinstance(res, str):
            skipped.append(Skipped(cand.relpath, res))
        else:
            rows.append((cand, res[0], res[1]))
    skipped.sort(key=lambda s: _sort_key(s.path))
    table = _build_table(folder, rows) if rows else None
    return ImportResult(folder, table, skipped, n_ignored)


class ImportImages:
    """The scripting interface of earlier versions of the add-on.

    ``table, n_skipped = ImportImages()(folder)``; the table is None when the
    folder holds no images. Setting ``cancelled = True`` (from another
    thread, or from ``report_progress``) stops a running import with
    :class:`ImportCancelled`. New code can call :func:`import_images`, which
    also tells which files were skipped and why.

    Parameters
    ----------
    report_progress : callable, optional
        Called with the share done, a float in [0, 1].
    case_insensitive : bool
        Accepted for compatibility: extensions are always compared without
        regard to letter case.
    """

    def __init__(self, report_progress: Callable[[float], None] | None = None,
                 case_insensitive: bool = True):
        self.report_progress = report_progress
        self.case_insensitive = case_insensitive
        self.cancelled = False

    def __call__(self, folder: str | os.PathLike) -> tuple[Table | None, int]:
        self.cancelled = False

        def progress(done: int, total: int) -> None:
            if self.report_progress is not None:
                self.report_progress(done / total if total else 1.0)

        result = import_images(folder, progress=progress,
                               should_stop=lambda: self.cancelled)
        return result.table, result.n_skipped


def run(folder: str, state: _State) -> ImportResult:
    """Task function for the Import Images widget.

    Parameters
    ----------
    folder : str
        The folder to scan.
    state : TaskState
        Orange's task state (``set_progress_value``, ``set_status``,
        ``is_interruption_requested``), or any object with those methods.

    Returns
    -------
    ImportResult

    Raises
    ------
    ImportCancelled
        When the widget asked the task to stop.
    """
    def progress(done: int, total: int) -> None:
        state.set_progress_value(100 * done / total if total else 100)

    state.set_status("Scanning…")
    return import_images(folder, progress=progress,
                         should_stop=state.is_interruption_requested)
