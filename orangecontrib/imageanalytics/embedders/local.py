"""The local embedding pipeline: decode in worker threads, infer in batches.

For each image the pipeline reads the file, hashes its bytes and looks the
vector up in the cache *before* decoding anything.  Images not in the cache
are decoded (JPEG draft scaling first) and resized in a thread pool while
model threads run full batches, one single-threaded forward pass per core;
Pillow, hashlib and the model engines release the GIL, so every core stays
busy.  Vectors go to the cache batch by batch, as they are computed, so a
killed or cancelled run keeps everything it finished.

Memory is bounded: at most a fixed window of images (a few batches) is
decoded or in flight at any time, whatever the number of images.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import replace

import numpy as np

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.cache import (
    EmbeddingCache,
    cache_key,
)
from orangecontrib.imageanalytics.embedders.engines import EngineChoice
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingError,
)
from orangecontrib.imageanalytics.embedders.inputs import prepare_input
from orangecontrib.imageanalytics.embedders.preprocess import to_model_input
from orangecontrib.imageanalytics.embedders.registry import (
    EmbedderSpec,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.run_state import (
    EmbedOutcome,
    Prepared,
    RunState,
    prepare_source,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EmbedOutcome",
    "LocalEmbedder",
    "available_cores",
]

#: Images per forward pass.  Larger batches gain nothing on a CPU (measured
#: 8 to 32) and delay results, commits and cancellation.
DEFAULT_BATCH_SIZE = 8
# how often the calling thread looks at should_stop while it waits (seconds)
_POLL = 0.05

Runner = Callable[[np.ndarray], np.ndarray]


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LocalEmbedder:
    """Embed images on this computer with a local model.

    Parameters
    ----------
    spec
        The embedder, as a spec or a key of the registry; it must be local.
    cache
        Where to look vectors up and store them; ``None`` for no cache.
    exact
        Decode every pixel and resize with plain LANCZOS (slower); by
        default JPEGs are decoded at a reduced DCT scale first.
    threads
        CPU threads to use for decoding and for the model; by default every
        core this process may use.
    batch_size
        Images per forward pass.
    engine
        Model engine for :func:`engines.get_runner` ("auto", "onnx",
        "onnx-int8", "torch").
    runner
        A callable that maps a float32 ``N×3×H×W`` batch to ``N×D`` vectors,
        used instead of :func:`engines.get_runner` (custom models, tests).
    max_pixels
        Refuse images with more pixels (decompression bombs).
    decode_threads
        Threads that read and decode images; by default ``threads``.
    model_threads
        Threads inside one forward pass (the engine's intra-op threads).
    model_workers
        Batches run through the model at the same time; by default
        ``threads``, each pass on one thread.
    """

    def __init__(self, spec: EmbedderSpec | str, *,
                 cache: EmbeddingCache | None = None, exact: bool = False,
                 threads: int | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, engine: str = "auto",
                 runner: Runner | None = None,
                 max_pixels: int | None = None,
                 decode_threads: int | None = None,
                 model_threads: int | None = None,
                 model_workers: int | None = None):
        if isinstance(spec, str):
            spec = get_embedder(spec)
        if not spec.local and runner is None:
            raise EmbedderUnavailable(
                f"{spec.label} runs on an embedding server, not locally")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.spec = spec
        self.cache = cache
        self.exact = exact
        self.threads = max(1, threads or available_cores())
        self.decode_threads = max(1, decode_threads or self.threads)
        # several single-threaded forward passes at once beat one pass on
        # all cores: no synchronisation inside the model, and decoding
        # threads fill the gaps (measured on 2 cores: ~10 % more images/s,
        # ~10 % less CPU per image, and far steadier on a busy machine)
        self.model_workers = max(1, model_workers or self.threads)
        self.model_threads = max(1, model_threads or max(
            1, self.threads // self.model_workers))
        self.batch_size = batch_size
        self.engine = engine
        #: the engine that runs (see :func:`engines.choose_engine`) and why;
        #: known once :meth:`embed` has been called
        self.engine_choice: EngineChoice | None = None
        self._cache_spec = spec
        self.max_pixels = max_pixels
        self._runner = runner
        self._runner_lock = threading.Lock()
        self._runner_loading: Future | None = None

    # --- model ----------------------------------------------------------
    def _runner_future(self) -> Future:
        """The runner, loading in a background thread on first use.

        Loading (and on first use, converting) a model takes seconds; in the
        background it overlaps with decoding, and a cancel is not held up.
        """
        with self._runner_lock:
            future = self._runner_loading
            if future is not None and future.done() \
                    and future.exception() is not None:
                future = None   # a failed load is retried on the next call
            if future is None:
                future = self._runner_loading = Future()
                if self._runner is not None:
                    future.set_result(self._runner)
                else:
                    threading.Thread(target=self._load_runner, args=(future,),
                                     name="embed-load-model",
                                     daemon=True).start()
            return future

    def _load_runner(self, future: Future) -> None:
        try:
            runner = engines.get_runner(
                self.spec, engine=self.engine_choice.engine,
                threads=self.model_threads)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            future.set_exception(exc)
        else:
            future.set_result(runner)

    def _infer(self, runner: Runner, pixels: list[np.ndarray]) -> np.ndarray:
        batch = to_model_input(np.stack(pixels), self.spec)
        try:
            vectors = runner(batch)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(
                f"{self.spec.label} failed on a batch of images: {exc}"
            ) from exc
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[0] != len(pixels):
            raise EmbeddingError(
                f"{self.spec.label} returned {vectors.shape[0]} vectors "
                f"for {len(pixels)} images")
        return vectors

    def _embed_batch(self, runner: Runner, keys: list[str],
                     pixels: list[np.ndarray]
                     ) -> tuple[list[str], list[np.ndarray | None]]:
        """Run the model on a batch and commit its vectors to the cache."""
        vectors = self._infer(runner, pixels)
        del pixels
        finite = np.isfinite(vectors).all(axis=1)
        # copies: a vector must not keep its whole batch array alive
        results = [vector.copy() if ok else None
                   for vector, ok in zip(vectors, finite)]
        # commit per batch: a killed process loses at most the batches
        # in the model at that moment
        if self.cache is not None:
            self.cache.put_many({key: vector for key, vector
                                 in zip(keys, results) if vector is not None})
        return keys, results

    # --- worker side ----------------------------------------------------
    def _prepare(self, index: int, source: str | None,
                 stop: threading.Event) -> Prepared:
        """Read, hash, look up, and (on a miss) decode one image; the
        payload is the decoded and resized pixels."""
        return prepare_source(
            index, source, stop, cache=self.cache,
            key_of=lambda digest: cache_key(digest, self._cache_spec,
                                            exact=self.exact),
            make=lambda data: prepare_input(
                data, self.spec, exact=self.exact,
                max_pixels=self.max_pixels),
            dimension=self.spec.dimension)

    # --- calling thread ---------------------------------------------------
    def embed(self, sources: Sequence[str | None], *,
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None
              ) -> list[EmbedOutcome]:
        """Embed images given by paths or URLs.

        Parameters
        ----------
        sources
            Paths or URLs (``None`` or ``""`` gives a failed outcome).
        progress
            Called as ``progress(done, total)`` from the calling thread.
        should_stop
            Polled from the calling thread; when it returns true, the run
            stops within a fraction of a second.

        Returns
        -------
        list of EmbedOutcome
            One per source, in order: a float32 vector, or the reason why
            the image could not be embedded.

        Raises
        ------
        EmbeddingCancelled
            When ``should_stop`` turned true; vectors computed so far are in
            the cache.
        EmbedderUnavailable
            If the model cannot be loaded here.
        EmbeddingError
            If the model fails.
        """
        sources = list(sources)
        self._choose_engine(len(sources))
        return _Run(self, sources, progress, should_stop).run()

    def _choose_engine(self, images: int) -> None:
        """Settle the engine before the first cache look-up: the INT8
        model's vectors differ a little from the float model's, so they are
        cached under their own key."""
        if self._runner is not None:
            self.engine_choice = EngineChoice("custom")
            return
        if self.engine_choice is None or (
                self.engine_choice.engine == "onnx"
                and images >= engines.AUTO_MEASURE_MIN_IMAGES):
            try:
                self.engine_choice = engines.choose_engine(
                    self.spec, self.engine, threads=self.model_threads,
                    measure=images >= engines.AUTO_MEASURE_MIN_IMAGES)
            except EmbedderUnavailable:
                if self.engine == "onnx-int8":
                    raise
                # cached vectors are still returned; the model's loader
                # reports what is missing if one has to be computed
                self.engine_choice = EngineChoice(self.engine)
        self._cache_spec = replace(self.spec, key=f"{self.spec.key}+int8") \
            if self.engine_choice.engine == "onnx-int8" else self.spec


class _Run(RunState):
    """State of one :meth:`LocalEmbedder.embed` call."""

    def __init__(self, embedder: LocalEmbedder, sources: list,
                 progress, should_stop):
        super().__init__(sources, progress, should_stop)
        self.embedder = embedder
        # images decoded and waiting for the model, unique by cache key
        self.batch_keys: list[str] = []
        self.batch_pixels: list[np.ndarray] = []

    def accept(self, prepared: Prepared) -> bool:
        first = not self.computed and not self.waiting
        if not super().accept(prepared):
            return False
        if first:
            # the first image to embed: start loading the model
            self.embedder._runner_future()
        self.batch_keys.append(prepared.key)
        self.batch_pixels.append(prepared.payload)
        return True

    def runner(self) -> Runner:
        future = self.embedder._runner_future()
        while True:
            self.check_stop()
            try:
                return future.result(timeout=_POLL)
            except FuturesTimeout:
                continue

    def take_batch(self) -> tuple[list[str], list[np.ndarray]]:
        batch = self.batch_keys, self.batch_pixels
        self.batch_keys, self.batch_pixels = [], []
        return batch

    def complete(self, keys: list[str],
                 vectors: list[np.ndarray | None]) -> None:
        for key, vector in zip(keys, vectors):
            self.settle(key, vector, "the model gave invalid values")

    def run(self) -> list[EmbedOutcome]:
        embedder = self.embedder
        batch_size = embedder.batch_size
        workers = embedder.decode_threads
        model_workers = embedder.model_workers
        # images in flight (queued, decoding, decoded and waiting, in the
        # model): enough for the workers to fill the next batch while the
        # model runs the current ones, and no more
        window = (model_workers + 1) * batch_size + 2 * workers
        decoding: set[Future] = set()
        inferring: dict[Future, int] = {}   # -> batch size
        next_index = 0
        self.check_stop()
        self.report(force=True)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="embed-decode")
        model_pool = ThreadPoolExecutor(
            model_workers, thread_name_prefix="embed-model") \
            if model_workers > 1 else None
        try:
            while self.done < self.total:
                self.check_stop()
                in_flight = len(decoding) + len(self.batch_pixels) \
                    + sum(inferring.values())
                while next_index < self.total and in_flight < window:
                    decoding.add(pool.submit(
                        embedder._prepare, next_index,
                        self.sources[next_index], self.stop))
                    next_index += 1
                    in_flight += 1
                if (len(self.batch_pixels) >= batch_size
                        or (self.batch_pixels and not decoding)) \
                        and len(inferring) < model_workers:
                    runner = self.runner()
                    keys, pixels = self.take_batch()
                    if model_pool is None:
                        self.complete(*embedder._embed_batch(
                            runner, keys, pixels))
                        self.report()
                    else:
                        inferring[model_pool.submit(
                            embedder._embed_batch, runner, keys,
                            pixels)] = len(keys)
                    continue
                finished, _ = wait([*decoding, *inferring], timeout=_POLL,
                                   return_when=FIRST_COMPLETED)
                for future in finished:
                    if future in inferring:
                        del inferring[future]
                        self.complete(*future.result())
                    else:
                        decoding.discard(future)
                        self.accept(future.result())
                self.report()
        finally:
            self.stop.set()
            # queued tasks are dropped; running ones end on their own (a
            # batch in the model still commits its vectors to the cache)
            pool.shutdown(wait=False, cancel_futures=True)
            if model_pool is not None:
                model_pool.shutdown(wait=False, cancel_futures=True)
        self.report(force=True)
        return self.outcomes
