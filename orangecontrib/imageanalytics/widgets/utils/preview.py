"""A window that shows one image large: Space previews in the views.

The image is read and decoded in a worker thread at about the screen's size
(JPEG draft decoding); the window shows a placeholder meanwhile and the
reason when the image cannot be shown. Space and Esc close it; arrow keys
are passed on (:attr:`ImagePreview.navigate`) so that the view moves to the
next image while the window stays open.

The window is sized to each image and kept inside the available part of the
screen it opens on (the screen of the widget that opened it): a fixed share
of the screen left small photos in a large empty field and could open the
window partly off a short screen. Small images are scaled up to a
comfortable share of the screen; the caption names the title and the file.
"""

from __future__ import annotations

import html
import itertools
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlparse

from AnyQt.QtCore import QPoint, QRect, QSize, Qt
from AnyQt.QtCore import pyqtSignal as Signal
from AnyQt.QtCore import pyqtSlot as Slot
from AnyQt.QtGui import QKeyEvent, QPixmap
from AnyQt.QtWidgets import QApplication, QLabel, QSizePolicy, QVBoxLayout, QWidget
from PIL import Image

from orangecontrib.imageanalytics.image_sources import is_url, resolve_source
from orangecontrib.imageanalytics.images import load_image
from orangecontrib.imageanalytics.widgets.utils.placeholders import (
    failed_pixmap,
    loading_pixmap,
)
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import pil_to_qimage

__all__ = ["ImagePreview", "display_size", "file_name", "window_geometry"]

_ARROWS = (Qt.Key_Left, Qt.Key_Right, Qt.Key_Up, Qt.Key_Down)
#: The window (with its frame) takes at most this share of the screen's
#: available width and height.
SCREEN_SHARE = 0.9
#: Smaller images are scaled up until their longer side is this share of the
#: screen's shorter available side: a 256 × 192 photo, a stamp on a
#: 1920 × 1080 screen, is shown about 630 pixels wide there.
COMFORTABLE_SHARE = 0.6
#: The window is never narrower than this, so the caption stays readable.
MIN_WIDTH = 320
# the window manager's frame, until the window is shown and Qt knows it
_FRAME_GUESS = QSize(8, 36)
# room for the failed placeholder
_FAILED_SIZE = QSize(256, 192)


def display_size(image: QSize, room: QSize, comfortable: int) -> QSize:
    """The size at which to show an image of size ``image``.

    Images larger than ``room`` shrink to fit it; images whose longer side is
    shorter than ``comfortable`` grow to it (but not beyond ``room``); the
    aspect ratio is kept.
    """
    width, height = max(1, image.width()), max(1, image.height())
    fit = min(room.width() / width, room.height() / height)
    scale = min(fit, max(1.0, comfortable / max(width, height)))
    return QSize(max(1, round(width * scale)), max(1, round(height * scale)))


def window_geometry(size: QSize, available: QRect, centre: QPoint,
                    frame: QSize = QSize(0, 0)) -> QRect:  # noqa: B008 - never mutated
    """Where a window with a client area of ``size`` goes.

    Centred on ``centre`` and then moved (and shrunk, if need be) so that the
    window with its ``frame`` (extra width and height of the window manager's
    decoration, most of it the title bar above) lies inside ``available``.
    """
    width = min(size.width(), available.width() - frame.width())
    height = min(size.height(), available.height() - frame.height())
    outer_w, outer_h = width + frame.width(), height + frame.height()
    left = centre.x() - outer_w // 2
    top = centre.y() - outer_h // 2
    left = max(available.left(), min(left, available.right() + 1 - outer_w))
    top = max(available.top(), min(top, available.bottom() + 1 - outer_h))
    # the frame's sides are equal; the title bar takes the rest at the top
    side = frame.width() // 2
    return QRect(left + side, top + frame.height() - side, width, height)


def file_name(source: str | None) -> str:
    """The file name of a path or URL (the last part of its path)."""
    if not source:
        return ""
    if is_url(source):
        try:
            parsed = urlparse(source)
        except ValueError:
            return source
        return unquote(parsed.path).rstrip("/").rsplit("/", 1)[-1] or parsed.netloc
    return os.path.basename(source.rstrip("/" + os.sep)) or source


