"""Average colours of a grid's images, made in worker threads.

The overview of a large grid shows each image as its average colour. The
colour comes from the same small thumbnail the grid shows when zoomed in
(:func:`~orangecontrib.imageanalytics.thumbnails.make_thumbnail` at the
smallest size, through the disk cache), so computing it also warms the cache
for the first zoom, and a second run reads 64-pixel thumbnails instead of
photos. Colours are kept in memory by image as well, for the next data with
the same photos (another embedding, a subset).

Images are taken in a shuffled order, so the whole overview fills in evenly
rather than from the top; rows the view shows are taken first
(:meth:`GridColors.prefer`). The GUI thread only receives batches of
finished colours (one queued signal per batch) and never decodes.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
from AnyQt.QtCore import QObject, Qt
from AnyQt.QtCore import pyqtSignal as Signal
from AnyQt.QtCore import pyqtSlot as Slot
from PIL import Image

from orangecontrib.imageanalytics import thumbnails
from orangecontrib.imageanalytics.thumbnails import SIZE_BUCKETS, make_thumbnail
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import (
    _lower_thread_priority,
)

__all__ = ["GridColors", "average_color"]

#: Colours go to the GUI thread in batches of at most this many rows, or
#: after this many seconds, whichever comes first.
BATCH_ROWS, BATCH_SECONDS = 2000, 0.25
#: The GUI thread takes at most this many finished rows at a time (images
#: that fail at once come faster than it paints); the rest in a later event.
TAKE_ROWS = 4000


def average_color(image: Image.Image) -> tuple[int, int, int]:
    """The mean colour of ``image`` (transparent parts over white)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    pixel = image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


