"""Image Embedding widget: turn every image of a table into a feature vector."""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from AnyQt.QtCore import Qt, QTimer
from AnyQt.QtWidgets import QLayout, QSizePolicy
from Orange.data import DiscreteVariable, StringVariable, Table, Variable
from Orange.widgets import gui
from Orange.widgets.settings import (
    ContextSetting,
    DomainContextHandler,
    Setting,
)
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin, TaskState
from Orange.widgets.utils.itemmodels import PyListModel, VariableListModel
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.imageanalytics.embedders.download import (
    DownloadCancelled,
)
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
    EmbeddingError,
    ServerUnreachable,
)
from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_EMBEDDER,
    LEGACY_ORDER,
    LOCAL_COPIES,
    PUBLIC_SERVER_URL,
    SERVER_URL_ENV,
    default_server_url,
    embedder_keys,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.weights import weights_path

__all__ = [
    "Downloaded",
    "OWImageEmbedding",
    "Result",
    "default_server_url",
    "download",
    "image_columns",
    "public_server_url",
    "run",
]

#: The embedder offered when the server cannot be reached.
LOCAL_FALLBACK = DEFAULT_EMBEDDER
#: How many distinct skip reasons the warning lists.
MAX_REASONS_SHOWN = 3

#: ``(model, server_url) -> engine``; the engine has ``embed_table`` with the
#: signature of :meth:`ImageEmbedder.embed_table`.
EmbedderFactory = Callable[..., Any]


def image_columns(data: Table | None) -> list[Variable]:
    """Columns that may hold image paths or URLs, as the user sees them.

    Meta string and categorical variables, those marked ``type=image`` first;
    otherwise in domain order.  Old workflows store an index into this list.
    """
    if data is None:
        return []
    candidates = [var for var in data.domain.metas
                  if isinstance(var, (StringVariable, DiscreteVariable))]
    return sorted(candidates,
                  key=lambda var: var.attributes.get("type") != "image")


def public_server_url() -> str:
    """Orange's public embedding server, unless ``$ORANGE_EMBEDDING_API_URL``
    names another (as in Orange's own embedding client)."""
    return os.environ.get(SERVER_URL_ENV, "").strip() or PUBLIC_SERVER_URL


def weights_missing(key: str) -> bool:
    """Whether ``key`` is a local copy whose weights file is not here yet.

    Only looks whether the file exists (cheap enough for the GUI thread);
    its hash is checked when the model loads, in the worker.
    """
    spec = get_embedder(key)
    if spec.key not in LOCAL_COPIES:
        return False
    try:
        return not weights_path(spec).is_file()
    except (EmbedderUnavailable, OSError):
        return True


@dataclass
class Result:
    """What :func:`run` gives back to the widget."""
    embedded: Table | None
    skipped: Table | None
    n_embedded: int
    n_skipped: int
    embedder: str
    #: ``(reason, count)``, most common first
    skip_reasons: list[tuple[str, int]] = field(default_factory=list)


def _skip_reasons(skipped: Table | None,
                  column: str) -> list[tuple[str, int]]:
    if skipped is None or not len(skipped) or not skipped.domain.metas:
        return []
    # the engine appends the reason as the last meta; its name gets a suffix
    # when the input already has a column of that name
    var = skipped.domain.metas[-1]
    if not var.name.startswith(column):
        return []
    values = skipped.get_column(var)
    return Counter(str(value) for value in values).most_common()


