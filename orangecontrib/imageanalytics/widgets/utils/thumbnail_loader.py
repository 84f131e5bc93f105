"""Load thumbnails in worker threads for views that show many images.

:class:`ThumbnailLoader` serves the most recently requested thumbnails first
(those the user looks at now), drops requests that left the view
(:meth:`ThumbnailLoader.retain_only`), keeps finished thumbnails in a memory
cache bounded in bytes, and tells the GUI thread through a signal. The GUI
thread never reads a file or decodes: worker threads call
:func:`~orangecontrib.imageanalytics.thumbnails.make_thumbnail` and turn its
image into a ``QImage``.
"""

from __future__ import annotations

import heapq
import itertools
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from AnyQt.QtCore import QObject, Qt
from AnyQt.QtCore import pyqtSignal as Signal
from AnyQt.QtCore import pyqtSlot as Slot
from AnyQt.QtGui import QImage
from PIL import Image

from orangecontrib.imageanalytics import thumbnails
from orangecontrib.imageanalytics.thumbnails import bucket_for, make_thumbnail

__all__ = ["ThumbnailLoader", "display_image", "pil_to_qimage"]

def pil_to_qimage(image: Image.Image) -> QImage:
    """A QImage that owns a copy of the pixels, in the screen's format: 32-bit
    (premultiplied when transparent), which the raster painter copies without
    converting. QImage is safe to make in worker threads."""
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if image.mode != "RGBA":
        image = image.convert("RGBA")
    raw = "BGRA" if sys.byteorder == "little" else "ARGB"
    data = image.tobytes("raw", raw)
    width, height = image.size
    qimage = QImage(data, width, height, 4 * width,
                    QImage.Format_ARGB32 if alpha else QImage.Format_RGB32)
    if alpha:
        return qimage.convertToFormat(QImage.Format_ARGB32_Premultiplied)
    return qimage.copy()  # own the pixels: ``data`` goes away


