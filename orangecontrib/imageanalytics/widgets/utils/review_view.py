"""The Qt pieces of Review Images' groups: a photo as a thumbnail button with
its role, its click menu, and a group as one row of such buttons."""
from __future__ import annotations

from collections.abc import Callable

from AnyQt.QtCore import QSize, Qt, QTimer
from AnyQt.QtGui import QIcon
from AnyQt.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QMenu,
    QToolButton,
    QWidget,
)

from orangecontrib.imageanalytics.review import KEEPER, describe_issue

__all__ = ["TAKEN_OUT", "THUMB", "PhotoButton", "flagged_item", "group_frame",
           "photo_menu"]

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


def group_frame(number: int, entries: list[tuple[int, str]], taken: set[int], *,
                label: Callable[[int], str], icon: Callable[[int], QIcon],
                tooltip: Callable[[int], str],
                menu: Callable[[QWidget, int, str], QMenu]
                ) -> tuple[QFrame, list[PhotoButton]]:
    """One group as a row: "G<number>", then a button per ``(row, kind)``."""
    frame = QFrame(frameShape=QFrame.StyledPanel)
    layout = QHBoxLayout(frame)
    layout.setContentsMargins(4, 2, 4, 2)
    layout.addWidget(QLabel(f"G{number}", minimumWidth=36))
    buttons = []
    for row, kind in entries:
        text = f"{'✔ keep' if kind == KEEPER else kind}\n{label(row)}"
        button = PhotoButton(row, text, kind == KEEPER, row in taken, frame)
        button.setIcon(icon(row))
        button.setToolTip(tooltip(row))
        button.setMenu(menu(button, row, kind))
        buttons.append(button)
        layout.addWidget(button)
    layout.addStretch(1)
    return frame, buttons


def flagged_item(row: int, found: list[str], scores: dict[str, float], *,
                 icon: QIcon, label: str, path: str) -> QListWidgetItem:
    """A flagged photo in the list: its issues, its name, the scores."""
    item = QListWidgetItem(icon, f"{', '.join(found)}\n{label}")
    item.setToolTip("\n".join([path, *(describe_issue(i, scores[i]) for i in found)]))
    item.setData(Qt.UserRole, row)
    return item
