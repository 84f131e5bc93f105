"""The real server in a subprocess (uvicorn on 127.0.0.1), driven by Orange's
own embedding client and by a bounded soak of concurrent requests."""
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image
from server_helpers import cosine, jpeg_bytes, model_input_jpeg, orange_client

from orangecontrib.imageanalytics.embedders.local import LocalEmbedder
from orangecontrib.imageanalytics.tutorials import example_photos

#: Requests in the soak test; the benchmark script can run 10,000.
SOAK_REQUESTS = int(os.environ.get("ORANGE_SERVER_SOAK_REQUESTS", "2000"))
SOAK_CLIENTS = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "orangecontrib.imageanalytics.server",
         "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
         "--models", "squeezenet", "--max-batch", "16",
         "--decode-threads", "2", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace")
                pytest.fail(f"the server did not start:\n{output}")
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _orange_client(url, tmp_path, monkeypatch):
    return orange_client(url, tmp_path / "orange.pickle", monkeypatch,
                         max_parallel_requests=32)


def test_orange_client_matches_local_engine(server, tmp_path, monkeypatch):
    url, _ = server
    images = [model_input_jpeg("squeezenet", seed) for seed in range(6)]
    malformed = [images[0][:200], b"GIF89a broken", b"\x00" * 50]
    communicator = _orange_client(url, tmp_path, monkeypatch)
    results = communicator.embedd_data(images + malformed)
    assert all(results[i] == [] for i in range(6, 9))
    paths = []
    for i, data in enumerate(images):
        path = tmp_path / f"sent{i}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    local = LocalEmbedder("squeezenet").embed(paths)
    for served, here in zip(results[:6], local):
        assert len(served) == 1000
        assert cosine(served, here.vector) >= 0.999


def test_orange_client_embeds_the_example_photos(server, tmp_path,
                                                 monkeypatch):
    """The project's example photos, prepared as Orange's client prepares
    them (RGB, resized to the input size, JPEG quality 75), all embed."""
    url, _ = server
    folder = Path(example_photos("labelled"))
    paths = sorted(folder.glob("*/*.*"))
    assert len(paths) == 50
    bodies = []
    for path in paths:
        with Image.open(path) as img:
            bodies.append(jpeg_bytes(
                img.convert("RGB").resize((227, 227), Image.LANCZOS)))
    results = _orange_client(url, tmp_path, monkeypatch).embedd_data(bodies)
    assert [len(vector) for vector in results] == [1000] * len(paths)
    # different pictures, different vectors
    assert cosine(results[0], results[-1]) < 0.99


def test_remote_embedder_against_the_process(server, tmp_path):
    from orangecontrib.imageanalytics.embedders.remote import RemoteEmbedder
    url, _ = server
    paths = []
    for seed in range(5):
        path = tmp_path / f"{seed}.jpg"
        path.write_bytes(model_input_jpeg("squeezenet", seed))
        paths.append(str(path))
    for mode in ("batch", "orange"):
        outcomes = RemoteEmbedder("squeezenet", url, protocol=mode,
                                  batch_size=2).embed(paths)
        assert all(o.vector is not None and o.vector.shape == (1000,)
                   for o in outcomes)


async def _soak(url: str, count: int, valid: list[bytes]) -> dict:
    """``count`` requests from SOAK_CLIENTS concurrent clients, each with its
    own connection: every eighth one a valid image, the others malformed in
    various ways."""
    malformed = [b"", b"not an image at all", valid[0][:len(valid[0]) // 3],
                 b"\xff\xd8\xff" + os.urandom(2000), bytes(5000)]
    counts = {"ok": 0, "skipped": 0, "other": 0}
    next_request = iter(range(count))

    async def client():
        async with httpx.AsyncClient(base_url=url, timeout=60) as session:
            for i in next_request:
                good = i % 8 == 0
                body = valid[i % len(valid)] if good \
                    else malformed[i % len(malformed)]
                reply = await session.post(
                    "/image/squeezenet", content=body,
                    headers={"Content-Type": "image/jpeg"})
                embedding = reply.json().get("embedding")
                if good and embedding is not None and len(embedding) == 1000:
                    counts["ok"] += 1
                elif not good and embedding == []:
                    counts["skipped"] += 1
                else:
                    counts["other"] += 1

    await asyncio.gather(*(client() for _ in range(SOAK_CLIENTS)))
    return counts


def test_soak_mixed_requests(server):
    url, process = server
    valid = [model_input_jpeg("squeezenet", seed) for seed in range(8)]
    memory = psutil.Process(process.pid)
    warm_up = SOAK_CLIENTS * 2
    asyncio.run(_soak(url, warm_up, valid))
    before = memory.memory_info().rss
    counts = asyncio.run(_soak(url, SOAK_REQUESTS, valid))
    after = memory.memory_info().rss
    valid_count = (SOAK_REQUESTS + 7) // 8
    assert counts == {"ok": valid_count,
                      "skipped": SOAK_REQUESTS - valid_count, "other": 0}
    assert process.poll() is None
    assert httpx.get(f"{url}/health").json()["queued"] == {"squeezenet": 0}
    # no growth with the number of requests (allocator noise aside)
    assert after - before < 100 * 2 ** 20, (before, after)