def display_image(image: Image.Image, size: int, cover: bool = False) -> QImage:
    """``image`` scaled to be shown at ``size``, as :func:`pil_to_qimage`.

    The result fits in a ``size`` square (``cover``: fills it, the short side
    is ``size``) and is never enlarged: a view paints a screenful of them in
    about a millisecond, with no scaling or conversion.
    """
    w, h = image.size
    if w and h:
        scale = (max if cover else min)(size / w, size / h)
        if scale < 1:
            new = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = image.resize(new, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return pil_to_qimage(image)


#: How much nicer than the GUI thread the workers are (Linux only).
_WORKER_NICENESS = 5


def _lower_thread_priority() -> None:
    """Make the calling thread yield the CPU to the GUI thread.

    When the cores are busy (other programs, several views loading) the
    scheduler then runs the GUI thread first, so painting and input do not
    wait behind decoding. Linux applies a niceness to a single thread; other
    systems apply it to the whole process, so nothing is done there.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid,
                       min(19, os.getpriority(os.PRIO_PROCESS, tid) + _WORKER_NICENESS))
    except (AttributeError, OSError):
        pass


class _Request:
    __slots__ = ("source", "shape", "seq")

    def __init__(self, source, shape, seq):
        self.source = source
        self.shape = shape  # (size, cover)
        self.seq = seq


class ThumbnailLoader(QObject):
    """Thumbnails for a view, loaded in a bounded pool of worker threads.

    Parameters
    ----------
    parent : QObject, optional
    max_workers : int, optional
        Worker threads; by default the number of cores (2..8).
    memory_bytes : int
        Bound on the decoded thumbnails kept in memory.
    cache : ThumbnailCache or None
        The disk cache (default: the user's); None for none.
    """

    #: Emitted on the GUI thread with a request's key when its image or its
    #: failure is known.
    thumbnailReady = Signal(object)

    # worker → GUI thread (queued)
    _finished = Signal()

    def __init__(self, parent=None, *, max_workers: int | None = None,
                 memory_bytes: int = 256 * 2**20,
                 cache: thumbnails.ThumbnailCache | None = thumbnails.DEFAULT_CACHE):
        super().__init__(parent)
        if max_workers is None:
            # one worker per core: with one core left free for the GUI thread
            # a scroll through 50,000 rows stalls less (102 ms against 124 ms)
            # but the first screen of camera photos takes twice as long (3.1 s)
            max_workers = max(1, min(8, os.cpu_count() or 2))
        self.max_workers = max_workers
        self.memory_bytes = memory_bytes
        self.cache = cache
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._generation = 0
        self._requests: dict[Hashable, _Request] = {}   # pending keys
        self._heap: list[tuple[int, int, Hashable]] = []  # (-seq, tie, key)
        self._tie = itertools.count()
        self._waiting: dict[tuple, set] = {}   # (source, shape) → pending keys
        self._running: set[tuple] = set()      # jobs in the workers
        # memory cache: source → {(size, cover): QImage}, least recent first
        self._images: OrderedDict = OrderedDict()
        self._bytes = 0
        self._failures: dict = {}              # source → reason
        self._key_source: dict[Hashable, tuple] = {}
        self._stopping = False
        self._paused = False
        self._threads: list[threading.Thread] = []
        # finished jobs wait here for the GUI thread, which takes all of
        # them in one call (one queued event per batch, not per thumbnail)
        self._done: list[tuple] = []
        self._finished.connect(self._on_finished, Qt.QueuedConnection)
        # The interpreter's switch interval is left as it is: lowering it
        # for the whole process (every widget's threads) made no difference
        # that bench_viewer.py could measure (benchmarks/README.md).

    # ------------------------------------------------------------ public

    def request(self, key: Hashable, value: str | None, origin: str | None,
                size: int, *, cover: bool = False) -> QImage | None:
        """The thumbnail for ``key`` shown at ``size`` if it is in memory,
        else queue it.

        The image fits in a ``size`` square (``cover``: fills it), is never
        enlarged and is ready to be painted without scaling. Returns it at
        once if it is in memory, None if it failed (see :meth:`error`) or is
        being made; then ``thumbnailReady(key)`` follows when it is known.
        :meth:`cached` gives another size of the same image meanwhile.
        """
        source = (value, origin)
        shape = (size, cover)
        self._key_source[key] = source
        if source in self._failures:
            self._drop_pending(key)
            return None
        image = self._cached(source, shape)
        if image is not None:
            self._drop_pending(key)
            return image
        with self._cond:
            old = self._requests.get(key)
            if old is not None and (old.source != source or old.shape != shape):
                self._unwait(key, old)
            request = _Request(source, shape, next(self._seq))
            self._requests[key] = request
            self._waiting.setdefault((source, shape), set()).add(key)
            heapq.heappush(self._heap, (-request.seq, next(self._tie), key))
            # views ask again on every paint: keep stale entries from piling up
            if len(self._heap) > 4 * len(self._requests) + 256:
                self._compact()
            self._ensure_workers()
            self._cond.notify()
        return None

    def cached(self, key: Hashable, size: int, *, cover: bool = False) -> QImage | None:
        """The thumbnail in memory for ``key`` at ``size``, else the largest
        other one of the same image (to be scaled meanwhile), else None;
        queues nothing."""
        source = self._key_source.get(key)
        if source is None:
            return None
        image = self._cached(source, (size, cover))
        if image is None:
            shapes = self._images.get(source)
            if shapes:
                image = shapes[max(shapes)]
        return image

    def error(self, key: Hashable) -> str | None:
        """Why the thumbnail for ``key`` failed, or None."""
        source = self._key_source.get(key)
        return self._failures.get(source) if source is not None else None

    def is_pending(self, key: Hashable) -> bool:
        """Whether ``key`` was requested and is not known yet."""
        with self._cond:
            return key in self._requests

    def retain_only(self, keys: Iterable[Hashable]) -> None:
        """Drop queued requests whose key is not among ``keys``."""
        keep = set(keys)
        with self._cond:
            for key in [k for k in self._requests if k not in keep]:
                self._unwait(key, self._requests.pop(key))
            self._compact()

    def _compact(self) -> None:
        # under the lock: one heap entry per pending key, its latest
        self._heap = [(-request.seq, next(self._tie), key)
                      for key, request in self._requests.items()]
        heapq.heapify(self._heap)

    def clear(self) -> None:
        """Forget everything (new data): queue, keys, memory cache."""
        with self._cond:
            self._generation += 1
            self._requests.clear()
            self._heap.clear()
            self._waiting.clear()
            self._running.clear()
            self._done.clear()
        self._images.clear()
        self._bytes = 0
        self._failures.clear()
        self._key_source.clear()

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the workers (they finish the image they are decoding)."""
        with self._cond:
            self._stopping = True
            self._requests.clear()
            self._heap.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout / max(1, len(self._threads)))
        self._threads.clear()

    def set_paused(self, paused: bool) -> None:
        """Whether workers start new jobs (those running finish).

        Views pause while the user flings through them: thumbnails of rows
        that fly past in a fraction of a second are not worth making, and
        the workers then leave the cores and the interpreter to the GUI
        thread, which paints the scroll.
        """
        with self._cond:
            self._paused = bool(paused)
            if not self._paused:
                self._cond.notify_all()

    def is_paused(self) -> bool:
        return self._paused

    def memory_used(self) -> int:
        """Bytes of decoded thumbnails in memory."""
        return self._bytes

    def pending_count(self) -> int:
        with self._cond:
            return len(self._requests)

    # ------------------------------------------------------------ internals

    def _cached(self, source, shape) -> QImage | None:
        shapes = self._images.get(source)
        if not shapes:
            return None
        image = shapes.get(shape)
        if image is None:
            return None
        self._images.move_to_end(source)
        return image

    def _drop_pending(self, key) -> None:
        with self._cond:
            request = self._requests.pop(key, None)
            if request is not None:
                self._unwait(key, request)

    def _unwait(self, key, request) -> None:
        job = (request.source, request.shape)
        keys = self._waiting.get(job)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._waiting[job]

    def _ensure_workers(self) -> None:
        # called under the lock; threads start lazily, as work arrives
        if self._stopping or len(self._threads) >= self.max_workers:
            return
        wanted = min(self.max_workers, len(self._requests) + len(self._running))
        while len(self._threads) < wanted:
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"thumbnails-{len(self._threads)}")
            self._threads.append(thread)
            thread.start()

    def _next_job(self):
        # under the lock: the most recent request whose job is not running
        while self._heap:
            _, _, key = heapq.heappop(self._heap)
            request = self._requests.get(key)
            if request is None:
                continue
            job = (request.source, request.shape)
            if job in self._running:
                continue  # it will be told when that job ends
            return job
        return None

    def _work(self) -> None:
        _lower_thread_priority()
        while True:
            with self._cond:
                job = None
                while not self._stopping:
                    job = None if self._paused else self._next_job()
                    if job is not None:
                        break
                    self._cond.wait()
                if self._stopping:
                    return
                self._running.add(job)
                generation = self._generation
            (value, origin), (size, cover) = job
            result = make_thumbnail(value, bucket_for(size), origin=origin,
                                    cache=self.cache)
            image = display_image(result.image, size, cover) \
                if result.image is not None else None
            # the job stays "running" until the GUI thread has taken its
            # result: until then its keys are pending and must not start it again
            with self._cond:
                if self._stopping:
                    return
                self._done.append((generation, job, image, result.error))
                first = len(self._done) == 1
            if first:
                try:
                    self._finished.emit()
                except RuntimeError:  # the loader was deleted meanwhile
                    return

    @Slot()
    def _on_finished(self) -> None:
        ready = []
        with self._cond:
            done, self._done = self._done, []
            for generation, job, image, error in done:
                if generation != self._generation:
                    continue
                self._running.discard(job)
                keys = self._waiting.pop(job, set())
                for key in keys:
                    self._requests.pop(key, None)
                ready.append((job, image, error, keys))
        for (source, shape), image, error, _keys in ready:
            if image is None:
                self._failures[source] = error or "cannot be shown"
            else:
                self._store(source, shape, image)
        for *_, keys in ready:
            for key in keys:
                self.thumbnailReady.emit(key)

    def _store(self, source, shape, image: QImage) -> None:
        shapes = self._images.setdefault(source, {})
        old = shapes.get(shape)
        if old is not None:
            self._bytes -= old.sizeInBytes()
        # other sizes of the same image were interim at most
        for other in [s for s in shapes if s != shape]:
            self._bytes -= shapes.pop(other).sizeInBytes()
        shapes[shape] = image
        self._bytes += image.sizeInBytes()
        self._images.move_to_end(source)
        while self._bytes > self.memory_bytes and len(self._images) > 1:
            _, evicted = self._images.popitem(last=False)
            self._bytes -= sum(im.sizeInBytes() for im in evicted.values())