def run(data: Table, image_attr: Variable, embedder_key: str,
        server_url: str | None, state: TaskState, *,
        embedder_factory: EmbedderFactory | None = None) -> Result:
    """Embed the images of ``data``; the widget runs this in a worker thread.

    Parameters
    ----------
    data
        Input table (any subclass); the outputs keep its type and columns.
    image_attr
        The column with image paths or URLs.
    embedder_key
        A key of :data:`~orangecontrib.imageanalytics.embedders.registry.EMBEDDERS`.
    server_url
        The embedding server's address; ignored by local embedders.
    state
        Progress is reported through it and the embedder stops soon after
        ``state.is_interruption_requested()`` turns true.
    embedder_factory
        Builds the engine from ``model`` and ``server_url``;
        :class:`~orangecontrib.imageanalytics.image_embedder.ImageEmbedder`
        when not given.

    Returns
    -------
    Result

    Raises
    ------
    EmbeddingCancelled
        When interrupted.
    ServerUnreachable
        When a server embedder cannot reach its server.
    EmbedderUnavailable
        When the embedder cannot run here (e.g. a missing weights file).
    """
    # imported here because it loads the deep-learning stack, which the
    # canvas should not pay for when it only lists the widgets
    from orangecontrib.imageanalytics.image_embedder import (
        SKIP_REASON,
        ImageEmbedder,
    )

    spec = get_embedder(embedder_key)
    factory = embedder_factory or ImageEmbedder
    embedder = factory(model=spec.key,
                       server_url=None if spec.local else server_url)

    def progress(done: int, total: int) -> None:
        if total:
            state.set_progress_value(100 * done / total)
            state.set_status(f"Embedding: {done} of {total} images")

    state.set_status(f"Embedding with {spec.display_name}")
    try:
        embedded, skipped, n_skipped = embedder.embed_table(
            data, image_attr, progress=progress,
            should_stop=state.is_interruption_requested)
    finally:
        # the remote client keeps connections open until closed
        close = getattr(embedder, "close", None)
        if close is not None:
            close()
    return Result(
        embedded=embedded,
        skipped=skipped,
        n_embedded=0 if embedded is None else len(embedded),
        n_skipped=n_skipped,
        embedder=spec.key,
        skip_reasons=_skip_reasons(skipped, SKIP_REASON),
    )


@dataclass
class Downloaded:
    """What :func:`download` gives back to the widget."""
    embedder: str
    path: str


def download(embedder_key: str, state: TaskState) -> Downloaded:
    """Download the weights of a local copy; the widget runs this in a
    worker thread.

    Progress goes to ``state``; an interruption stops the download and keeps
    what arrived, so the next call resumes it.

    Raises
    ------
    DownloadError
        With a message for the user when the download fails.
    DownloadCancelled
        When interrupted.
    """
    from orangecontrib.imageanalytics.embedders.weights import (
        download_weights,
    )
    spec = get_embedder(embedder_key)
    shown = [-1]

    def progress(done: int, total: int | None) -> None:
        # called for every few kilobytes: report whole percents (or MB)
        step = int(100 * done / total) if total else done // 10**6
        if step == shown[0]:
            return
        shown[0] = step
        if total:
            state.set_progress_value(step)
        of = f" of {total / 1e6:.0f}" if total else ""
        state.set_status(f"Downloading {spec.label}: "
                         f"{done / 1e6:.0f}{of} MB")

    state.set_status(f"Downloading {spec.label}")
    path = download_weights(spec, progress=progress,
                            should_stop=state.is_interruption_requested)
    return Downloaded(spec.key, str(path))


class EmbedderListModel(PyListModel):
    """Embedder keys, shown by their display names (where images go)."""

    def data(self, index, role=Qt.DisplayRole):
        if self._is_index_valid(index):
            spec = get_embedder(self[index.row()])
            if role == Qt.DisplayRole:
                return spec.display_name
            if role == Qt.ToolTipRole:
                return spec.description
        return super().data(index, role)


