"""Client of the embedding server, for the embedders that run on a server.

For each image the client reads the file, hashes its bytes and looks the
vector up in the persistent cache before doing anything else.  Images not in
the cache are decoded (JPEG draft scaling first) and resized to the model's
input size in worker threads, JPEG-encoded at quality 75 as Orange's clients
do, and sent: many images per request with the batch protocol when the
server advertises it in ``GET /models``, else one image per request with
Orange's protocol.  Many requests are in flight at once; failed requests are
retried with exponential backoff; vectors go to the cache as replies arrive,
so a cancelled or broken run keeps everything it received.
"""
from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from orangecontrib.imageanalytics import protocol as wire
from orangecontrib.imageanalytics.embedders.cache import (
    EmbeddingCache,
    cache_key,
)
from orangecontrib.imageanalytics.embedders.inputs import prepare_input
from orangecontrib.imageanalytics.embedders.local import available_cores
from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_SERVER_URL,
    PUBLIC_SERVER_URL,
    SERVER_URL_ENV,
    EmbedderSpec,
    client_server_url,
    default_server_url,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.remote_session import (
    Result,
    ServerInfo,
    ServerSession,
)
from orangecontrib.imageanalytics.embedders.run_state import (
    EmbedOutcome,
    Prepared,
    RunState,
    prepare_source,
)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_SERVER_URL",
    "JPEG_QUALITY",
    "SERVER_URL_ENV",
    "RemoteEmbedder",
    "ServerInfo",
    "client_server_url",
    "default_server_url",
]

log = logging.getLogger(__name__)

# servers this process has sent images to, so that each is named once
_announced: set[str] = set()
_announced_lock = threading.Lock()


def _announce(server_url: str) -> None:
    """Log (INFO), the first time in a process, where images go."""
    with _announced_lock:
        if server_url in _announced:
            return
        _announced.add(server_url)
    if server_url.rstrip("/") == PUBLIC_SERVER_URL:
        log.info("Sending images to Orange's public embedding server, %s: "
                 "they leave this computer. Give server_url (or set $%s) "
                 "to use another server.", server_url, SERVER_URL_ENV)
    else:
        log.info("Sending images to the embedding server at %s.", server_url)

API_KEY_ENV = "ORANGE_EMBEDDING_API_KEY"
#: JPEG quality of the images sent (that of Orange's clients).
JPEG_QUALITY = 75

# how often the loop looks at should_stop (seconds)
_POLL = 0.1


class RemoteEmbedder:
    """Embed images with a model on an embedding server.

    Parameters
    ----------
    spec
        The embedder, as a spec or a registry key.
    server_url
        Base URL of the server (a path prefix is kept); by default
        ``$ORANGE_EMBEDDING_API_URL``, else Orange's public server
        (:func:`client_server_url`), as in the older add-on.
    cache
        Where to look vectors up and store them; ``None`` for no cache.
    api_key
        Sent as ``Authorization: Bearer``; by default
        ``$ORANGE_EMBEDDING_API_KEY``.
    max_in_flight
        Requests sent at the same time.
    timeout
        Seconds to wait for each reply.
    batch_size
        Images per request with the batch protocol.
    protocol
        ``"auto"`` (batch when advertised), ``"batch"`` or ``"orange"``.
    retries
        Times one request is repeated after a failure before giving up; with
        Orange's protocol this bounds the tries of one image, whether they
        failed to connect, got a transient status or got no embedding.
    max_failures
        Consecutive connection failures (over all requests) after which the
        server counts as unreachable.
    threads
        Threads reading and resizing images; default every core.
    transport
        An ``httpx`` async transport to use instead of the network (tests,
        in-process servers).
    backoff
        Seconds before the first repeat; each further one waits twice as
        long, plus up to as much again at random, and at least the server's
        ``Retry-After``.
    """

    def __init__(self, spec: EmbedderSpec | str,
                 server_url: str | None = None, *,
                 cache: EmbeddingCache | None = None,
                 api_key: str | None = None, max_in_flight: int = 16,
                 timeout: float = 60.0, batch_size: int = 32,
                 protocol: str = "auto", retries: int = 3,
                 max_failures: int = 10, threads: int | None = None,
                 max_pixels: int | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 backoff: float = 0.25) -> None:
        if isinstance(spec, str):
            spec = get_embedder(spec)
        if protocol not in ("auto", "batch", "orange"):
            raise ValueError("protocol must be 'auto', 'batch' or 'orange'")
        self.spec = spec
        self.server_url = client_server_url(server_url).rstrip("/")
        self.cache = cache
        self.api_key = api_key if api_key is not None \
            else os.environ.get(API_KEY_ENV) or None
        self.max_in_flight = max(1, max_in_flight)
        self.timeout = timeout
        self.batch_size = max(1, batch_size)
        self.protocol = protocol
        self.retries = max(0, retries)
        self.max_failures = max(1, max_failures)
        self.threads = max(1, threads or available_cores())
        self.max_pixels = max_pixels
        self.transport = transport
        self.backoff = backoff

    def embed(self, sources: Sequence[str | None], *,
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None
              ) -> list[EmbedOutcome]:
        """Embed images given by paths or URLs on the server.

        Parameters
        ----------
        sources
            Paths or URLs (``None`` or ``""`` gives a failed outcome).
        progress
            Called as ``progress(done, total)``.
        should_stop
            Polled every 0.1 s; when it returns true the run stops.

        Returns
        -------
        list of EmbedOutcome
            One per source, in order: a vector or the reason there is none.

        Raises
        ------
        ServerUnreachable
            If the server cannot be reached or keeps failing.
        EmbedderUnavailable
            If the server does not offer this model (the message gives the
            server's reason, e.g. a missing weights file).
        EmbeddingError
            If the server refuses the API key or answers nonsense.
        EmbeddingCancelled
            When ``should_stop`` turned true; vectors received so far are in
            the cache.
        """
        _announce(self.server_url)
        run = _Run(self, list(sources), progress, should_stop)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run.run())
        # called from a thread with a running loop (a notebook): run the
        # client's own loop in a helper thread
        box: dict = {}

        def target():
            try:
                box["result"] = asyncio.run(run.run())
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                box["error"] = error

        thread = threading.Thread(target=target, name="remote-embed")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def close(self) -> None:
        """Release resources; connections live only during :meth:`embed`,
        so there is nothing to release between calls."""

    # --- helpers used by _Run -----------------------------------------------

    def _session(self) -> ServerSession:
        return ServerSession(
            self.spec, self.server_url, api_key=self.api_key,
            max_in_flight=self.max_in_flight, timeout=self.timeout,
            protocol=self.protocol, retries=self.retries,
            max_failures=self.max_failures, backoff=self.backoff,
            transport=self.transport)

    def _prepare(self, index: int, source: str | None, spec: EmbedderSpec,
                 stop: threading.Event) -> Prepared:
        """Read, hash, look up and (on a miss) resize and encode one image;
        the payload is the JPEG to send."""
        def encode(data: bytes) -> bytes:
            pixels = prepare_input(data, spec, max_pixels=self.max_pixels)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=JPEG_QUALITY)
            return buffer.getvalue()

        # the server embeds a re-encoded JPEG, not the decoded pixels: its
        # vectors are not the local engine's and are cached apart
        return prepare_source(
            index, source, stop, cache=self.cache,
            key_of=lambda digest: cache_key(digest, self.spec, exact=False,
                                            remote=True),
            make=encode)