class GridColors(QObject):
    """Each data row's average colour, computed in the background.

    After :meth:`start`, ``colors[i]`` (uint8 RGB) is row i's colour when
    ``state[i]`` is 1; -1 means the image cannot be shown, 0 not known yet.
    ``colorsReady`` is emitted on the GUI thread after each batch.
    """
    colorsReady = Signal()
    _finished = Signal()

    def __init__(self, parent=None, *, max_workers: int | None = None,
                 cache: thumbnails.ThumbnailCache | None = thumbnails.DEFAULT_CACHE):
        super().__init__(parent)
        self.max_workers = max_workers or max(1, min(4, os.cpu_count() or 2))
        self.cache = cache
        self.colors = np.zeros((0, 3), dtype=np.uint8)
        self.state = np.zeros(0, dtype=np.int8)
        self._memory: dict[tuple, int] = {}  # (value, origin) → packed RGB, -1 failed
        self._reasons: dict[tuple, str] = {}  # (value, origin) → why it failed
        self._cond = threading.Condition()
        self._generation = 0
        self._values: Sequence = ()
        self._origin = None
        self._order: deque = deque()
        self._urgent: deque = deque()
        self._taken = np.zeros(0, dtype=bool)
        self._done: list = []
        #: rows whose colour became known since :meth:`take_changed`
        self._changed: list = []
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._finished.connect(self._on_finished, Qt.QueuedConnection)

    def start(self, values: Sequence, origin: str | None, seed: int = 0) -> None:
        """Colours of the images ``values`` (row i's image is ``values[i]``);
        those known from earlier data are there at once."""
        n = len(values)
        colors = np.zeros((n, 3), dtype=np.uint8)
        state = np.zeros(n, dtype=np.int8)
        memory = self._memory
        for i, value in enumerate(values if memory else ()):
            packed = memory.get((value, origin))
            if packed is not None:
                if packed < 0:
                    state[i] = -1
                else:
                    colors[i] = (packed >> 16, (packed >> 8) & 255, packed & 255)
                    state[i] = 1
        order = np.random.default_rng(seed).permutation(np.flatnonzero(state == 0))
        with self._cond:
            self._generation += 1
            self.colors, self.state = colors, state
            self._values, self._origin = values, origin
            self._taken = state != 0
            self._order = deque(order.tolist())
            self._urgent.clear()
            self._done.clear()
            self._changed = [np.arange(n)]
            self._ensure_workers()
            self._cond.notify_all()
        self.colorsReady.emit()

    def prefer(self, rows) -> None:
        """Take these rows (those in view) before the others."""
        rows = np.asarray(rows, dtype=np.int64)
        with self._cond:
            if not len(self._taken):
                return
            rows = rows[(rows >= 0) & (rows < len(self._taken))]
            rows = rows[~self._taken[rows]]
            self._urgent = deque(rows.tolist())
            if len(rows):
                self._cond.notify_all()

    def clear(self) -> None:
        """Stop the work for the current data (the memory of colours stays)."""
        with self._cond:
            self._generation += 1
            self._order.clear()
            self._urgent.clear()
            self._done.clear()
            self._values = ()
            self._taken = np.zeros(0, dtype=bool)
        self.colors = np.zeros((0, 3), dtype=np.uint8)
        self.state = np.zeros(0, dtype=np.int8)

    def error(self, row: int) -> str | None:
        """Why row ``row``'s image cannot be shown, once its colour failed."""
        if not 0 <= row < len(self.state) or self.state[row] >= 0:
            return None
        return self._reasons.get((self._values[row], self._origin))

    def pending(self) -> int:
        """How many rows' colours are not known yet."""
        return int((self.state == 0).sum())

    def shutdown(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._order.clear()
            self._urgent.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout / max(1, len(self._threads)))
        self._threads.clear()

    # ------------------------------------------------------------ internals
    def _ensure_workers(self) -> None:
        while not self._stopping and len(self._threads) < self.max_workers:
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"grid-colors-{len(self._threads)}")
            self._threads.append(thread)
            thread.start()

    def _next(self):
        # under the lock: an urgent row first, then the shuffled order
        for queue in (self._urgent, self._order):
            while queue:
                row = queue.popleft()
                if not self._taken[row]:
                    self._taken[row] = True
                    return row
        return None

    def _work(self) -> None:
        _lower_thread_priority()
        batch, since = [], time.monotonic()
        while True:
            with self._cond:
                row = None
                while not self._stopping:
                    row = self._next()
                    if row is not None or batch:
                        break
                    self._cond.wait()
                if self._stopping:
                    return
                generation = self._generation
                value = self._values[row] if row is not None else None
                origin = self._origin
            if row is not None:
                result = make_thumbnail(value, SIZE_BUCKETS[0], origin=origin,
                                        cache=self.cache)
                color = average_color(result.image) if result.image is not None else None
                batch.append((generation, row, (value, origin), color,
                              result.error or "cannot be shown"))
            if batch and (row is None or len(batch) >= BATCH_ROWS
                          or time.monotonic() - since > BATCH_SECONDS):
                with self._cond:
                    if self._stopping:
                        return
                    self._done.extend(batch)
                    first = len(self._done) == len(batch)
                batch, since = [], time.monotonic()
                if first:
                    try:
                        self._finished.emit()
                    except RuntimeError:  # deleted meanwhile
                        return

    @Slot()
    def _on_finished(self) -> None:
        with self._cond:
            done, self._done = self._done[:TAKE_ROWS], self._done[TAKE_ROWS:]
            generation = self._generation
            if self._done:
                self._finished.emit()
        rows, colors, failed = [], [], []
        for gen, row, source, color, reason in done:
            if color is None:
                self._memory[source] = -1
                self._reasons[source] = reason
            else:
                self._memory[source] = (color[0] << 16) | (color[1] << 8) | color[2]
            if gen != generation:
                continue
            if color is None:
                failed.append(row)
            else:
                rows.append(row)
                colors.append(color)
        if rows:
            self.colors[rows] = colors
            self.state[rows] = 1
        if failed:
            self.state[failed] = -1
        if rows or failed:
            self._changed.append(np.array(rows + failed, dtype=np.int64))
            self.colorsReady.emit()

    def take_changed(self) -> np.ndarray:
        """The rows whose colour (or failure) became known since the last
        call; a view updates only their pixels."""
        changed, self._changed = self._changed, []
        return np.concatenate(changed) if changed else np.zeros(0, dtype=np.int64)
