"""The embedding server's Starlette application.

Routes:

* ``POST /image/{model}`` - Orange's protocol: one JPEG (any image Pillow
  reads) in the body, ``{"embedding": [...]}`` back.  Query parameters
  (``machine``, ``session``, ``retry``) are ignored.
* ``POST /v2/embed/{model}`` - the batch protocol
  (:mod:`orangecontrib.imageanalytics.protocol`).
* ``GET /models`` - served models, their availability and the protocols.
* ``GET /health`` - liveness, without authorisation.

Orange's client ignores status codes and reads only the JSON body: a reply
with ``"embedding": []`` makes it skip the image (and remember that), a reply
without ``"embedding"`` makes it try again later.  So permanent, per-image
failures (undecodable, too large, empty) carry ``"embedding": []`` and
transient or server-side ones (overload, timeout, model unavailable, unknown
model) do not; the status codes say the same for other clients.

Images live in memory only: bodies are read into bytes, decoded in a thread
pool and dropped with the request; nothing is ever written to disk.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orangecontrib.imageanalytics import images, protocol
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.server.batcher import (
    AdmissionCounter,
    Batcher,
    BatcherStopped,
    ModelFailed,
)
from orangecontrib.imageanalytics.server.config import (
    ModelEntry,
    ServerConfig,
    resolve_entries,
)
from orangecontrib.imageanalytics.server.models import ServedModel, load_model

__all__ = ["RequestError", "ServerState", "create_app"]

log = logging.getLogger(__name__)

try:  # optional: the fastest way to write long float lists as JSON
    import orjson

    def _dump_embedding(vector: np.ndarray) -> bytes:
        return orjson.dumps({"embedding": vector},
                            option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - depends on the environment
    _formats: dict[int, str] = {}

    def _dump_embedding(vector: np.ndarray) -> bytes:
        # "%.9g" round-trips every float32 exactly and formats three times
        # faster than json.dumps, whose float repr has 17 digits
        fmt = _formats.get(len(vector))
        if fmt is None:
            fmt = _formats[len(vector)] = ",".join(["%.9g"] * len(vector))
        return b'{"embedding":[' + (fmt % tuple(vector.tolist())).encode() \
            + b"]}"


class RequestError(Exception):
    """A reply other than success; raised inside handlers.

    Pickles with all its fields, so that a replica on another process can
    send it to the HTTP front (:mod:`.ray_serve`)."""

    def __init__(self, status: int, code: str, message: str, *,
                 skip: bool = False, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.skip = skip
        self.headers = headers

    def __reduce__(self):
        return _request_error, (self.status, self.code, self.message,
                                self.skip, self.headers)

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.skip:
            # Orange's client skips the image for good
            body["embedding"] = []
        return JSONResponse(body, status_code=self.status,
                            headers=self.headers)


def _request_error(status, code, message, skip, headers) -> RequestError:
    return RequestError(status, code, message, skip=skip, headers=headers)


class ServerState:
    """Models, batchers and the decode pool of a running app.

    The app's handlers use it through :meth:`open`, :meth:`close`,
    :meth:`check`, :meth:`embed`, :meth:`catalogue` and :meth:`health`; a
    backend with the same methods (:class:`.ray_serve.RayBackend`, which
    hands the work to replicas) can stand in for it.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.device = config.resolved_device()
        self.entries: list[ModelEntry] = resolve_entries(config)
        self.models: dict[str, ServedModel] = {}
        self.unavailable: dict[str, str] = {}
        self.batchers: dict[str, Batcher] = {}
        self.admission: dict[str, AdmissionCounter] = {}
        # bytes of request bodies held, over all requests and models: the
        # per-model queue counts images, not bytes, so without this budget
        # memory would grow with the number of concurrent uploads
        self.buffered = AdmissionCounter(config.resolved_max_buffered_bytes())
        self.pool: ThreadPoolExecutor | None = None
        self.threads = config.resolved_decode_threads()

    def load(self) -> None:
        """Load every model; failures make a model unavailable, not the
        server fail."""
        for entry in self.entries:
            key = entry.spec.key
            try:
                model = load_model(entry, self.config)
            except EmbedderUnavailable as error:
                self.unavailable[key] = str(error)
                log.warning("%s is unavailable: %s", key, error)
                continue
            except Exception as error:
                log.exception("loading %s failed", key)
                self.unavailable[key] = f"{entry.spec.label} failed to load: " \
                                        f"{error}"
                continue
            self.models[key] = model
            log.info("%s ready (%s, %d-d, %s)", key, model.engine,
                     model.dimension, model.device)

    def start(self) -> None:
        self.pool = ThreadPoolExecutor(self.threads,
                                       thread_name_prefix="decode")
        for key, model in self.models.items():
            batcher = Batcher(model, max_batch=self.config.resolved_max_batch(),
                              max_wait_ms=self.config.max_wait_ms)
            batcher.start()
            self.batchers[key] = batcher
            self.admission[key] = AdmissionCounter(self.config.max_queue)

    def stop(self) -> None:
        for batcher in self.batchers.values():
            batcher.stop()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    # --- what the app's handlers call -----------------------------------

    async def open(self) -> None:
        """Load the models (off the event loop) and start their batchers."""
        await run_in_threadpool(self.load)
        self.start()

    async def close(self) -> None:
        self.stop()

    def check(self, key: str) -> None:
        """Raise :class:`RequestError` unless ``key`` is served here; done
        before a body is read."""
        self.model_for(key)

    async def embed(self, key: str, datas: Sequence[bytes]
                    ) -> tuple[np.ndarray, dict[int, str]]:
        """Decode and embed images within the model's bounded queue.

        Returns ``N×D`` vectors (zero rows for failures) and the failed
        indices with reasons.

        Raises
        ------
        RequestError
            If the whole request is refused (unknown model, overload,
            stopping, model failure).
        """
        return await _embed_admitted(self, key, self.model_for(key), datas)

    async def catalogue(self) -> dict[str, Any]:
        """The device and the served models, as ``GET /models`` lists them."""
        models = []
        for entry in self.entries:
            spec = entry.spec
            model = self.models.get(spec.key)
            models.append({
                "key": spec.key, "label": spec.label,
                "input_size": spec.input_size,
                "dimension": model.dimension if model else spec.dimension,
                "channel_order": spec.channel_order,
                "preprocessing_version": spec.preprocessing_version,
                "available": model is not None,
                "reason": self.unavailable.get(spec.key),
                "engine": model.engine if model else None,
            })
        return {"device": self.device, "models": models}

    async def health(self) -> dict[str, Any]:
        """Models' readiness, queued and processed images (``GET
        /health``)."""
        return {
            "models": {entry.spec.key: "ready"
                       if entry.spec.key in self.models else "unavailable"
                       for entry in self.entries},
            "queued": {key: batcher.queued
                       for key, batcher in self.batchers.items()},
            "processed": {key: {"images": batcher.images_done,
                                "batches": batcher.batches_done}
                          for key, batcher in self.batchers.items()},
        }

    # --- per-request helpers --------------------------------------------

    def model_for(self, key: str) -> ServedModel:
        model = self.models.get(key)
        if model is not None:
            return model
        if key in self.unavailable:
            raise RequestError(503, "model_unavailable",
                               self.unavailable[key])
        known = ", ".join(entry.spec.key for entry in self.entries)
        raise RequestError(404, "unknown_model",
                           f"Unknown model {key!r}; this server has: {known}")

    def retry_after(self, key: str) -> int:
        batcher = self.batchers[key]
        rate = batcher.rate or 1.0
        return int(min(60, max(1, math.ceil(
            self.admission[key].count / rate))))

    async def prepare(self, model: ServedModel, datas: Sequence[bytes]
                      ) -> tuple[list, dict[int, str]]:
        """Decode images in the pool; returns items (None where failed) and
        the failures' reasons."""
        loop = asyncio.get_running_loop()
        n = len(datas)
        # one pool task per chunk: enough to use every thread, few enough
        # that scheduling costs little next to decoding
        chunk = max(1, math.ceil(n / self.threads))
        parts = await asyncio.gather(*(
            loop.run_in_executor(self.pool, _prepare_chunk, model,
                                 datas[start:start + chunk])
            for start in range(0, n, chunk)))
        items: list = []
        errors: dict[int, str] = {}
        for part in parts:
            for item, error in part:
                if error is not None:
                    errors[len(items)] = error
                items.append(item)
        return items, errors


