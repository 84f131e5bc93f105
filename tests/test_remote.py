"""The embedding server's client, with injected transports."""
import asyncio
import io
import threading
import time
import warnings

import httpx
import numpy as np
import pytest
from PIL import Image
from server_helpers import cosine, jpeg_bytes, photo

from orangecontrib.imageanalytics import protocol
from orangecontrib.imageanalytics.embedders.cache import (
    EmbeddingCache,
    cache_key,
)
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
    EmbeddingError,
    ServerUnreachable,
)
from orangecontrib.imageanalytics.embedders.inputs import content_hash
from orangecontrib.imageanalytics.embedders.local import LocalEmbedder
from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.embedders.remote import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    RemoteEmbedder,
    default_server_url,
)
from orangecontrib.imageanalytics.server.app import create_app
from orangecontrib.imageanalytics.server.config import ServerConfig

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SPEC = get_embedder("inception-v3")
DIM = SPEC.dimension
URL = "http://embedder.test/prefix"


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for seed in range(6):
        path = folder / f"photo{seed}.jpg"
        path.write_bytes(jpeg_bytes(photo(seed, (200, 150)), quality=90))
        paths.append(str(path))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return paths, str(folder / "broken.jpg")


@pytest.fixture
def cache(tmp_path):
    return EmbeddingCache(str(tmp_path / "cache.sqlite"))


def _vector(seed):
    return np.random.default_rng(seed).random(DIM, dtype=np.float32)


def _models_reply(batch=True, available=True, reason=None, key="inception-v3",
                  input_size=299):
    content = {"models": [{"key": key, "input_size": input_size,
                           "dimension": DIM, "available": available,
                           "reason": reason}],
               "protocols": {"batch": {"version": protocol.PROTOCOL_VERSION,
                                       "max_images": 4}}}
    if not batch:
        return httpx.Response(404, text="Not Found")
    return httpx.Response(200, json=content)


class FakeServer:
    """A scripted server for httpx.MockTransport; records requests."""

    def __init__(self, batch=True, **models):
        self.batch = batch
        self.models = models
        self.requests = []
        self.failures = {}   # path -> list of exceptions/responses to give

    def fail(self, path, *outcomes):
        self.failures.setdefault(path, []).extend(outcomes)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(request)
        for prefix, outcomes in self.failures.items():
            if path.startswith(prefix) and outcomes:
                outcome = outcomes.pop(0)
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome
        if path == "/prefix/models":
            return _models_reply(self.batch, **self.models)
        if path.startswith("/prefix/v2/embed/"):
            images = protocol.decode_image_batch(request.content,
                                                 max_images=100)
            vectors = np.stack([_vector(len(image)) for image in images])
            return httpx.Response(200, content=protocol.encode_embeddings(
                vectors, {}, model="inception-v3"))
        if path.startswith("/prefix/image/"):
            return httpx.Response(
                200, json={"embedding": _vector(len(request.content)).tolist()})
        return httpx.Response(404)

    def posts(self):
        return [r for r in self.requests if r.method == "POST"]


def _embedder(server, **kwargs):
    kwargs.setdefault("backoff", 0.01)
    return RemoteEmbedder(SPEC, URL, transport=httpx.MockTransport(server),
                          threads=2, **kwargs)


def test_default_url(monkeypatch):
    monkeypatch.delenv(SERVER_URL_ENV, raising=False)
    assert default_server_url() == DEFAULT_SERVER_URL
    monkeypatch.setenv(SERVER_URL_ENV, "http://gpu.lab:9000/embed/")
    assert RemoteEmbedder(SPEC).server_url == "http://gpu.lab:9000/embed"


def test_batch_protocol_fills_cache(image_files, cache):
    paths, broken = image_files
    server = FakeServer()
    progress = []
    outcomes = _embedder(server, cache=cache, batch_size=3).embed(
        [*paths, broken, "", paths[0]],
        progress=lambda done, total: progress.append((done, total)))
    assert [o.error is None for o in outcomes] == \
        [True] * 6 + [False, False, True]
    assert outcomes[6].error   # the broken file, with its reason
    assert outcomes[7].error == "no image path or URL"
    np.testing.assert_array_equal(outcomes[8].vector, outcomes[0].vector)
    posts = server.posts()
    # 6 distinct images, at most 3 per request (server allows 4)
    assert len(posts) == 2
    assert all(r.url.path == "/prefix/v2/embed/inception-v3" for r in posts)
    assert progress[-1] == (9, 9)
    for path, outcome in zip(paths, outcomes):
        with open(path, "rb") as file:
            key = cache_key(content_hash(file.read()), SPEC, exact=False,
                            remote=True)
        np.testing.assert_array_equal(cache.get_many([key])[key],
                                      outcome.vector)
    # everything is cached now: no image is sent again
    again = _embedder(server, cache=cache).embed(paths)
    assert len(server.posts()) == 2
    assert all(o.vector is not None for o in again)


