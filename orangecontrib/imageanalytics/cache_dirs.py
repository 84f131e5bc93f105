"""Where the add-on keeps what it can compute again.

One folder holds every cache: the embedding vectors, the converted models,
the thumbnails and the HTTP downloads, each in its own file or sub-folder.
This module is at the bottom of the package (it imports nothing of it), so
that reading an image does not import the embedders to learn where its
download is kept.
"""
from __future__ import annotations

import os
import tempfile

__all__ = ["CACHE_DIR_ENV", "cache_folder", "write_atomically"]

#: Environment variable that moves the cache folder (tests, portable setups).
CACHE_DIR_ENV = "ORANGE_IMAGEANALYTICS_CACHE_DIR"


def cache_folder() -> str:
    """The add-on's cache folder: the embedding cache, and beside it the
    converted models, thumbnails and HTTP downloads.

    ``$ORANGE_IMAGEANALYTICS_CACHE_DIR`` if set, else the user's cache
    folder (``platformdirs.user_cache_dir("Orange3-ImageAnalytics")``).
    """
    folder = os.environ.get(CACHE_DIR_ENV)
    if not folder:
        # platformdirs is only needed when the environment names no folder
        from platformdirs import user_cache_dir
        folder = user_cache_dir("Orange3-ImageAnalytics", appauthor=False)
    return folder


def write_atomically(path: str | os.PathLike, data: bytes, *,
                     prefix: str = "tmp", suffix: str = ".tmp") -> None:
    """Write ``data`` to ``path`` through a temporary file in its folder
    (named ``prefix…suffix``) and a rename: a reader, or another process
    writing the same file, never sees it half-written.

    Raises
    ------
    OSError
        If the folder cannot be made or written; no temporary file is left.
    """
    folder = os.path.dirname(os.fspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