def _prepare_chunk(model: ServedModel, datas: Sequence[bytes]
                   ) -> list[tuple[Any, str | None]]:
    out = []
    for data in datas:
        if not len(data):
            out.append((None, "empty image"))
            continue
        try:
            out.append((model.prepare(data), None))
        except images.ImageLoadError as error:
            out.append((None, error.reason))
        except Exception as error:
            log.debug("cannot decode an image", exc_info=True)
            out.append((None, f"cannot decode the image: {error}"))
    return out


async def _read_body(request: Request, limit: int, budget: AdmissionCounter,
                     held: list[int]) -> bytes:
    """Read the body, at most ``limit`` bytes; each chunk is taken from
    ``budget`` (and added to ``held[0]``, which the caller releases)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError(400, "bad_request",
                               "invalid Content-Length", skip=True)
        if int(length) > limit:
            raise RequestError(
                413, "too_large",
                f"the body has {int(length)} bytes; the limit is {limit}",
                skip=True)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise RequestError(413, "too_large",
                               f"the body exceeds the limit of {limit} bytes",
                               skip=True)
        if chunk:
            if not budget.try_acquire(len(chunk)):
                raise RequestError(
                    503, "overloaded",
                    "the server is busy receiving other requests; try again "
                    "later", headers={"Retry-After": "1"})
            held[0] += len(chunk)
            body += chunk
    return bytes(body)


async def _embed_items(state: ServerState, key: str, model: ServedModel,
                       datas: Sequence[bytes]
                       ) -> tuple[np.ndarray, dict[int, str]]:
    """Decode and embed; every image gets a row, failed ones a reason."""
    items, errors = await state.prepare(model, datas)
    good = [i for i, item in enumerate(items) if item is not None]
    vectors = np.zeros((len(datas), model.dimension), dtype=np.float32)
    if good:
        try:
            result, model_errors = await state.batchers[key].embed(
                [items[i] for i in good])
        except BatcherStopped as error:
            raise RequestError(503, "stopping", str(error),
                               headers={"Retry-After": "5"}) from error
        except ModelFailed as error:
            raise RequestError(500, "model_failed", str(error)) from error
        vectors[good] = result
        for row, reason in model_errors.items():
            errors[good[row]] = reason
        for row in np.flatnonzero(~np.isfinite(vectors).all(axis=1)):
            errors[int(row)] = "the model gave invalid values"
            vectors[row] = 0
    return vectors, errors


async def _embed_admitted(state: ServerState, key: str, model: ServedModel,
                          datas: Sequence[bytes]
                          ) -> tuple[np.ndarray, dict[int, str]]:
    """:func:`_embed_items` within the model's bounded queue.

    Admission comes after the body has been read, so a client that uploads
    slowly holds no place in the queue (its bytes count against
    ``state.buffered`` instead); it comes before decoding, so an overloaded
    server refuses work before spending CPU on it.
    """
    counter = state.admission[key]
    if not counter.try_acquire(len(datas)):
        raise RequestError(
            503, "overloaded", "the server is busy; try again later",
            headers={"Retry-After": str(state.retry_after(key))})
    try:
        return await _embed_items(state, key, model, datas)
    finally:
        counter.release(len(datas))


async def _admitted(request: Request, handler):
    """Body reading, timeout and error replies around a request handler."""
    state: ServerState = request.app.state.server
    key = request.path_params["model"]
    held = [0]   # bytes of the body taken from state.buffered

    async def run():
        state.check(key)
        body = await _read_body(request, state.config.max_body_bytes,
                                state.buffered, held)
        return await handler(state, key, body)

    try:
        return await asyncio.wait_for(run(), state.config.request_timeout)
    except RequestError as error:
        return error.response()
    except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 - 3.10
        return RequestError(
            504, "timeout",
            f"the request took longer than {state.config.request_timeout:g} s"
        ).response()
    finally:
        if held[0]:
            state.buffered.release(held[0])


async def orange_embed(request: Request) -> Response:
    """Orange's protocol: one image in, ``{"embedding": [...]}`` out."""
    async def handle(state: ServerState, key: str, data: bytes):
        if not data:
            raise RequestError(400, "empty", "the request has no image",
                               skip=True)
        vectors, errors = await state.embed(key, [data])
        if errors:
            raise RequestError(422, "bad_image", errors[0], skip=True)
        return Response(_dump_embedding(vectors[0]),
                        media_type="application/json")

    return await _admitted(request, handle)


