"""Write files into a folder without ever replacing or losing one.

:class:`TargetFolder` stores bytes under a name in a sub-folder of the
target: a name taken by a different file gets a number (``name-2.png``), a
file that already holds the same bytes is reused, names are compared as
macOS and Windows compare them, and no path leads outside the target, links
included. Each file is written under a temporary name and then linked into
place, so an interrupted write leaves no half-written file under a real name
and an existing file is never replaced.
"""
from __future__ import annotations

import errno
import os
import tempfile

from orangecontrib.imageanalytics.safe_names import FolderNames, is_inside, safe_component

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "TargetError", "TargetFolder"]

#: Temporary files are named so; one left by a killed save is removed by the
#: next save into the same folder.
TEMP_PREFIX, TEMP_SUFFIX = ".orange-saving-", ".part"


class TargetError(Exception):
    """The target cannot be written (read-only, full disk, not a folder)."""


def _same_content(path: str, data: bytes) -> bool:
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False


def _write_error(e: OSError, folder: str) -> TargetError:
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return TargetError(f"The disk is full: cannot write to {folder}. "
                            "Files saved so far are kept.")
    if e.errno == errno.EROFS:
        return TargetError(f"{folder} is on a read-only disk.")
    if isinstance(e, PermissionError) or e.errno == errno.EACCES:
        return TargetError(f"No permission to write to {folder}.")
    return TargetError(f"Cannot write to {folder}: {e.strerror or e}")


def _write_new(folder: str, name: str, data: bytes, mtime: float | None) -> bool:
    """Write ``data`` as ``folder/name`` unless that exists; True if written."""
    final = os.path.join(folder, name)
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    except OSError as e:
        raise _write_error(e, folder) from None
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            if mtime is not None:
                os.utime(temp, (mtime, mtime))
        except OSError as e:
            raise _write_error(e, folder) from None
        try:
            # a hard link fails where a file exists: nothing is replaced,
            # even one that appeared after the name was chosen
            os.link(temp, final)
        except FileExistsError:
            return False
        except OSError:
            if os.path.lexists(final):
                return False
            try:
                os.rename(temp, final)  # file systems without hard links
            except FileExistsError:
                return False
            except OSError as e:
                raise _write_error(e, folder) from None
            return True
        return True
    finally:
        try:
            os.unlink(temp)
        except OSError:
            pass


def _remove_stale_temporaries(folder: str) -> None:
    """Remove temporary files that a killed save left (only those)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


class TargetFolder:
    """The target folder: its sub-folders and the names taken in each."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._folders: dict[str | None, str] = {}  # folder value -> relative name
        self._names: dict[str, FolderNames] = {}
        self._checked: set[str] = set()  # folders found inside the target
        try:
            os.makedirs(self.root, exist_ok=True)
        except FileExistsError:
            raise TargetError(f"{self.root} is a file, not a folder.") from None
        except OSError as e:
            raise _write_error(e, self.root) from None
        if not os.path.isdir(self.root):
            raise TargetError(f"{self.root} is not a folder.")
        self._open("")

    def _open(self, relative: str) -> FolderNames:
        if relative not in self._names:
            path = os.path.join(self.root, relative)
            _remove_stale_temporaries(path)
            self._names[relative] = FolderNames(path)
        return self._names[relative]

    def folder_for(self, value: str) -> str:
        """The sub-folder (relative name) for a folder value; made if needed."""
        if value in self._folders:
            return self._folders[value]
        root_names = self._names[""]
        taken = set(self._folders.values())
        for name in FolderNames.candidates(safe_component(value)):
            existing = root_names.existing(name)
            if existing is None:
                break
            path = os.path.join(self.root, existing)
            # the user's own folder of that name is used, unless another
            # value already went there (they differ only in case) or it
            # leads outside the target
            if existing not in taken and os.path.isdir(path) and is_inside(path, self.root):
                name = existing
                break
        try:
            os.makedirs(os.path.join(self.root, name), exist_ok=True)
        except OSError as e:
            raise _write_error(e, os.path.join(self.root, name)) from None
        root_names.add(name)
        self._folders[value] = name
        self._open(name)
        return name

    def put(self, relative_folder: str, stem: str, extension: str, data: bytes,
            mtime: float | None) -> tuple[str, bool]:
        """Store ``data`` under ``stem`` in a folder; returns the relative path
        and whether it was written now (False: the same file was there)."""
        folder = os.path.join(self.root, relative_folder)
        names = self._open(relative_folder)
        if relative_folder not in self._checked:
            if relative_folder and not is_inside(folder, self.root):
                raise TargetError(f"{folder} leads outside {self.root}.")
            self._checked.add(relative_folder)
        for name in FolderNames.candidates(stem, extension):
            path = os.path.join(folder, name)
            existing = names.existing(name)
            if existing is not None:
                existing_path = os.path.join(folder, existing)
                if is_inside(existing_path, self.root) and os.path.isfile(existing_path) \
                        and _same_content(existing_path, data):
                    return _relative(relative_folder, existing), False
                continue
            # a name that does not exist is no link: the folder's check
            # (below) covers it, and os.link never follows a link that
            # appears meanwhile
            if _write_new(folder, name, data, mtime):
                names.add(name)
                return _relative(relative_folder, name), True
            names.add(name)  # appeared meanwhile: look at it as any other
            if _same_content(path, data):
                return _relative(relative_folder, name), False
        raise AssertionError("unreachable")  # pragma: no cover


def _relative(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name
