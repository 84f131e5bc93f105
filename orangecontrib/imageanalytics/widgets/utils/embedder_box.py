"""The "Embedder" box of the Image Embedding widget.

Which network embeds, with a description; for a server embedder, which
server and what sending images there means, and the question asked before
images go to a server the user has just picked; for a local copy whose
weights are not here yet, the Download button.  The box reads and writes the
widget's settings ``embedder``, ``own_server`` and ``server_url`` and calls
the widget back; the policies are in :mod:`~orangecontrib.imageanalytics.embedding_task`.
"""
from __future__ import annotations

from collections.abc import Callable

from AnyQt.QtCore import Qt
from AnyQt.QtWidgets import QLabel, QSizePolicy
from Orange.widgets import gui
from Orange.widgets.utils.itemmodels import PyListModel

from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_EMBEDDER,
    PUBLIC_SERVER_URL,
    default_server_url,
    embedder_keys,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.weights import weights_path
from orangecontrib.imageanalytics.embedding_task import (
    host,
    server_address,
    server_note,
    weights_missing,
)
from orangecontrib.imageanalytics.widgets.utils.tooltips import wrapped_tooltip

__all__ = ["LOCAL_FALLBACK", "EmbedderBox", "EmbedderListModel",
           "wrapped_label"]

#: The embedder offered instead of sending images away, and when the server
#: cannot be reached.
LOCAL_FALLBACK = DEFAULT_EMBEDDER


def wrapped_label(box, text: str = "") -> QLabel:
    """A label in ``box`` whose text wraps, so the widget keeps its width."""
    label = gui.widgetLabel(box, text)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
    return label


class EmbedderListModel(PyListModel):
    """Embedder keys, shown by their display names (where images go)."""

    def data(self, index, role=Qt.DisplayRole):
        if self._is_index_valid(index):
            spec = get_embedder(self[index.row()])
            if role == Qt.DisplayRole:
                return spec.display_name
            if role == Qt.ToolTipRole:
                return wrapped_tooltip(spec.description)
        return super().data(index, role)


class EmbedderBox:
    """The controls of the embedder and of where its images go.

    Parameters
    ----------
    widget
        The widget whose settings the controls show and change.
    parent
        Where the box goes.
    changed
        Called after the user chose another embedder or server.
    confirmed
        Called when the user agrees to send the images to the server.
    download
        Called when the user presses Download.
    """

    def __init__(self, widget, parent, *, changed: Callable[[], None],
                 confirmed: Callable[[], None],
                 download: Callable[[], None]):
        self.widget = widget
        self._changed, self._confirmed = changed, confirmed
        # images go to a server the user picks only once they confirm; a
        # workflow saved with a server embedder runs as it was saved
        self.confirmed_url = None if get_embedder(widget.embedder).local \
            else self.server_url()
        #: whether the images wait for the user's word
        self.awaiting_confirmation = False

        box = gui.vBox(parent, "Embedder")
        self.embedder_model = EmbedderListModel(embedder_keys())
        self.embedder_combo = gui.comboBox(
            box, widget, "embedder", model=self.embedder_model,
            callback=self._chosen)
        self.description_label = wrapped_label(box)

        self.download_box = gui.vBox(box, margin=0)
        self.download_note = wrapped_label(self.download_box)
        self.download_button = gui.button(self.download_box, widget,
                                          "Download", callback=download,
                                          autoDefault=False)

        self.server_box = gui.vBox(box, margin=0)
        self.server_choice = gui.radioButtons(
            self.server_box, widget, "own_server",
            btnLabels=(f"Orange's public server ({host(PUBLIC_SERVER_URL)})",
                       "My own server:"),
            callback=self._chosen)
        self.server_edit = gui.lineEdit(
            gui.indentedBox(self.server_box), widget, "server_url",
            callback=self._chosen)
        self.server_edit.setPlaceholderText(default_server_url())
        self.server_note = wrapped_label(self.server_box)

        self.confirm_box = gui.vBox(box, margin=0)
        self.confirm_note = wrapped_label(self.confirm_box)
        self.send_button = gui.button(self.confirm_box, widget, "Send",
                                      callback=self._send, autoDefault=False)
        local = get_embedder(LOCAL_FALLBACK).display_name
        self.keep_button = gui.button(
            self.confirm_box, widget, f"Keep them here: use {local}",
            callback=self._keep, autoDefault=False)

    def server_url(self) -> str:
        """The address that server embedders send images to."""
        return server_address(self.widget.own_server, self.widget.server_url)

    def _chosen(self) -> None:
        # the user chose where images go: a server not confirmed yet waits
        # for the user's word before any image leaves
        if get_embedder(self.widget.embedder).local:
            self.confirmed_url = None
            self.awaiting_confirmation = False
        else:
            self.awaiting_confirmation = \
                self.server_url() != self.confirmed_url
        self._changed()

    def _send(self) -> None:
        self.confirmed_url = self.server_url()
        self.awaiting_confirmation = False
        self._confirmed()

    def _keep(self) -> None:
        self.widget.embedder = LOCAL_FALLBACK
        self._chosen()

    def update(self, n_images: int | None, downloading: bool) -> None:
        """Show what the settings are now.

        ``n_images``: how many images would be sent (``None`` without data);
        ``downloading``: whether the chosen local copy's weights are on
        their way.
        """
        spec = get_embedder(self.widget.embedder)
        self.description_label.setText(spec.description)
        self.server_box.setVisible(not spec.local)
        self.server_edit.setEnabled(bool(self.widget.own_server))
        url = self.server_url()
        self.server_note.setText(server_note(url, self.widget.own_server))

        self.confirm_box.setVisible(self.awaiting_confirmation)
        images = "the images" if n_images is None else \
            f"{n_images} image{'s' * (n_images != 1)}"
        self.send_button.setText(f"Send {images} to {host(url)}")
        self.confirm_note.setText(
            f"Nothing is sent until you choose: send {images} to {url}, or "
            "keep them on this computer.")

        visible = downloading or weights_missing(spec.key)
        self.download_box.setVisible(visible)
        self.download_button.setEnabled(not downloading)
        if visible and not downloading:
            size = spec.weights.size
            self.download_button.setText(
                f"Download ({size / 1e6:.0f} MB)" if size else "Download")
            self.download_note.setText(
                f"Its weights come from {host(spec.weights.url or '')}.")
            self.download_button.setToolTip(wrapped_tooltip(
                f"Download {spec.weights.filename} into "
                f"{weights_path(spec).parent}"))
