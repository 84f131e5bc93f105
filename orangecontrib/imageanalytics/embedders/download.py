"""Download a large file safely: resumable, hash-checked, all or nothing.

:func:`download_file` streams a URL into ``<name>.part`` beside the target.
A transfer that breaks off (a dropped connection, a read that times out, the
user pressing Cancel) keeps the part file, and the next call asks the server
for the rest with an HTTP ``Range`` request; a server that ignores ranges
sends the whole file again.  Only when the whole file is there and its
SHA-256 matches is it renamed to the target, so a target file is always
complete; a file with another hash is deleted, never kept.

Every failure raises :class:`DownloadError` with a message for the user:
what failed, at which address, and what to do.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
)

__all__ = [
    "DownloadCancelled",
    "DownloadError",
    "download_file",
    "hash_matches",
    "partial_path",
    "sha256_file",
]

Progress = Callable[[int, "int | None"], None]

_CHUNK = 1 << 20
# a prefix shorter than torchvision's 8 hex digits would check nothing useful
_MIN_PREFIX = 8
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(EmbedderUnavailable):
    """A download failed; the message says why and what to do."""


class DownloadCancelled(EmbeddingCancelled):
    """The caller stopped a download; what arrived is kept for a resume."""


def partial_path(target: str | os.PathLike) -> Path:
    """Where the unfinished download of ``target`` is kept."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's contents, in lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_matches(digest: str, expected: str) -> bool:
    """Whether ``digest`` is ``expected``, or starts with it when
    ``expected`` is a prefix as in torchvision's file names (at least 8 hex
    digits); an empty ``expected`` accepts any file."""
    expected = expected.strip().lower()
    if not expected:
        return True
    return len(expected) >= _MIN_PREFIX and digest.startswith(expected)


# one download per file at a time in this process (two widgets, or a widget
# and a script, asking for the same weights): both would append to one part
_file_locks: dict[Path, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _file_lock(target: Path) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks.setdefault(target.resolve(), threading.Lock())


@contextlib.contextmanager
def _other_programs_kept_out(part: Path, url: str):
    """Hold an advisory lock on the part file, so that a second program
    downloading the same file fails at once instead of writing into it.

    Only where ``fcntl`` exists (not on Windows, where a program downloads
    one file at a time but two programs are not kept apart).
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DownloadError(
                f"Downloading {url} failed: another program is downloading "
                f"{part.name} right now; try again when it has finished."
            ) from None
        yield
    finally:
        os.close(fd)


class _Interrupted(Exception):
    """The transfer stopped part way; it may be resumed."""


class _Restart(Exception):
    """The part file cannot be continued; start again from the beginning."""


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _connect_reason(error: Exception) -> str:
    text = str(error)
    lowered = text.lower()
    if "refused" in lowered:
        return "the connection was refused (no server listens there)"
    if any(words in lowered for words in (
            "name resolution", "name or service not known", "nodename",
            "getaddrinfo", "errno -2]", "errno -3]")):
        return (f"the server's name cannot be looked up; is this computer "
                f"connected to the internet? ({text})")
    return text or type(error).__name__


def _fetch(client, url: str, part: Path, progress: Progress | None,
           should_stop: Callable[[], bool] | None) -> None:
    """One request: append the missing bytes to ``part``.

    Raises :class:`_Interrupted` when the body breaks off, :class:`_Restart`
    when the part file cannot be continued, :class:`DownloadError` for an
    answer that is not the file.
    """
    import httpx

    offset = part.stat().st_size if part.exists() else 0
    # byte offsets must be those of the file, not of a compressed body
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == 416 and offset:
                # nothing left to send: the part may already be complete
                match = re.match(r"bytes\s+\*/(\d+)",
                                 response.headers.get("Content-Range", ""))
                if match and int(match.group(1)) == offset:
                    return
                raise _Restart
            if status == 206 and offset:
                match = _CONTENT_RANGE.match(
                    response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != offset:
                    raise _Restart
                total = None if match.group(3) == "*" \
                    else int(match.group(3))
                mode = "ab"
            elif status == 200:
                # the whole file, also when a range was asked for
                offset = 0
                length = response.headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else None
                mode = "wb"
            else:
                raise DownloadError(
                    f"the server answered HTTP {status} "
                    f"{response.reason_phrase}".rstrip())
            done = offset
            if progress is not None:
                progress(done, total)
            with open(part, mode) as file:
                try:
                    # as the bytes arrive: a buffered chunk would be lost
                    # when the connection drops
                    for chunk in response.iter_bytes():
                        if should_stop is not None and should_stop():
                            raise DownloadCancelled(
                                f"Download stopped after "
                                f"{_megabytes(done)}; it resumes from there "
                                "next time.")
                        file.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                except httpx.TransportError as error:
                    raise _Interrupted(
                        f"the transfer broke off after {_megabytes(done)}"
                        + (f" of {_megabytes(total)}" if total else "")
                        + f" ({error or type(error).__name__})") from error
            if total is not None and done < total:
                raise _Interrupted(
                    f"the server closed the connection after "
                    f"{_megabytes(done)} of {_megabytes(total)}")
    except httpx.TimeoutException as error:
        raise _Interrupted(f"the server did not answer in time "
                           f"({type(error).__name__})") from error
    except (httpx.ConnectError, httpx.UnsupportedProtocol,
            httpx.InvalidURL) as error:
        raise DownloadError(_connect_reason(error)) from error
    except httpx.TransportError as error:
        raise _Interrupted(str(error) or type(error).__name__) from error


def download_file(url: str, target: str | os.PathLike, *,
                  sha256: str = "", progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  timeout: float = 60.0, retries: int = 3,
                  transport=None) -> Path:
    """Download ``url`` to ``target``, resuming an earlier partial download.

    Parameters
    ----------
    url
        An ``http://`` or ``https://`` address.
    target
        The file to write; its folder is created.
    sha256
        Expected SHA-256 in hex, or a prefix of at least 8 digits; empty to
        accept any file.
    progress
        Called as ``progress(bytes_done, bytes_total or None)``; a resumed
        download starts at the bytes already there.
    should_stop
        Polled between chunks; when it returns true the download stops with
        :class:`DownloadCancelled`, keeping what arrived.
    timeout
        Seconds to wait for the server at each step (connect, each read).
    retries
        How many times a transfer that breaks off is resumed at once before
        giving up (the part file is kept for a later call either way).
    transport
        An ``httpx`` transport to use instead of the network (tests).

    Returns
    -------
    Path
        ``target``, complete and checked.

    Raises
    ------
    DownloadError
        If the server cannot be reached, answers with an error, the transfer
        keeps breaking off, or the file has another SHA-256 (then it is
        deleted).
    DownloadCancelled
        If ``should_stop`` asked to stop.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target), _other_programs_kept_out(partial_path(target), url):
        return _download(url, target, sha256, progress, should_stop,
                         timeout, retries, transport)


