"""Dynamic batching: images of concurrent requests share forward passes.

Each model has one :class:`Batcher` with a dedicated inference thread.
Request handlers (on the event loop) submit their decoded images as a job and
await a future; the thread takes images from the queued jobs in arrival
order, up to ``max_batch`` per forward pass, waiting at most ``max_wait_ms``
after the oldest image arrived for more to come.  A job larger than a batch
is split over several; one batch mixes images of many jobs.

On a GPU a launched batch runs asynchronously: while the queue is full the
thread gathers and launches the next batch before collecting the previous
one, so copying images into pinned memory overlaps the forward pass.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orangecontrib.imageanalytics.server.served import Pending, ServedModel

__all__ = ["AdmissionCounter", "Batcher", "BatcherStopped", "ModelFailed"]

log = logging.getLogger(__name__)


class BatcherStopped(RuntimeError):
    """The server is shutting down."""


class ModelFailed(RuntimeError):
    """The forward pass raised; the message gives the cause."""


@dataclass
class _Job:
    items: Sequence[Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrival: float
    taken: int = 0
    remaining: int = 0
    out: np.ndarray | None = None
    errors: dict[int, str] = field(default_factory=dict)

    def dropped(self) -> bool:
        # read from the inference thread: a done future is never undone, so
        # a stale False only costs one wasted row
        return self.future.done()


def _resolve(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _notify(job: _Job, callback, value) -> None:
    """Hand a result to the job's event loop from the inference thread; a
    loop that has closed meanwhile has nobody waiting, and must not end the
    thread."""
    try:
        job.loop.call_soon_threadsafe(callback, job.future, value)
    except RuntimeError:
        log.debug("the loop of a job has closed", exc_info=True)


class Batcher:
    """Queue and inference thread of one model.

    Parameters
    ----------
    model
        The loaded model.
    max_batch
        Most images per forward pass (also bounded by ``model.max_batch``).
    max_wait_ms
        Longest time the oldest queued image waits for a fuller batch.
    """

    def __init__(self, model: ServedModel, *, max_batch: int,
                 max_wait_ms: float) -> None:
        self.model = model
        self.max_batch = max(1, min(max_batch, model.max_batch))
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"inference-{model.spec.key}", daemon=True)
        self.images_done = 0
        self.batches_done = 0
        # images per second of recent forward passes, for Retry-After
        self.rate: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is running, fail what is queued, end the thread."""
        with self._cond:
            self._stopping = True
            jobs = list(self._jobs)
            self._jobs.clear()
            self._queued = 0
            self._cond.notify_all()
        for job in jobs:
            _notify(job, _reject, BatcherStopped("the server is stopping"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        """Images waiting for a forward pass."""
        return self._queued

    async def embed(self, items: Sequence[Any]
                    ) -> tuple[np.ndarray, dict[int, str]]:
        """Embed prepared images; returns ``N×D`` vectors (zero rows for
        failures) and the failed indices with reasons.

        Raises
        ------
        BatcherStopped
            If the server is stopping.
        ModelFailed
            If the forward pass raised.
        """
        loop = asyncio.get_running_loop()
        job = _Job(items, loop.create_future(), loop, time.monotonic(),
                   remaining=len(items))
        if not items:
            return np.zeros((0, self.model.dimension), np.float32), {}
        with self._cond:
            if self._stopping:
                raise BatcherStopped("the server is stopping")
            self._jobs.append(job)
            self._queued += len(items)
            self._cond.notify()
        return await job.future

    # --- the inference thread -------------------------------------------

    def _take(self) -> list[tuple[_Job, int, int]]:
        """Pop up to max_batch images off the queue (lock held)."""
        slices = []
        room = self.max_batch
        while self._jobs and room:
            job = self._jobs[0]
            left = len(job.items) - job.taken
            if job.dropped():
                self._jobs.popleft()
                self._queued -= left
                continue
            count = min(left, room)
            slices.append((job, job.taken, job.taken + count))
            job.taken += count
            room -= count
            self._queued -= count
            if job.taken == len(job.items):
                self._jobs.popleft()
        return slices

    def _wait_for_batch(self, busy: bool) -> list[tuple[_Job, int, int]]:
        """Block until a batch should be launched; [] to collect the batch
        in flight first, or when stopping."""
        with self._cond:
            if busy:
                # launch ahead only with a full batch; otherwise the running
                # batch finishes first and more images gather meanwhile
                return self._take() if self._queued >= self.max_batch else []
            while not self._jobs and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return []
            deadline = self._jobs[0].arrival + self.max_wait
            while self._queued < self.max_batch and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take()

    def _run(self) -> None:
        in_flight: tuple[list, Pending, float] | None = None
        while True:
            slices = self._wait_for_batch(busy=in_flight is not None)
            launched = None
            if slices:
                items = [job.items[i] for job, start, stop in slices
                         for i in range(start, stop)]
                started = time.perf_counter()
                try:
                    launched = (slices, self.model.launch(items), started)
                except Exception as error:
                    log.exception("forward pass of %s failed",
                                  self.model.spec.key)
                    self._fail(slices, error)
            if in_flight is not None:
                try:
                    self._finish(*in_flight)
                except Exception as error:
                    # whatever went wrong fails these jobs only: the thread
                    # must live on, or every later request would hang
                    log.exception("collecting a batch of %s failed",
                                  self.model.spec.key)
                    self._fail(in_flight[0], error)
            in_flight = launched
            if in_flight is None and self._stopping:
                return

    def _fail(self, slices, error: BaseException) -> None:
        failure = ModelFailed(f"the model failed: {error}")
        for job, _, _ in slices:
            _notify(job, _reject, failure)

    def _finish(self, slices, pending: Pending, started: float) -> None:
        try:
            vectors, errors = pending.result()
        except Exception as error:
            log.exception("forward pass of %s failed", self.model.spec.key)
            self._fail(slices, error)
            return
        rows = sum(stop - start for _, start, stop in slices)
        if vectors.ndim != 2 or len(vectors) != rows:
            raise ModelFailed(
                f"the model returned an output of shape {vectors.shape} for "
                f"{rows} images")
        elapsed = time.perf_counter() - started
        count = len(vectors)
        if elapsed > 0 and count:
            rate = count / elapsed
            self.rate = rate if self.rate is None else \
                0.8 * self.rate + 0.2 * rate
        self.images_done += count
        self.batches_done += 1
        row = 0
        for job, start, stop in slices:
            if job.out is None:
                job.out = np.zeros((len(job.items), vectors.shape[1]),
                                   dtype=np.float32)
            job.out[start:stop] = vectors[row:row + stop - start]
            for index in range(start, stop):
                reason = errors.get(row + index - start)
                if reason is not None:
                    job.errors[index] = reason
            row += stop - start
            job.remaining -= stop - start
            if job.remaining == 0:
                _notify(job, _resolve, (job.out, job.errors))


class AdmissionCounter:
    """Images admitted for one model (decoding, queued or in the model).

    Checked before a request's body is decoded, so an overloaded server
    refuses work before spending CPU on it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def try_acquire(self, n: int) -> bool:
        with self._lock:
            # a single request larger than the limit is still admitted when
            # nothing else runs, so it is not refused forever
            if self._count and self._count + n > self.limit:
                return False
            self._count += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self._count -= n
