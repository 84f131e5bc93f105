"""A window that shows one image large: Space previews in the views.

The image is read and decoded in a worker thread at about the screen's size
(JPEG draft decoding); the window shows a placeholder meanwhile and the
reason when the image cannot be shown. Space and Esc close it; arrow keys
are passed on (:attr:`ImagePreview.navigate`) so that the view moves to the
next image while the window stays open.
"""

from __future__ import annotations

import itertools
import weakref
from concurrent.futures import ThreadPoolExecutor

from AnyQt.QtCore import QSize, Qt
from AnyQt.QtCore import pyqtSignal as Signal
from AnyQt.QtCore import pyqtSlot as Slot
from AnyQt.QtGui import QKeyEvent, QPixmap
from AnyQt.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget
from PIL import Image

from orangecontrib.imageanalytics.images import load_image
from orangecontrib.imageanalytics.image_sources import resolve_source
from orangecontrib.imageanalytics.widgets.utils.placeholders import (
    failed_pixmap,
    loading_pixmap,
)
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import pil_to_qimage

__all__ = ["ImagePreview"]

_ARROWS = (Qt.Key_Left, Qt.Key_Right, Qt.Key_Up, Qt.Key_Down)


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
        self.image_label = QLabel(alignment=Qt.AlignCenter)
        self.image_label.setMinimumSize(64, 64)
        self.caption = QLabel(alignment=Qt.AlignCenter, wordWrap=True)
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
        self.resize(self._fit_size())

    # ------------------------------------------------------------ public

    def show_image(self, value: str | None, origin: str | None, title: str = "") -> None:
        """Show the image ``value`` (relative to ``origin``) with a title."""
        request = next(self._ids)
        self._current = request
        self._image = None
        self._error = None
        self.setWindowTitle(title or "Preview")
        source = resolve_source(value, origin)
        self.caption.setText(title or (source or ""))
        self.image_label.setToolTip(source or "")
        self.image_label.setPixmap(loading_pixmap(128))
        if not self.isVisible():
            self.show()
        self.raise_()
        self.activateWindow()
        limit = self._fit_size()
        self._executor.submit(self._load, request, value, origin, limit)

    def is_loading(self) -> bool:
        return self._image is None and self._error is None and self._current > 0

    def error(self) -> str | None:
        """Why the current image cannot be shown, or None."""
        return self._error

    # ------------------------------------------------------------ internals

    def _fit_size(self) -> QSize:
        screen = (self.screen() if hasattr(self, "screen") else None) \
            or QApplication.primaryScreen()
        if screen is None:
            return QSize(800, 600)
        available = screen.availableGeometry().size()
        return QSize(int(available.width() * 0.8), int(available.height() * 0.8))

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
            self.caption.setText(f"{self.windowTitle()}\n{error}")
            return
        self._image = image
        self._show_scaled()

    def _show_scaled(self) -> None:
        if self._image is None:
            return
        pixmap = QPixmap.fromImage(self._image)
        area = self.image_label.size()
        if pixmap.width() > area.width() or pixmap.height() > area.height():
            pixmap = pixmap.scaled(area, Qt.KeepAspectRatio, Qt.SmoothTransformation)
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
