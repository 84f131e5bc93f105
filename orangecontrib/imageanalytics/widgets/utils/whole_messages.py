"""Messages shown whole in a widget.

Orange's message bar shows the first line of a widget's message and puts the
rest in a tooltip that never wraps, so a long error is cut off in the widget
and runs off the screen in the tooltip.  A widget with this mixin shows every
active message whole in a word-wrapped label of its own, and the bar's
tooltip wraps.
"""
from __future__ import annotations

from AnyQt.QtCore import Qt
from AnyQt.QtWidgets import QLabel, QSizePolicy
from Orange.widgets import gui

from orangecontrib.imageanalytics.widgets.utils.tooltips import wrapped_tooltip

__all__ = ["WholeMessagesMixin"]


class WholeMessagesMixin:
    """Put before ``OWWidget`` among the bases and call
    :meth:`add_message_label` where the messages are to be shown."""

    message_label: QLabel | None = None

    def add_message_label(self, box) -> QLabel:
        """Add the label that shows the messages to ``box``."""
        label = gui.widgetLabel(box, "")
        label.setWordWrap(True)
        label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message_label = label
        self.update_message_state()
        return label

    def update_message_state(self) -> None:
        """Orange's update of the message bar, then the messages whole."""
        super().update_message_state()
        if self.message_label is None:   # not placed (yet)
            return
        text = "\n".join(str(message) for group in self.message_groups
                         for message in group.active)
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))
        if self.message_bar is not None and text:
            self.message_bar.setToolTip(wrapped_tooltip(text))
