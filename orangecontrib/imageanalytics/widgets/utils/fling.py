"""Pause thumbnail loading while the user flings through a view.

Rows that fly past faster than anyone can look at them are not worth a
thumbnail, and the workers that would make them take cores and the
interpreter from the GUI thread, which must paint the scroll. Image
loaders for phone galleries (Picasso, Glide) pause the same way during a
fling. A slow scroll, at which a user can still look at the images, keeps
loading; when the view stops, loading resumes at once with the rows in view.
"""

from __future__ import annotations

import time
from collections import deque

from AnyQt.QtCore import QObject, QTimer
from AnyQt.QtWidgets import QScrollBar

from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader

__all__ = ["FlingPause"]

#: The window over which the scroll speed is measured (seconds).
WINDOW = 0.25
#: Scrolling more than this many pages within the window is a fling.
PAGES = 1.0
#: ... in at least this many moves (a single jump is not a fling).
MIN_MOVES = 3
#: Loading resumes after the view was still for this long (milliseconds).
QUIET_MS = 120


class FlingPause(QObject):
    """Pauses ``loader`` while ``bar`` moves more than a page per
    :data:`WINDOW` seconds, and resumes it once the bar is still."""

    def __init__(self, bar: QScrollBar, loader: ThumbnailLoader, parent=None,
                 *, clock=time.monotonic):
        super().__init__(parent)
        self.bar = bar
        self.loader = loader
        self._clock = clock
        self._moves: deque[tuple[float, int]] = deque()  # (time, distance)
        self._last = bar.value()
        self._timer = QTimer(self, singleShot=True, interval=QUIET_MS,
                             timeout=self._resume)
        bar.valueChanged.connect(self._on_moved)

    def is_flinging(self) -> bool:
        return self.loader.is_paused()

    def _on_moved(self, value: int) -> None:
        now = self._clock()
        moves = self._moves
        moves.append((now, abs(value - self._last)))
        self._last = value
        while moves and now - moves[0][0] > WINDOW:
            moves.popleft()
        # a jump (Page Down, a click on the bar, Home/End) is not a fling:
        # the largest move does not count
        distances = [d for _, d in moves]
        if len(moves) >= MIN_MOVES and \
                sum(distances) - max(distances) > PAGES * max(1, self.bar.pageStep()):
            self.loader.set_paused(True)
        if self.loader.is_paused():
            self._timer.start()

    def _resume(self) -> None:
        self._moves.clear()
        self.loader.set_paused(False)
