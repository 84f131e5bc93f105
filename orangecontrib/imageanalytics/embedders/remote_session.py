"""The HTTP side of the embedding server's client.

A :class:`ServerSession` lives for one embedding run: it asks the server what
it offers (``GET /models``), sends images with the batch protocol or
Orange's protocol, repeats failed requests with exponential backoff (and the
server's ``Retry-After``), and turns what cannot be fixed by waiting into the
add-on's errors: :class:`ServerUnreachable` after repeated connection
failures, :class:`EmbedderUnavailable` when the server cannot run the model,
:class:`EmbeddingError` for a refused API key or nonsense replies.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np

from orangecontrib.imageanalytics import protocol as wire
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingError,
    ServerUnreachable,
)
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = ["Result", "ServerInfo", "ServerSession"]

log = logging.getLogger(__name__)

# statuses after which the same request may succeed later
_TRANSIENT = {429, 500, 502, 503, 504}
# httpx's connection pool slows down as it grows (measured: one client with
# 16 connections does about half the requests per second of four clients
# with four), so requests are spread over small clients
_CONNECTIONS_PER_CLIENT = 4

#: One image's outcome: (vector, None) or (None, reason).
Result = tuple[np.ndarray | None, str | None]


@dataclass(frozen=True)
class ServerInfo:
    """What a server said about itself and one model.

    ``batch`` is true when the server speaks the batch protocol;
    ``input_size`` and ``dimension`` are the model's on that server.
    """
    batch: bool
    input_size: int
    dimension: int
    max_images: int = 1024


class ServerSession:
    """Requests to one embedding server for one model.

    Parameters
    ----------
    spec
        The embedder.
    server_url
        Base URL (a path prefix is kept).
    api_key
        Sent as ``Authorization: Bearer``.
    max_in_flight
        Requests sent at the same time (spread over small clients).
    timeout
        Seconds to wait for each reply.
    protocol
        ``"auto"``, ``"batch"`` or ``"orange"``.
    retries
        Times one request (one image with Orange's protocol) is repeated
        before giving up, whatever the failures were.
    max_failures
        Consecutive connection failures, over all requests, after which the
        server counts as unreachable.
    backoff
        First delay between tries, in seconds; it doubles with each try.
    transport
        An ``httpx`` async transport instead of the network.
    """

    def __init__(self, spec: EmbedderSpec, server_url: str, *,
                 api_key: str | None, max_in_flight: int, timeout: float,
                 protocol: str, retries: int, max_failures: int,
                 backoff: float,
                 transport: httpx.AsyncBaseTransport | None) -> None:
        self.spec = spec
        self.server_url = server_url
        self.protocol = protocol
        self.retries = retries
        self.max_failures = max_failures
        self.backoff = backoff
        self.failures = 0   # consecutive connection failures
        self.dimension: int | None = None
        headers = {"User-Agent": "orange3-imageanalytics"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        per_client = _CONNECTIONS_PER_CLIENT
        limits = httpx.Limits(max_connections=per_client,
                              max_keepalive_connections=per_client)
        self._clients = [httpx.AsyncClient(
            base_url=server_url, transport=transport, headers=headers,
            limits=limits,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)))
            for _ in range(-(-max_in_flight // per_client))]
        self._next_client = itertools.cycle(self._clients)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    def unreachable(self, cause: object) -> ServerUnreachable:
        return ServerUnreachable(
            f"Cannot reach the embedding server at {self.server_url} "
            f"({cause}). Check the address and that the server runs, or "
            "choose a local embedder.")

    async def request(self, method: str, url: str, *,
                      again: Callable[[httpx.Response], bool] | None = None,
                      **kwargs) -> httpx.Response:
        """Send with retries; return a final (non-transient) response.

        One request is sent at most ``retries + 1`` times in all, whatever
        went wrong: connection errors and timeouts, transient statuses (429,
        5xx; ``Retry-After`` is honoured) and replies for which ``again``
        returns true.  Between tries it waits ``backoff * 2**try``, up to
        twice that (jitter).  When the tries are used up on replies that
        ``again`` rejects, the last of them is returned; otherwise
        :class:`ServerUnreachable` is raised.  It is also raised after
        ``max_failures`` consecutive connection failures over the session.
        """
        attempt = 0
        while True:
            retry_after = None
            try:
                response = await next(self._next_client).request(
                    method, url, **kwargs)
            except httpx.TransportError as error:
                # refused, reset, dropped mid-reply, timed out
                self.failures += 1
                log.debug("%s %s failed: %r", method, url, error)
                if self.failures >= self.max_failures \
                        or attempt >= self.retries:
                    raise self.unreachable(
                        str(error) or type(error).__name__) from error
            else:
                self.failures = 0
                if response.status_code in (401, 403):
                    raise EmbeddingError(
                        f"The embedding server at {self.server_url} "
                        "refused the request: "
                        f"{_message(response, 'a valid API key is needed')}")
                if response.status_code not in _TRANSIENT:
                    if again is None or not again(response) \
                            or attempt >= self.retries:
                        return response
                else:
                    if response.status_code == 503 \
                            and _code(response) == "model_unavailable":
                        raise EmbedderUnavailable(
                            f"The server at {self.server_url} cannot run "
                            f"{self.spec.label}: {_message(response, '')}")
                    if attempt >= self.retries:
                        raise ServerUnreachable(
                            f"The embedding server at {self.server_url} "
                            f"keeps failing (HTTP {response.status_code}: "
                            f"{_message(response, response.reason_phrase)}).")
                    retry_after = _retry_after(response)
            await asyncio.sleep(self.delay(attempt, retry_after))
            attempt += 1

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (from 0):
        exponential with jitter, at least the server's ``Retry-After``
        (capped at 30 s)."""
        delay = self.backoff * 2 ** attempt * (1 + random.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, 30.0))
        return delay

    async def discover(self) -> ServerInfo:
        """Ask the server which protocol to use and check the model."""
        spec = self.spec
        fallback = ServerInfo(False, spec.input_size, spec.dimension)
        if self.protocol == "orange":
            return fallback
        response = await self.request("GET", "/models")
        try:
            content = response.json()
            batch = content["protocols"]["batch"]
            models = {model["key"]: model for model in content["models"]}
        except (ValueError, KeyError, TypeError):
            if self.protocol == "batch":
                raise EmbeddingError(
                    f"The server at {self.server_url} does not speak the "
                    "batch protocol.") from None
            return fallback   # a server with Orange's protocol only
        model = models.get(spec.key)
        if model is None:
            raise EmbedderUnavailable(
                f"The server at {self.server_url} does not offer "
                f"{spec.label}; it offers: {', '.join(models) or 'nothing'}.")
        if not model.get("available", False):
            raise EmbedderUnavailable(
                f"The server at {self.server_url} cannot run "
                f"{spec.label}: {model.get('reason') or 'not available'}")
        use_batch = batch.get("version") == wire.PROTOCOL_VERSION
        if self.protocol == "batch" and not use_batch:
            raise EmbeddingError(
                f"The server at {self.server_url} speaks batch protocol "
                f"version {batch.get('version')}, not {wire.PROTOCOL_VERSION}.")
        info = ServerInfo(use_batch, int(model["input_size"]),
                          int(model["dimension"]),
                          int(batch.get("max_images", 1024)))
        self.dimension = info.dimension or None
        return info

    def check_vector(self, vector: np.ndarray) -> str | None:
        """Why a received vector is unusable, or None."""
        if vector.ndim != 1 or not vector.size:
            return "the server returned no vector"
        if self.dimension is None:
            self.dimension = vector.size
        if vector.size != self.dimension:
            return (f"the server returned a {vector.size}-d vector, "
                    f"expected {self.dimension}")
        if not np.isfinite(vector).all():
            return "the server returned invalid values"
        return None

    async def send_batch(self, url: str, jpegs: Sequence[bytes]
                         ) -> list[Result]:
        """Embed images with one batch-protocol request."""
        response = await self.request(
            "POST", url, content=wire.encode_image_batch(jpegs),
            headers={"Content-Type": wire.REQUEST_TYPE})
        if response.status_code == 404:
            raise EmbedderUnavailable(
                f"The server at {self.server_url} does not offer "
                f"{self.spec.label}: {_message(response, '')}")
        if response.status_code != 200:
            raise EmbeddingError(
                f"The embedding server refused a batch (HTTP "
                f"{response.status_code}: "
                f"{_message(response, response.reason_phrase)}).")
        try:
            vectors, errors, _ = wire.decode_embeddings(response.content)
        except wire.ProtocolError as error:
            raise EmbeddingError(
                f"The embedding server sent a malformed reply: {error}"
            ) from error
        if len(vectors) != len(jpegs):
            raise EmbeddingError(
                f"The embedding server returned {len(vectors)} vectors for "
                f"{len(jpegs)} images.")
        results: list[Result] = []
        for i, vector in enumerate(vectors):
            if i in errors:
                results.append((None, errors[i]))
                continue
            problem = self.check_vector(vector)
            results.append((None, problem) if problem else (vector, None))
        return results

    async def send_one(self, url: str, jpegs: Sequence[bytes]
                       ) -> list[Result]:
        """Embed one image with Orange's protocol."""
        jpeg, = jpegs
        # Orange's protocol: a reply without "embedding" (not JSON, a
        # proxy's error page) means "try again later"; those tries count
        # against the same budget as connection failures
        parsed: list = [None, {}]   # the last reply and its JSON

        def no_embedding(response: httpx.Response) -> bool:
            content = _json(response)
            parsed[:] = [response, content]
            return content.get("embedding") is None \
                and content.get("code") != "unknown_model"

        response = await self.request(
            "POST", url, content=jpeg, headers={"Content-Type": "image/jpeg"},
            again=no_embedding)
        content = parsed[1] if parsed[0] is response else _json(response)
        if response.status_code == 404 \
                and content.get("code") == "unknown_model":
            raise EmbedderUnavailable(
                f"The server at {self.server_url} does not offer "
                f"{self.spec.label}.")
        embedding = content.get("embedding")
        if embedding is None:
            return [(None, "the server did not return an embedding")]
        if not embedding:
            return [(None, content.get("error")
                     or "the server could not embed this image")]
        try:
            vector = np.asarray(embedding, dtype=np.float32)
        except (TypeError, ValueError):
            return [(None, "the server returned no vector")]
        problem = self.check_vector(vector)
        return [(None, problem) if problem else (vector, None)]


def _json(response: httpx.Response) -> dict:
    try:
        content = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return content if isinstance(content, dict) else {}


def _message(response: httpx.Response, default: str) -> str:
    return str(_json(response).get("error") or default)


def _code(response: httpx.Response) -> str | None:
    return _json(response).get("code")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return float(value)
    except ValueError:
        return None
