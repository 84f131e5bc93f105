"""Resumable, hash-checked downloads, against a file server on 127.0.0.1."""
import hashlib
import importlib.util
import socket

import numpy as np
import pytest
from file_server import serve_file

from orangecontrib.imageanalytics.embedders.download import (
    DownloadCancelled,
    DownloadError,
    download_file,
    hash_matches,
    partial_path,
)

PAYLOAD = np.random.default_rng(12).bytes(3_000_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with serve_file(PAYLOAD) as (url, handler):
        yield url, handler


def test_downloads_checks_and_renames(server, tmp_path):
    url, handler = server
    seen = []
    target = tmp_path / "sub" / "w.pth"
    path = download_file(f"{url}/w.pth", target, sha256=SHA,
                         progress=lambda done, total: seen.append(
                             (done, total)))
    assert path == target and target.read_bytes() == PAYLOAD
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD),) * 2
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert [p.name for p in target.parent.iterdir()] == ["w.pth"]
    assert handler.ranges == [None]


def test_broken_transfer_resumes_with_a_range(server, tmp_path):
    url, handler = server
    handler.drop_after, handler.drops = 1_200_000, 1
    target = tmp_path / "w.pth"
    download_file(f"{url}/w.pth", target, sha256=SHA, retries=1)
    assert target.read_bytes() == PAYLOAD
    assert handler.ranges == [None, "bytes=1200000-"]
    assert not partial_path(target).exists()


def test_interrupted_download_is_kept_and_resumed_later(server, tmp_path):
    url, handler = server
    handler.drop_after, handler.drops = 700_000, 1
    target = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="download again to resume") \
            as info:
        download_file(f"{url}/w.pth", target, sha256=SHA, retries=0)
    assert url in str(info.value) and "0.7 MB" in str(info.value)
    assert not target.exists()
    part = partial_path(target)
    assert part.read_bytes() == PAYLOAD[:700_000]

    seen = []
    download_file(f"{url}/w.pth", target, sha256=SHA, retries=0,
                  progress=lambda done, total: seen.append(done))
    assert target.read_bytes() == PAYLOAD and not part.exists()
    assert handler.ranges[-1] == "bytes=700000-"
    assert seen[0] == 700_000 and seen[-1] == len(PAYLOAD)


def test_transfer_that_keeps_breaking_gives_up(server, tmp_path):
    url, handler = server
    handler.drop_after, handler.drops = 100_000, 100
    target = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="broke off|closed"):
        download_file(f"{url}/w.pth", target, sha256=SHA, retries=2)
    # the first try and two resumes, each adding what arrived
    assert len(handler.ranges) == 3
    assert partial_path(target).read_bytes() == PAYLOAD[:300_000]
    assert not target.exists()


def test_cancel_keeps_the_part_for_a_resume(server, tmp_path):
    url, handler = server
    target = tmp_path / "w.pth"
    chunks = []

    def stop():
        chunks.append(1)
        return len(chunks) > 1     # after the first chunk

    with pytest.raises(DownloadCancelled, match="resumes"):
        download_file(f"{url}/w.pth", target, sha256=SHA, should_stop=stop)
    kept = partial_path(target).stat().st_size
    assert 0 < kept < len(PAYLOAD) and not target.exists()
    download_file(f"{url}/w.pth", target, sha256=SHA)
    assert target.read_bytes() == PAYLOAD
    assert handler.ranges[-1] == f"bytes={kept}-"


def test_wrong_checksum_is_rejected_and_nothing_kept(server, tmp_path):
    url, _ = server
    target = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="not the expected") as info:
        download_file(f"{url}/w.pth", target, sha256="0" * 64)
    assert SHA in str(info.value)       # what arrived, for the bug report
    assert list(tmp_path.iterdir()) == []


def test_bad_partial_file_is_not_kept_as_the_file(server, tmp_path):
    url, handler = server
    target = tmp_path / "w.pth"
    # a part from another file: the resumed whole has the wrong hash
    partial_path(target).write_bytes(b"x" * 500_000)
    with pytest.raises(DownloadError, match="not the expected"):
        download_file(f"{url}/w.pth", target, sha256=SHA)
    assert handler.ranges == ["bytes=500000-"]
    assert list(tmp_path.iterdir()) == []
    # the next try starts from scratch and succeeds
    download_file(f"{url}/w.pth", target, sha256=SHA)
    assert target.read_bytes() == PAYLOAD


def test_server_without_ranges_sends_the_whole_file(server, tmp_path):
    url, handler = server
    handler.honour_range = False
    target = tmp_path / "w.pth"
    partial_path(target).write_bytes(PAYLOAD[:1000])
    download_file(f"{url}/w.pth", target, sha256=SHA)
    assert target.read_bytes() == PAYLOAD


def test_complete_part_is_checked_without_a_body(server, tmp_path):
    url, handler = server
    target = tmp_path / "w.pth"
    partial_path(target).write_bytes(PAYLOAD)
    download_file(f"{url}/w.pth", target, sha256=SHA)
    assert target.read_bytes() == PAYLOAD
    assert handler.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_not_found(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(f"{url}/missing.pth", tmp_path / "w.pth", sha256=SHA)
    assert f"{url}/missing.pth" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the port is free now: nothing listens there
    with pytest.raises(DownloadError, match="refused"):
        download_file(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth",
                      sha256=SHA, timeout=5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("expected, ok", [
    ("", True), (SHA, True), (SHA[:8], True), (SHA[:8].upper(), True),
    (SHA[:7], False), ("0" * 64, False), (SHA[1:9], False)])
def test_hash_matches(expected, ok):
    assert hash_matches(SHA, expected) is ok


def test_no_internet(tmp_path):
    import network_guard
    try:
        # the session's guard answers lookups as a computer offline does
        with pytest.raises(DownloadError, match="connected to the internet"):
            download_file("https://weights.example.org/w.pth",
                          tmp_path / "w.pth", sha256=SHA, timeout=5)
        assert network_guard.attempts == [("lookup",
                                           b"weights.example.org")] \
            or network_guard.attempts == [("lookup", "weights.example.org")]
    finally:
        network_guard.attempts.clear()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(importlib.util.find_spec("fcntl") is None,
                    reason="the lock between programs needs fcntl")
def test_a_second_program_is_kept_out(server, tmp_path):
    import fcntl
    url, handler = server
    target = tmp_path / "w.pth"
    part = partial_path(target)
    part.write_bytes(PAYLOAD[:1000])
    # the lock another program holds (flock conflicts between open files)
    with open(part, "ab") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DownloadError, match="another program"):
            download_file(f"{url}/w.pth", target, sha256=SHA)
    assert handler.ranges == []
    assert part.read_bytes() == PAYLOAD[:1000]     # its part is untouched
    # once it is done (here: gone), the download goes ahead and resumes
    download_file(f"{url}/w.pth", target, sha256=SHA)
    assert target.read_bytes() == PAYLOAD
    assert handler.ranges == ["bytes=1000-"]