async def batch_embed(request: Request) -> Response:
    """The batch protocol (:mod:`orangecontrib.imageanalytics.protocol`)."""
    dtype = request.query_params.get("dtype", "float32")
    if dtype not in protocol.DTYPES:
        return RequestError(
            400, "bad_request",
            f"dtype must be one of {', '.join(protocol.DTYPES)}").response()
    async def handle(state: ServerState, key: str, body: bytes):
        try:
            datas = protocol.decode_image_batch(
                body, max_images=state.config.max_images_per_request)
        except protocol.ProtocolError as error:
            raise RequestError(400, "bad_request", str(error)) from error
        vectors, errors = await state.embed(key, datas)
        return Response(
            protocol.encode_embeddings(vectors, errors, model=key,
                                       dtype=dtype),
            media_type=protocol.RESPONSE_TYPE)

    return await _admitted(request, handle)


async def list_models(request: Request) -> Response:
    state: ServerState = request.app.state.server
    config = state.config
    catalogue = await state.catalogue()
    return JSONResponse({
        "protocol_version": protocol.PROTOCOL_VERSION,
        "device": catalogue["device"],
        "protocols": {
            "orange": {"path": protocol.ORANGE_PATH},
            "batch": {
                "path": protocol.BATCH_PATH,
                "version": protocol.PROTOCOL_VERSION,
                "request_type": protocol.REQUEST_TYPE,
                "response_type": protocol.RESPONSE_TYPE,
                "dtypes": list(protocol.DTYPES),
                "max_images": config.max_images_per_request,
                "max_body_bytes": config.max_body_bytes,
            },
        },
        "limits": {"max_pixels": config.max_pixels,
                   "request_timeout": config.request_timeout},
        "models": catalogue["models"],
    })


