"""The Qt pieces of Review Images' groups: a photo as a thumbnail button with
its role, its click menu, and a group as one row of such buttons."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from AnyQt.QtCore import QObject, QSize, Qt, QTimer
from AnyQt.QtGui import QIcon
from AnyQt.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from orangecontrib.imageanalytics.review import KEEPER, describe_issue

__all__ = ["TAKEN_OUT", "THUMB", "PhotoButton", "Progressive", "flagged_item",
           "flagged_tab", "group_frame", "photo_menu"]

#: Thumbnail size in the views.
THUMB = 96
#: The kind shown for a photo the user took out of its group.
TAKEN_OUT = "taken out"


class PhotoButton(QToolButton):
    """A thumbnail with its role under it; a click opens its menu."""

    def __init__(self, row: int, text: str, keeper: bool, taken_out: bool, parent=None):
        super().__init__(parent)
        self.row = row
        self.setToolButtonStyle(Qt.ToolButtonTextUnderIcon)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setAutoRaise(True)
        self.setText(text)
        self.setProperty("keeper", keeper)
        style = "QToolButton { padding: 3px; }"
        if keeper:
            style = ("QToolButton { border: 3px solid #3a9a3a; border-radius: 4px;"
                     " padding: 1px; font-weight: bold; }")
        elif taken_out:
            style = "QToolButton { color: #999; padding: 3px; }"
        self.setStyleSheet(style)
        self.setPopupMode(QToolButton.InstantPopup)


def photo_menu(parent: QWidget, row: int, kind: str, *,
               make_keeper: Callable[[int], None],
               take_out: Callable[[int], None],
               put_back: Callable[[int], None]) -> QMenu:
    """The menu of a photo of ``kind`` in a group."""
    menu = QMenu(parent)

    def later(method):
        # the views are rebuilt, menu and all: not while its signal runs
        return lambda: QTimer.singleShot(0, lambda: method(row))

    if kind == TAKEN_OUT:
        menu.addAction("Put back in the group", later(put_back))
    else:
        action = menu.addAction("Keep this one", later(make_keeper))
        action.setEnabled(kind != KEEPER)
        menu.addAction("Not a duplicate: take out of the group", later(take_out))
    return menu


#: Photos of one group shown as buttons; the rest are counted.
MAX_MEMBERS = 12


def group_frame(number: int, entries: list[tuple[int, str]], taken: set[int], *,
                label: Callable[[int], str], icon: Callable[[int], QIcon],
                tooltip: Callable[[int], str],
                menu: Callable[[QWidget, int, str], QMenu]
                ) -> tuple[QFrame, list[PhotoButton]]:
    """One group as a row: "G<number>", then a button per ``(row, kind)``,
    the first :data:`MAX_MEMBERS` of them (a time-lapse or a long burst makes
    a group of thousands: a button each would hold the GUI for seconds)."""
    frame = QFrame(frameShape=QFrame.StyledPanel)
    layout = QHBoxLayout(frame)
    layout.setContentsMargins(4, 2, 4, 2)
    layout.addWidget(QLabel(f"G{number}", minimumWidth=36))
    buttons = []
    for row, kind in entries[:MAX_MEMBERS]:
        text = f"{'✔ keep' if kind == KEEPER else kind}\n{label(row)}"
        button = PhotoButton(row, text, kind == KEEPER, row in taken, frame)
        button.setIcon(icon(row))
        button.setToolTip(tooltip(row))
        button.setMenu(menu(button, row, kind))
        buttons.append(button)
        layout.addWidget(button)
    if len(entries) > MAX_MEMBERS:
        more = len(entries) - MAX_MEMBERS
        layout.addWidget(QLabel(f"and {more:,} more photo{'s' * (more != 1)}\n"
                                "(all in the Duplicates output)"))
    layout.addStretch(1)
    return frame, buttons


def flagged_tab(filter_combo: QComboBox) -> tuple[QWidget, QListWidget]:
    """The Flagged tab: "Show:" with the issue filter, then the flagged
    photos as a grid of thumbnails."""
    tab = QWidget()
    layout = QVBoxLayout(tab)
    layout.setContentsMargins(0, 4, 0, 0)
    row = QHBoxLayout()
    row.addWidget(QLabel("Show:"))
    row.addWidget(filter_combo)
    row.addStretch(1)
    layout.addLayout(row)
    photos = QListWidget(
        viewMode=QListView.IconMode, iconSize=QSize(THUMB, THUMB),
        resizeMode=QListView.Adjust, movement=QListView.Static,
        wordWrap=True, uniformItemSizes=True, spacing=4)
    photos.setGridSize(QSize(THUMB + 40, THUMB + 44))
    layout.addWidget(photos)
    return tab, photos


def flagged_item(row: int, found: list[str], scores: dict[str, float], *,
                 icon: QIcon, label: str, path: str) -> QListWidgetItem:
    """A flagged photo in the list: its issues, its name, the scores."""
    item = QListWidgetItem(icon, f"{', '.join(found)}\n{label}")
    item.setToolTip("\n".join([path, *(describe_issue(i, scores[i]) for i in found)]))
    item.setData(Qt.UserRole, row)
    return item


class Progressive(QObject):
    """Runs ``steps`` from the event loop a slice at a time, each slice at
    most ``budget`` seconds: a view of hundreds of groups (thousands of
    buttons, 0.2 ms each) is built without holding the GUI thread. The
    first slice runs at once; :meth:`cancel` drops what is left."""

    #: seconds of work in one slice
    BUDGET = 0.04

    def __init__(self, steps: Iterable[Callable[[], None]], budget: float | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._steps = iter(steps)
        self._budget = self.BUDGET if budget is None else budget
        self._timer = QTimer(self, interval=0)
        self._timer.timeout.connect(self._slice)
        if self._slice():
            self._timer.start()

    def _slice(self) -> bool:
        """Run steps for one budget; whether any are left."""
        end = time.perf_counter() + self._budget
        for step in self._steps:
            step()
            if time.perf_counter() >= end:
                return True
        self._timer.stop()
        return False

    def pending(self) -> bool:
        return self._timer.isActive()

    def cancel(self) -> None:
        self._timer.stop()
        self._steps = iter(())