def test_remote_and_local_vectors_are_cached_apart(image_files, cache):
    """The server embeds a re-encoded JPEG: its vectors differ from the
    local engine's, so neither may be taken for the other."""
    paths, _ = image_files
    with open(paths[0], "rb") as file:
        digest = content_hash(file.read())
    for spec in (SPEC, get_embedder("squeezenet")):
        assert cache_key(digest, spec, exact=False, remote=True) \
            != cache_key(digest, spec, exact=False)
    # the local key is as it always was: users' caches stay valid
    assert cache_key(digest, SPEC, exact=False) == \
        f"inception-v3/{SPEC.preprocessing_version}/fast/{digest}"
    local_key = cache_key(digest, SPEC, exact=False)
    local_vector = np.full(DIM, 7.0, dtype=np.float32)
    cache.put_many({local_key: local_vector})
    server = FakeServer()
    outcome, = _embedder(server, cache=cache).embed(paths[:1])
    # a vector cached by the local engine is not used: the image is sent
    assert len(server.posts()) == 1
    assert not np.array_equal(outcome.vector, local_vector)
    # and the server's vector does not replace the local one
    np.testing.assert_array_equal(cache.get_many([local_key])[local_key],
                                  local_vector)


def test_images_are_resized_jpegs(image_files):
    paths, _ = image_files
    server = FakeServer(batch=False)
    _embedder(server).embed(paths[:1])
    post, = server.posts()
    assert post.url.path == "/prefix/image/inception-v3"
    assert post.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(post.content)) as image:
        assert image.format == "JPEG" and image.size == (299, 299)


def test_server_input_size_is_used(image_files):
    paths, _ = image_files
    server = FakeServer(input_size=128)
    _embedder(server).embed(paths[:1])
    image, = protocol.decode_image_batch(server.posts()[0].content,
                                         max_images=10)
    assert Image.open(io.BytesIO(image)).size == (128, 128)


def test_orange_protocol_replies(image_files):
    paths, _ = image_files
    server = FakeServer(batch=False)
    server.fail("/prefix/image/",
                httpx.Response(200, text="<html>busy</html>"),   # retried
                httpx.Response(200, json={"embedding": [],
                                          "error": "bad image"}))
    outcomes = _embedder(server, max_in_flight=1).embed(paths[:3])
    errors = [o.error for o in outcomes]
    assert errors.count("bad image") == 1
    assert sum(o.vector is not None for o in outcomes) == 2
    assert len(server.posts()) == 4


def test_connection_refused_gives_up(image_files):
    paths, _ = image_files
    server = FakeServer()
    server.fail("/", *[httpx.ConnectError("refused")] * 100)
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match="Cannot reach the embedding "
                                                "server at " + URL):
        _embedder(server, retries=3).embed(paths)
    assert len(server.requests) == 4   # GET /models, then 3 retries
    assert time.monotonic() - started < 5


def test_dropped_connections_are_retried(image_files, cache):
    paths, _ = image_files
    server = FakeServer()
    server.fail("/prefix/v2/", httpx.RemoteProtocolError("dropped"),
                httpx.ReadError("reset"), httpx.ReadTimeout("slow"))
    outcomes = _embedder(server, cache=cache, batch_size=2).embed(paths)
    assert all(o.vector is not None for o in outcomes)
    assert len(server.posts()) == 3 + 3


def test_repeated_timeouts_give_up(image_files):
    paths, _ = image_files
    server = FakeServer()
    server.fail("/prefix/v2/", *[httpx.ReadTimeout("slow")] * 50)
    with pytest.raises(ServerUnreachable):
        _embedder(server, retries=2, max_in_flight=1).embed(paths)
    assert len(server.posts()) == 3


def test_overloaded_server_is_retried_after_a_while(image_files):
    paths, _ = image_files
    server = FakeServer()
    busy = httpx.Response(503, headers={"Retry-After": "0"},
                          json={"error": "busy", "code": "overloaded"})
    server.fail("/prefix/v2/", busy, busy)
    outcomes = _embedder(server).embed(paths[:2])
    assert all(o.vector is not None for o in outcomes)


def test_failing_server_gives_up(image_files):
    paths, _ = image_files
    server = FakeServer()
    server.fail("/prefix/v2/", *[httpx.Response(500, text="oops")] * 10)
    with pytest.raises(ServerUnreachable, match="keeps failing"):
        _embedder(server, retries=2).embed(paths[:1])


def test_model_unavailable_on_server(image_files):
    paths, _ = image_files
    server = FakeServer(available=False,
                        reason="The weights are missing: x.pth")
    with pytest.raises(EmbedderUnavailable, match="x.pth"):
        _embedder(server).embed(paths)
    assert not server.posts()
    with pytest.raises(EmbedderUnavailable, match="does not offer"):
        _embedder(FakeServer(key="vgg16")).embed(paths)