class _Run(RunState):
    """State of one :meth:`RemoteEmbedder.embed` call."""

    def __init__(self, embedder: RemoteEmbedder, sources: list,
                 progress, should_stop) -> None:
        super().__init__(sources, progress, should_stop)
        self.embedder = embedder

    def deliver(self, keys: Sequence[str], results: Sequence[Result]
                ) -> None:
        new = {}
        for key, (vector, error) in zip(keys, results):
            self.settle(key, vector, error)
            if vector is not None:
                new[key] = vector
        # written as replies arrive: a broken run keeps what it received
        if self.embedder.cache is not None and new:
            self.embedder.cache.put_many(new)

    # --- the loop -------------------------------------------------------------

    async def run(self) -> list[EmbedOutcome]:
        embedder = self.embedder
        self.check_stop()
        self.report(force=True)
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(embedder.threads,
                                  thread_name_prefix="remote-prepare")
        session = embedder._session()
        preparing: set[asyncio.Future] = set()
        sending: set[asyncio.Task] = set()
        try:
            info = await self.with_stop(session.discover())
            spec = dataclasses.replace(embedder.spec,
                                       input_size=info.input_size)
            per_request = min(embedder.batch_size, info.max_images) \
                if info.batch else 1
            send = session.send_batch if info.batch else session.send_one
            url = (wire.BATCH_PATH if info.batch else wire.ORANGE_PATH
                   ).format(model=embedder.spec.key)
            # prepared images not yet answered: enough to keep every request
            # slot busy and the workers ahead, bounded whatever the count
            window = per_request * (embedder.max_in_flight + 1) \
                + 2 * embedder.threads
            queue: list = []
            next_index = 0
            while self.done < self.total:
                self.check_stop()
                while next_index < self.total and \
                        len(preparing) + len(self.waiting) < window:
                    preparing.add(loop.run_in_executor(
                        pool, embedder._prepare, next_index,
                        self.sources[next_index], spec, self.stop))
                    next_index += 1
                while queue and len(sending) < embedder.max_in_flight and (
                        len(queue) >= per_request or not preparing):
                    chunk, queue[:] = queue[:per_request], queue[per_request:]
                    sending.add(asyncio.ensure_future(
                        self.sent(send, url, chunk)))
                if not preparing and not sending:
                    break   # everything is prepared, sent and answered
                finished, _ = await asyncio.wait(
                    preparing | sending, timeout=_POLL,
                    return_when=asyncio.FIRST_COMPLETED)
                for future in finished:
                    if future in preparing:
                        preparing.discard(future)
                        prepared = future.result()
                        if self.accept(prepared):
                            queue.append((prepared.key, prepared.payload))
                    else:
                        sending.discard(future)
                        self.deliver(*future.result())
                self.report()
        finally:
            self.stop.set()
            for task in sending:
                task.cancel()
            if sending:
                await asyncio.gather(*sending, return_exceptions=True)
            pool.shutdown(wait=False, cancel_futures=True)
            await session.aclose()
        self.report(force=True)
        return self.outcomes

    @staticmethod
    async def sent(send, url: str, chunk: list) -> tuple[list, list[Result]]:
        """Send a chunk of (key, jpeg); return the keys and the results."""
        results = await send(url, [jpeg for _, jpeg in chunk])
        return [key for key, _ in chunk], results

    async def with_stop(self, coroutine):
        """Await ``coroutine`` while polling should_stop."""
        task = asyncio.ensure_future(coroutine)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_POLL)
                if done:
                    return task.result()
                self.check_stop()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