async def health(request: Request) -> Response:
    state: ServerState = request.app.state.server
    return JSONResponse({"status": "ok", **await state.health()})


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    # no "embedding": Orange's client tries such an image again later
    return JSONResponse({"error": "internal server error", "code": "internal"},
                        status_code=500)


class ApiKeyMiddleware:
    """Require the API key on every path except ``/health``.

    Accepted as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; compared
    in constant time.
    """

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode("utf-8")

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                given = value.strip()
            elif name == b"authorization" \
                    and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
            else:
                continue
            if hmac.compare_digest(given, self._key):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health" \
                or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"error": "a valid API key is required (Authorization: Bearer "
                      "KEY or X-API-Key: KEY)", "code": "unauthorized"},
            status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def create_app(config: ServerConfig | None = None, *,
               backend: Any = None) -> Starlette:
    """Build the server application.

    Models are loaded (and warmed up) in the app's lifespan, so the server
    accepts connections only once they are ready.

    Parameters
    ----------
    config
        Server options; defaults for everything when omitted.
    backend
        What embeds the images; by default a :class:`ServerState` of
        ``config`` in this process.  Anything with the methods the handlers
        call (see :class:`ServerState`) will do: the HTTP front of a Ray
        Serve deployment passes one that hands the work to replicas.

    Raises
    ------
    orangecontrib.imageanalytics.server.config.ConfigError
        If the config names unknown models or its models file is invalid.
    """
    config = config or ServerConfig()
    # a ServerState validates the model list early
    state = backend if backend is not None else ServerState(config)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await state.open()
        app.state.server = state
        try:
            yield
        finally:
            await state.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/models", list_models, methods=["GET"]),
        Route("/image/{model}", orange_embed, methods=["POST"]),
        Route(protocol.BATCH_PATH, batch_embed, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={500: _server_error})
    if config.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=config.api_key)
    return app