def test_wrong_api_key(image_files):
    paths, _ = image_files
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, json={"error": "a valid API key is "
                                         "required", "code": "unauthorized"})
    embedder = RemoteEmbedder(SPEC, URL, api_key="k",
                              transport=httpx.MockTransport(handler))
    with pytest.raises(EmbeddingError, match="API key"):
        embedder.embed(paths)
    assert seen == ["Bearer k"]


def test_cancellation_is_quick(image_files):
    paths, _ = image_files
    stop = threading.Event()

    async def slow(request):
        if request.url.path.endswith("/models"):
            return _models_reply()
        stop.set()
        await asyncio.sleep(30)
        return httpx.Response(500)
    embedder = RemoteEmbedder(SPEC, URL, transport=httpx.MockTransport(slow))
    started = time.monotonic()
    with pytest.raises(EmbeddingCancelled):
        embedder.embed(paths, should_stop=stop.is_set)
    assert time.monotonic() - started < 2


def test_called_with_a_running_event_loop(image_files):
    paths, _ = image_files

    async def in_a_notebook():
        return _embedder(FakeServer()).embed(paths[:2])
    outcomes = asyncio.run(in_a_notebook())
    assert all(o.vector is not None for o in outcomes)


class TestEndToEnd:
    """The real application through httpx.ASGITransport."""

    @pytest.fixture(scope="class")
    def app(self):
        config = ServerConfig(device="cpu", models=("squeezenet", "vgg19"),
                              weights_dir="/nonexistent")
        app = create_app(config)
        with TestClient(app):   # runs the lifespan: models load
            yield app

    @pytest.mark.parametrize("mode", ["batch", "orange"])
    def test_both_protocols(self, app, image_files, cache, mode):
        paths, broken = image_files
        requests = []

        class Counting(httpx.ASGITransport):
            async def handle_async_request(self, request):
                requests.append(request.url.path)
                return await super().handle_async_request(request)

        embedder = RemoteEmbedder(
            "squeezenet", "http://testserver", cache=cache, protocol=mode,
            transport=Counting(app=app), batch_size=4)
        outcomes = embedder.embed([*paths, broken])
        assert outcomes[-1].vector is None and outcomes[-1].error
        local = LocalEmbedder("squeezenet").embed(paths)
        for remote, here in zip(outcomes, local):
            # the server sees a 227² JPEG at quality 75 of the same photo
            assert cosine(remote.vector, here.vector) > 0.98
        sent = [p for p in requests if p != "/models"]
        assert len(sent) == (2 if mode == "batch" else 6)
        requests.clear()
        again = embedder.embed(paths)
        assert [p for p in requests if p != "/models"] == []
        for first, second in zip(outcomes, again):
            np.testing.assert_array_equal(first.vector, second.vector)

    def test_unavailable_model_reason(self, app, image_files):
        paths, _ = image_files
        embedder = RemoteEmbedder("vgg19", "http://testserver",
                                  transport=httpx.ASGITransport(app=app))
        with pytest.raises(EmbedderUnavailable, match="vgg19-dcbb9e9d.pth"):
            embedder.embed(paths)



def test_server_models_go_to_the_public_server_by_default(monkeypatch,
                                                          caplog):
    """As in the older add-on: no address and no environment variable send
    the images to Orange's public server, and the first request says so."""
    from orangecontrib.imageanalytics.embedders import remote
    from orangecontrib.imageanalytics.embedders.registry import (
        PUBLIC_SERVER_URL,
    )
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    monkeypatch.delenv(SERVER_URL_ENV, raising=False)
    monkeypatch.setattr(remote, "_announced", set())
    embedder = RemoteEmbedder(SPEC, transport=httpx.MockTransport(
        lambda request: httpx.Response(503)), threads=1, retries=0,
        max_failures=1, backoff=0.01)
    assert embedder.server_url == PUBLIC_SERVER_URL
    assert ImageEmbedder("inception-v3", cache=False)._backend \
        .server_url == PUBLIC_SERVER_URL
    with caplog.at_level("INFO", logger=remote.__name__):
        for _ in range(2):
            try:
                embedder.embed([])
            except Exception:   # noqa: BLE001 - only the log matters here
                pass
    said = [r.getMessage() for r in caplog.records
            if r.name == remote.__name__ and "Sending images" in r.getMessage()]
    assert len(said) == 1 and "public" in said[0] \
        and PUBLIC_SERVER_URL in said[0]
    # an address, given or in the environment, still wins
    assert RemoteEmbedder(SPEC, "http://gpu.lab:8000/").server_url \
        == "http://gpu.lab:8000"
    monkeypatch.setenv(SERVER_URL_ENV, "http://other:9000")
    assert RemoteEmbedder(SPEC).server_url == "http://other:9000"
