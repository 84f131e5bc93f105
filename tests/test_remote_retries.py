"""How often the embedding server's client tries one image, and how long it
waits in between."""
from collections import Counter

import httpx
import numpy as np
import pytest
from server_helpers import jpeg_bytes, photo

from orangecontrib.imageanalytics import protocol
from orangecontrib.imageanalytics.embedders.errors import ServerUnreachable
from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.embedders.remote import RemoteEmbedder
from orangecontrib.imageanalytics.embedders.remote_session import (
    ServerSession,
)

SPEC = get_embedder("inception-v3")
URL = "http://embedder.test"
RETRIES = 3


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for seed in range(3):
        (folder / f"{seed}.jpg").write_bytes(jpeg_bytes(photo(seed, (120, 90))))
    return sorted(str(path) for path in folder.iterdir())


def _refused():
    raise httpx.ConnectError("refused")


def _timeout():
    raise httpx.ReadTimeout("slow")


def _overloaded():
    return httpx.Response(503, headers={"Retry-After": "0.001"},
                          json={"error": "busy", "code": "overloaded"})


def _broken():
    return httpx.Response(502, text="bad gateway")


def _no_embedding():
    return httpx.Response(200, text="<html>busy</html>")


FAILURES = {"refused": _refused, "timeout": _timeout,
            "overloaded": _overloaded, "broken": _broken,
            "no embedding": _no_embedding}


class CountingServer:
    """Speaks Orange's protocol only; each image gets ``script`` (a list of
    failures, cycled) and never an embedding.  Counts tries per image."""

    def __init__(self, script, batch=False):
        self.script = script
        self.batch = batch
        self.tries = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            if not self.batch:
                return httpx.Response(404)
            return httpx.Response(200, json={
                "models": [{"key": SPEC.key, "input_size": 299,
                            "dimension": SPEC.dimension, "available": True}],
                "protocols": {"batch": {"version": protocol.PROTOCOL_VERSION,
                                        "max_images": 8}}})
        body = request.content
        tries = self.tries[body]
        self.tries[body] += 1
        return self.script[tries % len(self.script)]()


def _embed(server, paths, **kwargs):
    embedder = RemoteEmbedder(
        SPEC, URL, transport=httpx.MockTransport(server), threads=1,
        max_in_flight=1, retries=RETRIES, backoff=0.0005, **kwargs)
    try:
        return embedder.embed(paths)
    except ServerUnreachable:
        return None


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_orange_protocol_tries_an_image_at_most_retries_plus_one(
        image_files, kind):
    # failures of this kind alternate with replies without an embedding,
    # the mix for which the tries multiplied
    server = CountingServer([FAILURES[kind]] * RETRIES + [_no_embedding])
    outcomes = _embed(server, image_files, max_failures=100)
    assert server.tries
    assert max(server.tries.values()) <= RETRIES + 1
    if outcomes is not None:   # the last try got a reply, not an error
        assert all(o.error == "the server did not return an embedding"
                   for o in outcomes)


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_one_kind_of_failure_alone(image_files, kind):
    server = CountingServer([FAILURES[kind]])
    _embed(server, image_files, max_failures=100)
    assert max(server.tries.values()) == RETRIES + 1


@pytest.mark.parametrize("kind", ["refused", "timeout", "overloaded",
                                  "broken"])
def test_batch_protocol_tries_a_request_at_most_retries_plus_one(
        image_files, kind):
    server = CountingServer([FAILURES[kind]], batch=True)
    assert _embed(server, image_files, max_failures=100) is None
    assert max(server.tries.values()) <= RETRIES + 1


def test_consecutive_connection_failures_give_up(image_files):
    server = CountingServer([_refused])
    with pytest.raises(ServerUnreachable, match="Cannot reach"):
        RemoteEmbedder(SPEC, URL, transport=httpx.MockTransport(server),
                       threads=1, max_in_flight=1, retries=10,
                       max_failures=3, backoff=0.0005,
                       protocol="orange").embed(image_files)
    assert sum(server.tries.values()) == 3


def test_backoff_grows_for_every_kind_of_failure(image_files, monkeypatch):
    waits = []
    delay = ServerSession.delay

    def recorded(self, attempt, retry_after=None):
        waits.append((attempt, retry_after))
        return delay(self, attempt, retry_after)

    monkeypatch.setattr(ServerSession, "delay", recorded)
    server = CountingServer([_overloaded, _no_embedding, _refused,
                             _no_embedding])
    outcomes = _embed(server, image_files[:1], max_failures=100)
    assert outcomes[0].error == "the server did not return an embedding"
    assert waits == [(0, 0.001), (1, None), (2, None)]


def test_delay_is_exponential_with_jitter_and_honours_retry_after():
    session = ServerSession(
        SPEC, URL, api_key=None, max_in_flight=1, timeout=1.0,
        protocol="orange", retries=3, max_failures=10, backoff=0.5,
        transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    delays = np.array([[session.delay(attempt) for _ in range(200)]
                       for attempt in range(4)])
    low = 0.5 * 2.0 ** np.arange(4)
    assert (delays >= low[:, None]).all()
    assert (delays <= 2 * low[:, None]).all()
    assert (delays.std(axis=1) > 0).all()   # jitter
    assert session.delay(0, retry_after=7.0) >= 7.0
    assert session.delay(0, retry_after=3600.0) <= 30.0
