"""Image Embedding widget: turn every image of a table into a feature vector.

The work and the policies are in :mod:`orangecontrib.imageanalytics.embedding_task`;
this module only wires them to controls and messages.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from AnyQt.QtCore import Qt, QTimer
from AnyQt.QtWidgets import QLayout
from Orange.data import Table, Variable
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, DomainContextHandler, Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.itemmodels import VariableListModel
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.imageanalytics.counts_text import plural, reasons_text
from orangecontrib.imageanalytics.embedders.download import DownloadCancelled
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
    EmbeddingError,
    ServerUnreachable,
)
from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_EMBEDDER,
    LOCAL_COPIES,
    embedder_keys,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.weights import weights_path
from orangecontrib.imageanalytics.embedding_task import (
    Downloaded,
    EmbedderFactory,
    Result,
    count_images,
    download,
    host,
    image_columns,
    migrate_settings,
    run,
    weights_missing,
)
from orangecontrib.imageanalytics.widgets.utils.embedder_box import (
    LOCAL_FALLBACK,
    EmbedderBox,
    wrapped_label,
)
from orangecontrib.imageanalytics.widgets.utils.tooltips import wrapped_tooltip
from orangecontrib.imageanalytics.widgets.utils.whole_messages import (
    WholeMessagesMixin,
)

__all__ = ["OWImageEmbedding"]


class OWImageEmbedding(WholeMessagesMixin, OWWidget,
                       ConcurrentWidgetMixin):
    name = "Image Embedding"
    description = "Image embedding through deep neural networks."
    icon = "icons/ImageEmbedding.svg"
    priority = 150
    keywords = ("image embedding", "embedding", "image", "deep learning",
                "neural network", "features")

    class Inputs:
        # ids as in workflows saved by the older add-on
        images = Input("Images", Table, id="images")

    class Outputs:
        embeddings = Output("Embeddings", Table, id="embeddings",
                            default=True)
        skipped_images = Output("Skipped Images", Table, id="skipped_images")

    want_main_area = False
    resizing_enabled = False

    #: Hook for tests and other front ends: a callable
    #: ``(model=..., server_url=...)`` returning an engine with
    #: ``embed_sources``; ``None`` uses ``ImageEmbedder``.
    embedder_factory: EmbedderFactory | None = None

    settings_version = 3
    settingsHandler = DomainContextHandler()
    image_attr: Variable | None = ContextSetting(None)
    embedder: str = Setting(DEFAULT_EMBEDDER)
    #: server embedders: False for Orange's public server, True for
    #: ``server_url``
    own_server: bool = Setting(False)
    #: the user's own server; empty: ORANGE_EMBEDDING_API_URL, else the
    #: server that ``orange-embedding-server`` starts on this computer
    server_url: str = Setting("")
    auto_apply: bool = Setting(True)
    #: image column index from a workflow of the older add-on; it can only be
    #: resolved when data arrives, then it is dropped
    legacy_image_attr_index: int | None = Setting(None, schema_only=True)

    class Information(OWWidget.Information):
        cancelled = Msg("Embedding cancelled; images finished so far are "
                        "kept and will not be embedded again.")
        download_stopped = Msg("Download stopped; pressing Download again "
                               "resumes it where it stopped.")
        local_this_time = Msg("Embedded locally with {} this time; the chosen "
                              "embedder is still {}.")

    class Warning(OWWidget.Warning):
        images_skipped = Msg("{} could not be embedded: {}.")
        unknown_embedder = Msg("The workflow asks for embedder '{}', which is "
                               "not available; {} is selected instead.")

    class Error(OWWidget.Error):
        no_image_column = Msg("Data has no text or categorical meta column "
                              "that could hold image paths or URLs.")
        server_unreachable = Msg(
            "{}\nPress \"Embed locally this time\" to embed with {} on "
            "this computer; the chosen embedder stays selected.")
        embedder_unavailable = Msg("{}")
        server_failed = Msg(
            "The embedding server at {} could not embed the images: {}\n"
            "Press \"Embed locally this time\" to embed with {} on this "
            "computer.")
        download_failed = Msg("{}")
        weights_missing = Msg(
            "{} runs on this computer once its weights are downloaded "
            "({}). Press Download.")
        failed = Msg("Embedding failed: {}")

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Table | None = None
        # the embedder of the running task (may be the local fallback)
        self._running_embedder: str | None = None
        # whether the running task is "Embed locally this time"
        self._running_fallback = False
        # the embedder whose weights the running task downloads, if it does
        self._downloading: str | None = None
        # what the running task's end calls: (on done, on exception)
        self._handlers: tuple[Callable[[Any], None],
                              Callable[[Exception], None]] | None = None

        if self.embedder not in embedder_keys():
            self.Warning.unknown_embedder(
                self.embedder, get_embedder(DEFAULT_EMBEDDER).display_name)
            self.embedder = DEFAULT_EMBEDDER

        self.image_attr_model = VariableListModel()
        box = gui.vBox(self.controlArea, "Images")
        gui.comboBox(box, self, "image_attr", label="Image column:",
                     orientation=Qt.Horizontal, model=self.image_attr_model,
                     callback=self.commit.deferred)
        self.embedder_box = EmbedderBox(
            self, self.controlArea, changed=self._on_embedder_changed,
            confirmed=self.commit.now, download=self.download_weights)

        box = gui.vBox(self.controlArea, "Status")
        self.status_label = wrapped_label(box, "No data.")
        # the messages whole: the status bar shows only their first line
        self.add_message_label(box)
        local = get_embedder(LOCAL_FALLBACK).display_name
        self.fallback_button = gui.button(
            box, self, "Embed locally this time",
            callback=self.embed_locally_this_time, autoDefault=False,
            toolTip=wrapped_tooltip(f"Embed with {local} once, keeping the "
                                    "chosen embedder for later runs"))
        self.fallback_button.setVisible(False)
        self.cancel_button = gui.button(
            box, self, "Cancel", callback=self.cancel_embedding,
            autoDefault=False)
        self.cancel_button.setEnabled(False)

        gui.auto_apply(self.buttonsArea, self, "auto_apply")
        self.controlArea.setMinimumWidth(320)
        self.layout().setSizeConstraint(QLayout.SetFixedSize)
        self._update_embedder_box()

    # --- inputs -------------------------------------------------------------

    @Inputs.images
    def set_data(self, data: Table | None) -> None:
        self.cancel()
        self._set_running(False)
        self.closeContext()
        self.Error.no_image_column.clear()
        self._clear_task_messages()
        # the outputs belong to the previous table: withdraw them now, not
        # when the new one is embedded
        self._send(None, None)
        self.data = data
        columns = image_columns(data)
        self.image_attr_model[:] = columns
        self.image_attr = columns[0] if columns else None

        if data is None:
            self.status_label.setText("No data.")
        elif not columns:
            self.Error.no_image_column()
            self.status_label.setText("No image column.")
        else:
            self.openContext(data)
            index = self.legacy_image_attr_index
            # the older add-on offered the same columns in the same order
            if index is not None and 0 <= index < len(columns):
                self.image_attr = columns[index]
            self.legacy_image_attr_index = None
            self.status_label.setText(f"{len(data)} rows; ready to embed.")
        self.commit.now()

    # --- controls -----------------------------------------------------------

    def _on_embedder_changed(self) -> None:
        self.Warning.unknown_embedder.clear()
        self._update_embedder_box()
        self.commit.deferred()

    def effective_server_url(self) -> str:
        """The address that server embedders send images to."""
        return self.embedder_box.server_url()

    def _update_embedder_box(self) -> None:
        # counted only for the question that names it
        n_images = None if self.data is None \
            or not self.embedder_box.awaiting_confirmation \
            else count_images(self.data, self.image_attr)
        self.embedder_box.update(n_images, self._downloading is not None)

    # --- running ------------------------------------------------------------

    @gui.deferred
    def commit(self) -> None:
        self._start(self.embedder)

    def download_weights(self) -> None:
        """Download the weights of the chosen local copy, then embed."""
        key = self.embedder
        if key not in LOCAL_COPIES:
            return
        self.cancel()
        self._clear_task_messages()
        self._downloading = key
        self._update_embedder_box()
        self.status_label.setText(
            f"Downloading the weights of {get_embedder(key).label}...")
        self._run_task(download, self._download_done, self._download_failed,
                       key)

    def embed_locally_this_time(self) -> None:
        """Embed once with the local default; the saved choice stays."""
        self._start(LOCAL_FALLBACK, fallback=True)

    def _clear_task_messages(self) -> None:
        # messages about the last run; those about the input and the saved
        # settings stay until those change
        for message in (self.Error.server_unreachable,
                        self.Error.embedder_unavailable,
                        self.Error.server_failed, self.Error.download_failed,
                        self.Error.weights_missing, self.Error.failed,
                        self.Warning.images_skipped, self.Information):
            message.clear()
        self.fallback_button.setVisible(False)

    def _start(self, embedder_key: str, *, fallback: bool = False) -> None:
        self.cancel()
        self._downloading = None
        self._clear_task_messages()
        self._update_embedder_box()
        spec = get_embedder(embedder_key)
        waiting = None
        if self.data is None or self.image_attr is None:
            waiting = self.status_label.text()
        elif not spec.local and self.embedder_box.awaiting_confirmation:
            waiting = (f"Waiting for your choice: send the images to "
                       f"{host(self.effective_server_url())}, or keep them "
                       "here.")
        elif weights_missing(embedder_key):
            self.Error.weights_missing(spec.display_name,
                                       weights_path(spec).name)
            waiting = "Waiting for the weights."
        if waiting is not None:
            self._set_running(False)
            self._send(None, None)
            self.status_label.setText(waiting)
            return
        self._running_embedder = embedder_key
        self._running_fallback = fallback
        self.status_label.setText(
            f"Embedding {len(self.data)} images with {spec.display_name}...")
        self._run_task(run, self._embedding_done, self._embedding_failed,
                       self.data, self.image_attr, embedder_key,
                       self.effective_server_url(),
                       embedder_factory=self.embedder_factory)

    def _run_task(self, task, on_done, on_exception, *args, **kwargs) -> None:
        """Start ``task`` in the worker; its result goes to ``on_done``, its
        exception to ``on_exception``."""
        self._handlers = (on_done, on_exception)
        self.start(task, *args, **kwargs)
        self._set_running(True)

    def on_done(self, result: Any) -> None:
        self._set_running(False)
        self._handlers[0](result)

    def on_exception(self, ex: Exception) -> None:
        self._set_running(False)
        self._handlers[1](ex)

    def on_partial_result(self, result: Any) -> None:
        pass  # the tasks report only progress

    def cancel_embedding(self) -> None:
        """Stop the running embedding or download; outputs are cleared."""
        if not self.cancel_button.isEnabled():
            return
        self.cancel()
        self._set_running(False)
        if self._downloading is not None:
            self._downloading = None
            self._update_embedder_box()
            self.Information.download_stopped()
            self.status_label.setText("Download stopped.")
            return
        self._send(None, None)
        self.Information.cancelled()
        self.status_label.setText("Cancelled.")

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)

    def _send(self, embedded: Table | None,
              skipped: Table | None) -> None:
        self.Outputs.embeddings.send(embedded)
        self.Outputs.skipped_images.send(skipped)

    def _embedding_done(self, result: Result) -> None:
        self._send(result.embedded, result.skipped)
        self.status_label.setText(
            f"{result.n_embedded} embedded, {result.n_skipped} skipped")
        if result.n_skipped:
            self.Warning.images_skipped(plural(result.n_skipped, "image"),
                                        reasons_text(result.skip_reasons))
        ran_on_server = not get_embedder(result.embedder).local
        # e.g. a server that answers, but not with embeddings
        self.fallback_button.setVisible(
            ran_on_server and result.n_skipped > 0 and not result.n_embedded)
        # not when the user picked another embedder while this one ran
        if self._running_fallback and result.embedder != self.embedder:
            self.Information.local_this_time(
                get_embedder(result.embedder).display_name,
                get_embedder(self.embedder).display_name)

    def _embedding_failed(self, ex: Exception) -> None:
        self._send(None, None)
        url = self.effective_server_url()
        local = get_embedder(LOCAL_FALLBACK).display_name
        key = self._running_embedder or self.embedder
        # whether "Embed locally this time" is a way out
        fallback = not get_embedder(key).local
        if isinstance(ex, EmbeddingCancelled):
            self.Information.cancelled()
            status, fallback = "Cancelled.", False
        elif isinstance(ex, ServerUnreachable):
            message = str(ex) or "connection failed"
            if url not in message:
                message = f"Cannot reach the embedding server at {url}: " \
                          f"{message}"
            self.Error.server_unreachable(message, local)
            status, fallback = "The embedding server cannot be reached.", True
        elif isinstance(ex, EmbedderUnavailable):
            self.Error.embedder_unavailable(str(ex))
            status = "Embedder not available."
            # a damaged weights file: a new download replaces it
            if key in LOCAL_COPIES:
                self.embedder_box.download_box.setVisible(True)
        elif isinstance(ex, EmbeddingError) and fallback:
            # the server answered, but refused or talked nonsense
            self.Error.server_failed(url, str(ex) or type(ex).__name__, local)
            status = "Embedding failed."
        else:
            self.Error.failed(f"{type(ex).__name__}: {ex}", exc_info=ex)
            status, fallback = "Embedding failed.", False
        self.status_label.setText(status)
        self.fallback_button.setVisible(fallback)

    def _download_done(self, result: Downloaded) -> None:
        self._downloading = None
        self._update_embedder_box()
        self.status_label.setText(
            f"Downloaded the weights of {get_embedder(result.embedder).label}.")
        if result.embedder == self.embedder:
            # a task cannot start from on_done; embed (or, without auto
            # apply, mark as due) once this handler returns
            QTimer.singleShot(0, self.commit.deferred)

    def _download_failed(self, ex: Exception) -> None:
        self._downloading = None
        self._update_embedder_box()
        if isinstance(ex, DownloadCancelled):
            self.Information.download_stopped()
            self.status_label.setText("Download stopped.")
            return
        if isinstance(ex, EmbedderUnavailable):
            # DownloadError, or no address to download from
            self.Error.download_failed(str(ex))
        else:
            self.Error.failed(f"{type(ex).__name__}: {ex}", exc_info=ex)
        self.status_label.setText("Download failed.")

    # --- deletion and report ------------------------------------------------

    def onDeleteWidget(self) -> None:
        self.shutdown()
        super().onDeleteWidget()

    def send_report(self) -> None:
        spec = get_embedder(self.embedder)
        items = [("Embedder", spec.display_name)]
        if not spec.local:
            items.append(("Server", self.effective_server_url()))
        if self.image_attr is not None:
            items.append(("Image column", self.image_attr.name))
        self.report_items(items)
        self.report_paragraph("Result", self.status_label.text())

    # --- old workflows ------------------------------------------------------

    @classmethod
    def migrate_settings(cls, settings: dict, version: int | None) -> None:
        migrate_settings(settings, version)


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangecontrib.imageanalytics.import_images import ImportImages
    from orangecontrib.imageanalytics.tutorials import example_photos

    folder = sys.argv[1] if len(sys.argv) > 1 else example_photos()
    WidgetPreview(OWImageEmbedding).run(ImportImages()(folder)[0])