def _download(url: str, target: Path, sha256: str,
              progress: Progress | None,
              should_stop: Callable[[], bool] | None, timeout: float,
              retries: int, transport) -> Path:
    import httpx

    part = partial_path(target)
    # a restart is bounded too: a server that keeps answering ranges that do
    # not fit would otherwise loop for ever
    restarts = interruptions = 0
    try:
        with httpx.Client(follow_redirects=True, timeout=timeout,
                          transport=transport) as client:
            while True:
                try:
                    _fetch(client, url, part, progress, should_stop)
                    break
                except _Restart:
                    # truncated, not removed: the lock stays on this file
                    with open(part, "wb"):
                        pass
                    restarts += 1
                    if restarts > 1:
                        raise DownloadError(
                            "the server does not send the rest of a file "
                            "consistently") from None
                except _Interrupted as error:
                    interruptions += 1
                    if interruptions > retries:
                        kept = part.stat().st_size if part.exists() else 0
                        raise DownloadError(
                            f"{error}. {_megabytes(kept)} are kept; download "
                            "again to resume.") from error
    except DownloadError as error:
        _drop_empty(part)
        raise DownloadError(f"Downloading {url} failed: {error}") from error
    except BaseException:
        _drop_empty(part)
        raise
    digest = sha256_file(part)
    if not hash_matches(digest, sha256):
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"The file downloaded from {url} is not the expected one: its "
            f"SHA-256 is {digest}, expected {sha256.strip().lower()}"
            f"{'...' if len(sha256.strip()) < 64 else ''}. It was deleted; "
            "nothing was saved.")
    os.replace(part, target)
    return target


def _drop_empty(part: Path) -> None:
    try:
        if part.stat().st_size == 0:
            part.unlink()
    except OSError:
        pass
