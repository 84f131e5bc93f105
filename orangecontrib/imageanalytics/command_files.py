"""The command line's files: reading what a command is given (a folder of
images or a data file), writing a table without ever leaving a half-written
file, and the one-line errors and exit codes of every command."""
from __future__ import annotations

import os
import shutil
import sys

__all__ = ["FAILED", "INTERRUPTED", "OK", "USAGE", "CommandError",
           "check_output", "load_input", "save_table"]

# exit codes
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """An error to report to the user in one line, without a traceback."""

    def __init__(self, message: str, code: int = FAILED):
        super().__init__(message)
        self.code = code


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) \
            == os.path.normcase(os.path.abspath(b))


def check_output(path: str, inputs: list[str]) -> None:
    from Orange.data.io import FileFormat
    ext = os.path.splitext(path)[1].lower()
    if ext not in FileFormat.writers:
        known = ", ".join(sorted(e for e in FileFormat.writers if e))
        raise CommandError(f"cannot write {path}: unknown extension "
                           f"{ext or '(none)'}; use one of {known}", USAGE)
    if os.path.isdir(path):
        raise CommandError(f"{path} is a folder, not a file name", USAGE)
    for source in inputs:
        if source and _same_file(path, source):
            raise CommandError(f"{path} is the input file; choose another "
                               "output file", USAGE)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"folder {folder} does not exist", USAGE)


def save_table(table, path: str) -> None:
    """Write ``table`` to ``path`` in full or not at all.

    The table goes to a temporary file beside ``path`` that then replaces
    it, so a write that fails half way (disk full, Ctrl+C) leaves a file the
    user already had there as it was.
    """
    # through a link, as writing in place would; a file's mode stays
    path = os.path.realpath(path)
    folder, name = os.path.split(path)
    # the writer is chosen by the extension, so the temporary name keeps it
    ext = os.path.splitext(name)[1]
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp{ext}")
    written = [temporary, temporary + ".metadata"]
    try:
        table.save(temporary)
        # Orange writes table attributes beside the file
        if os.path.exists(temporary + ".metadata"):
            os.replace(temporary + ".metadata", path + ".metadata")
        if os.path.exists(path):
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        for leftover in written:
            try:
                os.remove(leftover)
            except OSError:
                pass
        raise


def load_input(path: str, quiet: bool):
    """Return (table, skipped (path, reason) pairs from importing)."""
    if os.path.isdir(path):
        from orangecontrib.imageanalytics.import_images import import_images
        if not quiet:
            print(f"Scanning {path} ...", file=sys.stderr)
        result = import_images(path)
        if result.table is None:
            detail = f" ({result.n_skipped} unreadable)" \
                if result.n_skipped else ""
            raise CommandError(f"no images found in {path}{detail}")
        return result.table, [(s.path, s.reason) for s in result.skipped]
    if not os.path.exists(path):
        raise CommandError(f"{path} does not exist", USAGE)
    from Orange.data import Table
    try:
        return Table.from_file(path), []
    except Exception as exc:  # Orange's readers raise many kinds
        raise CommandError(f"cannot read {path}: {exc}") from exc
