"""File and folder names that are legal everywhere and never escape a folder.

Class values and source file names become path components of saved images.
A component made here is legal on Windows, macOS and Linux: it holds no path
separator, no control or reserved character, is not ``.`` or ``..``, is not a
device name such as ``CON``, does not end with a dot or a space, is not
hidden (no leading dot), fits in 255 bytes and is never empty.

:class:`FolderNames` hands out names in one folder so that no two differ
only in letter case or Unicode normalisation: on macOS and Windows such
names are the same file.
"""
from __future__ import annotations

import os
import re
import unicodedata

__all__ = [
    "FolderNames",
    "is_inside",
    "name_key",
    "safe_component",
]

#: What an empty (or entirely illegal) name becomes.
EMPTY_NAME = "unnamed"
#: Room left in a 255-byte component for a "-123" suffix and an extension.
MAX_STEM_BYTES = 200

# characters Windows refuses in names, path separators, and control characters
_ILLEGAL = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
# Windows device names; reserved with any extension, in any letter case, and
# (since Windows counts them as digits) with superscript digits too
_RESERVED = re.compile(
    r"^(con|prn|aux|nul|conin\$|conout\$|(com|lpt)[0-9\u00b9\u00b2\u00b3])$",
    re.IGNORECASE)


def safe_component(name: object, *, max_bytes: int = MAX_STEM_BYTES) -> str:
    """Turn ``name`` into one path component that is legal on every system.

    Parameters
    ----------
    name
        A class value, a file name without its extension, ...; converted
        with ``str``.
    max_bytes
        Longer names (in UTF-8) are cut at a character boundary.

    Returns
    -------
    str
        The name with illegal characters replaced by ``_``; never empty,
        never ``.`` or ``..``, never a reserved device name.
    """
    text = unicodedata.normalize("NFC", str(name))
    text = _ILLEGAL.sub("_", text).strip()
    # Windows drops trailing dots and spaces, so "a." and "a" are one file
    text = text.rstrip(". ")
    if text.startswith("."):
        # hidden on macOS and Linux: Import Images would not find it again
        text = "_" + text[1:]
    text = _cut(text, max_bytes)
    if not text:
        return EMPTY_NAME
    stem, dot, rest = text.partition(".")
    if _RESERVED.match(stem.rstrip(" ")):
        # "CON.png" is the console on Windows, whatever the extension
        text = stem.rstrip(" ") + "_" + dot + rest
    return text


def _cut(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    text = encoded[:max_bytes].decode("utf-8", errors="ignore")
    return text.rstrip(". ")


def name_key(name: str) -> str:
    """The key under which macOS and Windows see ``name``: two names with the
    same key are the same file there."""
    return unicodedata.normalize("NFC", name).casefold()


def is_inside(path: str, folder: str) -> bool:
    """Whether ``path``, with every link resolved, lies inside ``folder``."""
    real_folder = os.path.realpath(folder)
    real_path = os.path.realpath(path)
    try:
        return os.path.commonpath([real_folder, real_path]) == real_folder \
            and real_path != real_folder
    except ValueError:  # different drives on Windows
        return False


class FolderNames:
    """The names already used in one folder, compared as macOS and Windows
    compare them.

    Parameters
    ----------
    folder
        The folder; its current entries are read once (a missing folder has
        none).
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._names: dict[str, str] = {}
        try:
            entries = os.listdir(folder)
        except OSError:
            entries = []
        for entry in entries:
            self._names.setdefault(name_key(entry), entry)

    def existing(self, name: str) -> str | None:
        """The entry that ``name`` would clash with, as it is spelled on
        disk (or as it was added), or None."""
        return self._names.get(name_key(name))

    def add(self, name: str) -> None:
        """Record that ``name`` is now taken."""
        self._names.setdefault(name_key(name), name)

    @staticmethod
    def candidates(stem: str, extension: str = ""):
        """``stem.ext``, ``stem-2.ext``, ``stem-3.ext``, ... without end."""
        yield stem + extension
        number = 2
        while True:
            yield f"{stem}-{number}{extension}"
            number += 1
