"""Placeholder pictures for thumbnails that are loading or failed.

Drawn with QPainter at the size asked for (no files), and kept per size so
that painting a view full of them costs nothing.
"""

from __future__ import annotations

from functools import lru_cache

from AnyQt.QtCore import QPointF, QRectF, Qt
from AnyQt.QtGui import QColor, QPainter, QPainterPath, QPen, QPixmap

__all__ = ["failed_pixmap", "loading_pixmap"]

_BACKGROUND = QColor(236, 236, 236)
_FRAME = QColor(200, 200, 200)


def _canvas(size: int) -> QPixmap:
    size = max(8, int(size))
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.transparent)
    return pixmap


def _frame(painter: QPainter, size: int) -> QRectF:
    margin = max(1.0, size * 0.04)
    rect = QRectF(margin, margin, size - 2 * margin, size - 2 * margin)
    painter.setPen(QPen(_FRAME, max(1.0, size / 64)))
    painter.setBrush(_BACKGROUND)
    painter.drawRoundedRect(rect, size * 0.06, size * 0.06)
    return rect


@lru_cache(maxsize=32)
def loading_pixmap(size: int) -> QPixmap:
    """A light square with a partial ring: the image is on its way."""
    pixmap = _canvas(size)
    size = pixmap.width()
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    _frame(painter, size)
    radius = size * 0.16
    center = QPointF(size / 2, size / 2)
    ring = QRectF(center.x() - radius, center.y() - radius, 2 * radius, 2 * radius)
    width = max(1.5, size * 0.035)
    painter.setBrush(Qt.NoBrush)
    painter.setPen(QPen(QColor(210, 210, 210), width))
    painter.drawEllipse(ring)
    pen = QPen(QColor(120, 140, 170), width)
    pen.setCapStyle(Qt.RoundCap)
    painter.setPen(pen)
    painter.drawArc(ring, 90 * 16, -100 * 16)
    painter.end()
    return pixmap


@lru_cache(maxsize=32)
def failed_pixmap(size: int) -> QPixmap:
    """A picture frame with a red cross: the image cannot be shown."""
    pixmap = _canvas(size)
    size = pixmap.width()
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    _frame(painter, size)
    # a small landscape (mountain and sun) in grey ...
    s = size
    painter.setPen(Qt.NoPen)
    painter.setBrush(QColor(190, 190, 190))
    mountain = QPainterPath()
    mountain.moveTo(s * 0.22, s * 0.70)
    mountain.lineTo(s * 0.42, s * 0.42)
    mountain.lineTo(s * 0.55, s * 0.58)
    mountain.lineTo(s * 0.64, s * 0.48)
    mountain.lineTo(s * 0.78, s * 0.70)
    mountain.closeSubpath()
    painter.drawPath(mountain)
    painter.drawEllipse(QPointF(s * 0.68, s * 0.32), s * 0.06, s * 0.06)
    # ... crossed out in red
    pen = QPen(QColor(200, 60, 50), max(1.5, s * 0.05))
    pen.setCapStyle(Qt.RoundCap)
    painter.setPen(pen)
    painter.drawLine(QPointF(s * 0.30, s * 0.25), QPointF(s * 0.70, s * 0.75))
    painter.drawLine(QPointF(s * 0.70, s * 0.25), QPointF(s * 0.30, s * 0.75))
    painter.end()
    return pixmap