class ImagePreview(QWidget):
    """A top-level preview window for the current image."""

    #: The Qt.Key of an arrow key pressed while the window is open.
    navigate = Signal(int)

    _loaded = Signal(int, object, object)  # request id, QImage, error

    def __init__(self, parent=None):
        super().__init__(parent, Qt.Window)
        self.setAttribute(Qt.WA_DeleteOnClose, False)
        self.setWindowTitle("Preview")
        self._ids = itertools.count(1)
        self._current = 0
        self._image = None
        self._error: str | None = None
        self._title = self._name = ""
        self.image_label = QLabel(alignment=Qt.AlignCenter)
        # the window is sized from the image, not from the pixmap shown now
        self.image_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self.image_label.setMinimumSize(64, 64)
        self.caption = QLabel(alignment=Qt.AlignCenter, wordWrap=True)
        self.caption.setTextFormat(Qt.RichText)
        self.caption.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.image_label, 1)
        layout.addWidget(self.caption)
        self._loaded.connect(self._on_loaded, Qt.QueuedConnection)
        # one worker: holding an arrow key queues many images, only the
        # latest of which is still wanted when the worker gets to it
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="image-preview")
        # a Python finalizer, not a slot on our own destroyed() signal: PyQt
        # may call such a slot while the wrapper is half torn down (a crash
        # when a workflow closes)
        weakref.finalize(self, self._executor.shutdown, wait=False)

    # ------------------------------------------------------------ public

    def show_image(self, value: str | None, origin: str | None, title: str = "") -> None:
        """Show the image ``value`` (relative to ``origin``) with a title."""
        request = next(self._ids)
        self._current = request
        self._image = None
        self._error = None
        source = resolve_source(value, origin)
        self._title, self._name = str(title or ""), file_name(source)
        parts = [p for p in (self._title, self._name) if p]
        if self._title == self._name:
            parts = parts[:1]
        self.setWindowTitle(" — ".join(parts) or "Preview")
        self._set_caption()
        self.image_label.setToolTip(source or "")
        self.image_label.setPixmap(loading_pixmap(128))
        if not self.isVisible():
            # most photos are 4:3; the window fits the image once it is read
            side = self._comfortable()
            self._place(QSize(side, side * 3 // 4))
            self.show()
        self.raise_()
        self.activateWindow()
        self._executor.submit(self._load, request, value, origin, self._room())

    def is_loading(self) -> bool:
        return self._image is None and self._error is None and self._current > 0

    def error(self) -> str | None:
        """Why the current image cannot be shown, or None."""
        return self._error

    # ------------------------------------------------------------ geometry

    def _screen(self):
        if self.isVisible() and self.screen() is not None:
            return self.screen()
        parent = self.parentWidget()
        if parent is not None and parent.window().screen() is not None:
            return parent.window().screen()
        return QApplication.primaryScreen()

    def _available(self) -> QRect:
        screen = self._screen()
        return screen.availableGeometry() if screen is not None else QRect(0, 0, 800, 600)

    def _frame(self) -> QSize:
        if self.isVisible():
            frame = self.frameGeometry().size() - self.geometry().size()
            if frame.width() > 0 or frame.height() > 0:
                return frame
        return _FRAME_GUESS

    def _chrome(self, width: int) -> QSize:
        """What the window adds around the image: margins and the caption."""
        margins = self.layout().contentsMargins()
        caption = self.caption.heightForWidth(width)
        if caption < 0:
            caption = self.caption.sizeHint().height()
        return QSize(margins.left() + margins.right(),
                     margins.top() + margins.bottom() + self.layout().spacing() + caption)

    def _room(self) -> QSize:
        """The largest image that fits into the window on this screen."""
        available, frame = self._available(), self._frame()
        chrome = self._chrome(int(available.width() * SCREEN_SHARE))
        return QSize(
            max(64, int(available.width() * SCREEN_SHARE) - frame.width() - chrome.width()),
            max(64, int(available.height() * SCREEN_SHARE) - frame.height()
                - chrome.height()))

    def _comfortable(self) -> int:
        available = self._available()
        return int(min(available.width(), available.height()) * COMFORTABLE_SHARE)

    def _place(self, shown: QSize) -> None:
        """Size the window around an image shown at ``shown`` and keep it on
        its screen, where it was (or over the widget that opened it)."""
        width = max(MIN_WIDTH, shown.width() + self._chrome(shown.width()).width())
        size = QSize(width, shown.height() + self._chrome(width).height())
        if self.isVisible():
            centre = self.frameGeometry().center()
        elif self.parentWidget() is not None:
            centre = self.parentWidget().window().frameGeometry().center()
        else:
            centre = self._available().center()
        self.setGeometry(window_geometry(size, self._available(), centre, self._frame()))

    # ------------------------------------------------------------ internals

    def _set_caption(self, error: str | None = None) -> None:
        lines = []
        if self._title and self._title != self._name:
            lines.append(f"<b>{html.escape(self._title)}</b>")
        if self._name:
            lines.append(html.escape(self._name))
        if error:
            lines.append(f"<i>{html.escape(error)}</i>")
        self.caption.setText("<br>".join(lines))

    def _load(self, request: int, value, origin, limit: QSize) -> None:
        if request != self._current:
            return  # the user has moved on already
        width, height = max(64, limit.width()), max(64, limit.height())
        result = load_image(value, origin=origin, min_size=(width, height),
                            keep_alpha=True) if value is not None else None
        if result is None or result.image is None:
            image, error = None, (result.error if result else "missing value")
        else:
            pil = result.image
            if pil.width > width or pil.height > height:
                pil.thumbnail((width, height), Image.Resampling.LANCZOS)
            image, error = pil_to_qimage(pil), None
        try:
            self._loaded.emit(request, image, error)
        except RuntimeError:  # the window is gone
            pass

    @Slot(int, object, object)
    def _on_loaded(self, request: int, image, error) -> None:
        if request != self._current:
            return  # the user moved on
        if image is None:
            self._error = error
            self.image_label.setPixmap(failed_pixmap(128))
            self._set_caption(error)
            if self.isVisible():
                self._place(_FAILED_SIZE)
            return
        self._image = image
        if self.isVisible():
            self._place(display_size(image.size(), self._room(), self._comfortable()))
        self._show_scaled()

    def _show_scaled(self) -> None:
        if self._image is None:
            return
        area = self.image_label.size()
        shown = display_size(self._image.size(), area, self._comfortable())
        pixmap = QPixmap.fromImage(self._image)
        if shown != pixmap.size():
            pixmap = pixmap.scaled(shown, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        self.image_label.setPixmap(pixmap)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._show_scaled()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key_Space, Qt.Key_Escape):
            self.close()
            event.accept()
        elif event.key() in _ARROWS:
            self.navigate.emit(event.key())
            event.accept()
        else:
            super().keyPressEvent(event)