class OWImageEmbedding(OWWidget, ConcurrentWidgetMixin):
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
    #: ``embed_table``; ``None`` uses ``ImageEmbedder``.
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

        if self.embedder not in embedder_keys():
            self.Warning.unknown_embedder(
                self.embedder, get_embedder(DEFAULT_EMBEDDER).display_name)
            self.embedder = DEFAULT_EMBEDDER

        self.image_attr_model = VariableListModel()
        box = gui.vBox(self.controlArea, "Images")
        gui.comboBox(box, self, "image_attr", label="Image column:",
                     orientation=Qt.Horizontal, model=self.image_attr_model,
                     callback=self._on_image_attr_changed)

        box = gui.vBox(self.controlArea, "Embedder")
        self.embedder_model = EmbedderListModel(embedder_keys())
        self.embedder_combo = gui.comboBox(
            box, self, "embedder", model=self.embedder_model,
            callback=self._on_embedder_changed)
        self.description_label = gui.widgetLabel(box, "")
        self.description_label.setWordWrap(True)

        self.download_box = gui.vBox(box, margin=0)
        self.download_note = gui.widgetLabel(self.download_box, "")
        self.download_note.setWordWrap(True)
        self.download_button = gui.button(
            self.download_box, self, "Download",
            callback=self.download_weights, autoDefault=False)

        self.server_box = gui.vBox(box, margin=0)
        self.server_choice = gui.radioButtons(
            self.server_box, self, "own_server",
            btnLabels=(f"Orange's public server ({_host(PUBLIC_SERVER_URL)})",
                       "My own server:"),
            callback=self._on_server_changed)
        self.server_edit = gui.lineEdit(
            gui.indentedBox(self.server_box), self, "server_url",
            callback=self._on_server_changed)
        self.server_edit.setPlaceholderText(default_server_url())
        self.server_note = gui.widgetLabel(self.server_box, "")
        self.server_note.setWordWrap(True)

        box = gui.vBox(self.controlArea, "Status")
        self.status_label = gui.widgetLabel(box, "No data.")
        self.status_label.setWordWrap(True)
        self.fallback_button = gui.button(
            box, self, "Embed locally this time",
            callback=self.embed_locally_this_time, autoDefault=False,
            toolTip=f"Embed with {get_embedder(LOCAL_FALLBACK).display_name} "
                    "once, keeping the chosen embedder for later runs")
        self.fallback_button.setVisible(False)
        self.cancel_button = gui.button(
            box, self, "Cancel", callback=self.cancel_embedding,
            autoDefault=False)
        self.cancel_button.setEnabled(False)

        gui.auto_apply(self.buttonsArea, self, "auto_apply")

        for label in (self.description_label, self.server_note,
                      self.download_note, self.status_label):
            label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        self.controlArea.setMinimumWidth(320)
        self.layout().setSizeConstraint(QLayout.SetFixedSize)
        self._update_embedder_info()

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
            self._apply_legacy_image_attr(columns)
            self.status_label.setText(f"{len(data)} rows; ready to embed.")
        self.commit.now()

    def _apply_legacy_image_attr(self, columns: list[Variable]) -> None:
        index = self.legacy_image_attr_index
        if index is None:
            return
        # the older add-on offered the same columns in the same order
        if 0 <= index < len(columns):
            self.image_attr = columns[index]
        self.legacy_image_attr_index = None

    # --- controls -----------------------------------------------------------

    def _on_image_attr_changed(self) -> None:
        self.commit.deferred()

    def _on_embedder_changed(self) -> None:
        self._update_embedder_info()
        self.Warning.unknown_embedder.clear()
        self.commit.deferred()

    def _on_server_changed(self) -> None:
        self._update_embedder_info()
        if not get_embedder(self.embedder).local:
            self.commit.deferred()

    def effective_server_url(self) -> str:
        """The address that server embedders send images to."""
        if self.own_server:
            return self.server_url.strip() or default_server_url()
        return public_server_url()

    def _update_embedder_info(self) -> None:
        spec = get_embedder(self.embedder)
        self.description_label.setText(spec.description)
        self.server_box.setVisible(not spec.local)
        self.server_edit.setEnabled(bool(self.own_server))
        url = self.effective_server_url()
        if not self.own_server and url == PUBLIC_SERVER_URL:
            self.server_note.setText(
                f"Your images leave this computer: they are sent over the "
                f"internet to Orange's public server at {url} to be "
                "embedded. To keep them here, choose an embedder marked "
                "(local).")
        else:
            # the server at that address is the user's choice; this
            # add-on's own server keeps vectors, never the images
            self.server_note.setText(
                f"Images are sent to {url} to be embedded (this add-on's "
                "embedding server keeps no copy of them).")
        self._update_download_box()

    def _update_download_box(self) -> None:
        spec = get_embedder(self.embedder)
        downloading = self._downloading is not None
        visible = downloading or weights_missing(spec.key)
        self.download_box.setVisible(visible)
        self.download_button.setEnabled(not downloading)
        if visible and not downloading:
            folder = weights_path(spec).parent
            self.download_note.setText(
                f"Its weights come from {_host(spec.weights.url or '')}.")
            self.download_button.setToolTip(
                f"Download {spec.weights.filename} into {folder}")

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
        self.Error.weights_missing.clear()
        self._downloading = key
        self._update_download_box()
        self.status_label.setText(
            f"Downloading the weights of {get_embedder(key).label}...")
        self.start(download, key)
        self._set_running(True)

    def embed_locally_this_time(self) -> None:
        """Embed once with the local default; the saved choice stays."""
        self._start(LOCAL_FALLBACK, fallback=True)

    def _clear_task_messages(self) -> None:
        # messages about the last run; those about the input and the saved
        # settings stay until those change
        self.Error.server_unreachable.clear()
        self.Error.embedder_unavailable.clear()
        self.Error.server_failed.clear()
        self.Error.download_failed.clear()
        self.Error.weights_missing.clear()
        self.Error.failed.clear()
        self.Warning.images_skipped.clear()
        self.Information.clear()
        self.fallback_button.setVisible(False)

    def _start(self, embedder_key: str, *, fallback: bool = False) -> None:
        self.cancel()
        self._downloading = None
        self._clear_task_messages()
        self._update_embedder_info()
        if self.data is None or self.image_attr is None:
            self._set_running(False)
            self._send(None, None)
            return
        if weights_missing(embedder_key):
            spec = get_embedder(embedder_key)
            self._set_running(False)
            self._send(None, None)
            self.Error.weights_missing(spec.display_name,
                                       weights_path(spec).name)
            self.status_label.setText("Waiting for the weights.")
            return
        self._running_embedder = embedder_key
        self._running_fallback = fallback
        self.status_label.setText(
            f"Embedding {len(self.data)} images with "
            f"{get_embedder(embedder_key).display_name}...")
        self.start(run, self.data, self.image_attr, embedder_key,
                   self.effective_server_url(),
                   embedder_factory=self.embedder_factory)
        self._set_running(True)

    def cancel_embedding(self) -> None:
        """Stop the running embedding or download; outputs are cleared."""
        if not self.cancel_button.isEnabled():
            return
        self.cancel()
        self._set_running(False)
        if self._downloading is not None:
            self._downloading = None
            self._update_download_box()
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

    def on_done(self, result: Result | Downloaded) -> None:
        self._set_running(False)
        if isinstance(result, Downloaded):
            self._downloading = None
            self._update_download_box()
            self.status_label.setText(
                f"Downloaded the weights of "
                f"{get_embedder(result.embedder).label}.")
            if result.embedder == self.embedder:
                # a task cannot start from on_done; embed (or, without
                # auto apply, mark as due) once this handler returns
                QTimer.singleShot(0, self.commit.deferred)
            return
        self._send(result.embedded, result.skipped)
        self.status_label.setText(
            f"{result.n_embedded} embedded, {result.n_skipped} skipped")
        if result.n_skipped:
            reasons = ", ".join(
                f"{reason} ({count})"
                for reason, count in result.skip_reasons[:MAX_REASONS_SHOWN])
            if len(result.skip_reasons) > MAX_REASONS_SHOWN:
                reasons += ", ..."
            noun = "image" if result.n_skipped == 1 else "images"
            self.Warning.images_skipped(f"{result.n_skipped} {noun}",
                                        reasons or "unknown reason")
        if not result.n_embedded and result.n_skipped \
                and not get_embedder(result.embedder).local:
            # e.g. a server that answers, but not with embeddings
            self.fallback_button.setVisible(True)
        # not when the user picked another embedder while this one ran
        if self._running_fallback and result.embedder != self.embedder:
            self.Information.local_this_time(
                get_embedder(result.embedder).display_name,
                get_embedder(self.embedder).display_name)

    def on_exception(self, ex: Exception) -> None:
        self._set_running(False)
        if self._downloading is not None:
            self._downloading = None
            self._update_download_box()
            if isinstance(ex, DownloadCancelled):
                self.Information.download_stopped()
                self.status_label.setText("Download stopped.")
            elif isinstance(ex, EmbedderUnavailable):
                # DownloadError, or no address to download from
                self.Error.download_failed(str(ex))
                self.status_label.setText("Download failed.")
            else:
                self.Error.failed(f"{type(ex).__name__}: {ex}", exc_info=ex)
                self.status_label.setText("Download failed.")
            return
        self._send(None, None)
        if isinstance(ex, EmbeddingCancelled):
            self.Information.cancelled()
            self.status_label.setText("Cancelled.")
        elif isinstance(ex, ServerUnreachable):
            url = self.effective_server_url()
            message = str(ex) or "connection failed"
            if url not in message:
                message = (f"Cannot reach the embedding server at {url}: "
                           f"{message}")
            self.Error.server_unreachable(
                message, get_embedder(LOCAL_FALLBACK).display_name)
            self.status_label.setText("The embedding server cannot be "
                                      "reached.")
            self.fallback_button.setVisible(True)
        elif isinstance(ex, EmbedderUnavailable):
            self.Error.embedder_unavailable(str(ex))
            self.status_label.setText("Embedder not available.")
            self.fallback_button.setVisible(self._ran_on_server())
            # a damaged weights file: a new download replaces it
            if self._running_embedder in LOCAL_COPIES:
                self.download_box.setVisible(True)
        elif isinstance(ex, EmbeddingError) and self._ran_on_server():
            # the server answered, but refused or talked nonsense
            self.Error.server_failed(
                self.effective_server_url(), str(ex) or type(ex).__name__,
                get_embedder(LOCAL_FALLBACK).display_name)
            self.status_label.setText("Embedding failed.")
            self.fallback_button.setVisible(True)
        else:
            self.Error.failed(f"{type(ex).__name__}: {ex}", exc_info=ex)
            self.status_label.setText("Embedding failed.")

    def _ran_on_server(self) -> bool:
        key = self._running_embedder or self.embedder
        return not get_embedder(key).local

    def on_partial_result(self, result: Any) -> None:
        pass  # run() reports only progress

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
        # version 2 sent images to server_url, or with none to the local
        # default server: keep that; the older add-on's workflows (below)
        # used Orange's public server, now the default
        if version == 2:
            settings.setdefault("own_server", True)
        # version 1 (or none): the older add-on's index-based settings
        if not version or version < 2:
            index = settings.pop("cb_embedder_current_id", None)
            if "embedder" not in settings and index is not None:
                settings["embedder"] = _legacy_embedder_key(index)
            index = settings.pop("cb_image_attr_current_id", None)
            if isinstance(index, int) and index >= 0:
                settings["legacy_image_attr_index"] = index
            if "_auto_apply" in settings:
                settings["auto_apply"] = bool(settings.pop("_auto_apply"))


def _host(url: str) -> str:
    return url.split("//", 1)[-1].split("/", 1)[0]


def _legacy_embedder_key(value: Any) -> Any:
    """Key of the embedder that an old workflow chose by index (or key)."""
    if isinstance(value, str):
        return value  # a key already; unknown keys are reported on load
    try:
        index = int(value)
    except (TypeError, ValueError):
        return DEFAULT_EMBEDDER
    # -1 is a combo with nothing selected, not the last embedder
    if not 0 <= index < len(LEGACY_ORDER):
        return DEFAULT_EMBEDDER
    return LEGACY_ORDER[index]


def _preview_data() -> Table:
    """The two photos that scikit-learn ships, as an image table."""
    import numpy as np
    import sklearn.datasets
    from Orange.data import Domain

    folder = os.path.join(os.path.dirname(sklearn.datasets.__file__),
                          "images")
    image = StringVariable("image")
    image.attributes.update(type="image", origin=folder)
    names = np.array([["china.jpg"], ["flower.jpg"]], dtype=object)
    return Table.from_numpy(Domain([], metas=[image]),
                            np.empty((2, 0)), metas=names)


if __name__ == "__main__":  # pragma: no cover
    WidgetPreview(OWImageEmbedding).run(_preview_data())
