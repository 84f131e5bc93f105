"""Save Images widget: write the images of a table into one folder per category."""
from __future__ import annotations

import os
import threading
from typing import Any

from AnyQt.QtCore import Qt
from AnyQt.QtWidgets import QFileDialog, QLayout, QSizePolicy
from Orange.data import DiscreteVariable, Table, Variable
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, DomainContextHandler, Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin, TaskState
from Orange.widgets.utils.itemmodels import PyListModel, VariableListModel
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Input, Msg, OWWidget

from orangecontrib.imageanalytics.counts_text import plural, reasons_text
from orangecontrib.imageanalytics.embedders.registry import LEGACY_ORDER
from orangecontrib.imageanalytics.save_images import (
    FORMATS,
    KEEP_FORMAT,
    SCALE_SIZES,
    SaveReport,
    folder_columns,
    save_images,
)
from orangecontrib.imageanalytics.table_images import image_columns

__all__ = ["OWSaveImages", "run"]

FORMAT_LABELS = {KEEP_FORMAT: "Keep each image's format", "png": "PNG",
                 "jpg": "JPEG", "gif": "GIF", "tiff": "TIFF", "pdf": "PDF",
                 "bmp": "BMP", "eps": "EPS", "ico": "ICO", "webp": "WebP"}
SCALE_LABELS = {key: f"{label} ({w}×{h})" for key, label, (w, h) in SCALE_SIZES}
_SIZES = {key: size for key, _, size in SCALE_SIZES}


def run(data: Table, target: str, options: dict[str, Any], stop: threading.Event,
        state: TaskState) -> SaveReport:
    """Save the images of ``data`` into ``target``; runs in a worker thread.

    ``options`` are :func:`~orangecontrib.imageanalytics.save_images.save_images`'s
    keyword arguments; the save stops between rows once ``stop`` is set or
    the task is cancelled.
    """
    def progress(done: int, total: int) -> None:
        state.set_progress_value(100 * done / max(total, 1))

    return save_images(
        data, target, **options, progress=progress,
        should_stop=lambda: stop.is_set() or state.is_interruption_requested())


class _LabelledModel(PyListModel):
    """Keys shown by their labels."""

    def __init__(self, labels: dict[str, str]):
        super().__init__(list(labels))
        self._labels = labels

    def data(self, index, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and self._is_index_valid(index):
            return self._labels[self[index.row()]]
        return super().data(index, role)


class OWSaveImages(OWWidget, ConcurrentWidgetMixin):
    name = "Save Images"
    description = "Save images in the directory structure."
    icon = "icons/SaveImages.svg"
    priority = 170
    keywords = ("save images", "save", "images")

    class Inputs:
        data = Input("Data", Table, id="data")

    want_main_area = False
    resizing_enabled = False

    settings_version = 3
    settingsHandler = DomainContextHandler()
    image_attr: Variable | None = ContextSetting(None)
    #: the categorical column whose values name the folders; None: no folders
    folders_by: DiscreteVariable | None = ContextSetting(None)
    last_dir: str = Setting("")
    dirname: str = Setting("", schema_only=True)
    auto_save: bool = Setting(False)
    use_scale: bool = Setting(False)
    scale_embedder: str = Setting(LEGACY_ORDER[0])
    keep_aspect: bool = Setting(False)
    file_format: str = Setting(KEEP_FORMAT)
    #: image column index from a workflow of the older add-on; it can only be
    #: resolved when data arrives, then it is dropped
    legacy_image_attr_index: int | None = Setting(None, schema_only=True)

    class Information(OWWidget.Information):
        stopped = Msg("Saving stopped; the images saved so far are kept. "
                      "Press \"Resume save\" to save the rest.")

    class Warning(OWWidget.Warning):
        images_skipped = Msg("{} not saved: {}.")

    class Error(OWWidget.Error):
        no_file_name = Msg("Directory name is not set.")
        no_image_attr = Msg("Data does not have any image attribute.")
        save_failed = Msg("{}")
        failed = Msg("Saving failed: {}")

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Table | None = None
        self._stop = threading.Event()
        self._running = False
        # the last save stopped before it finished; "Resume save" continues it
        self._resumable = False
        #: what the last finished (or stopped) save did
        self.last_report: SaveReport | None = None
        if self.file_format not in FORMAT_LABELS:
            self.file_format = KEEP_FORMAT
        if self.scale_embedder not in _SIZES:
            self.scale_embedder = LEGACY_ORDER[0]

        box = gui.vBox(self.controlArea, "Images")
        self.image_attr_model = VariableListModel()
        gui.comboBox(box, self, "image_attr", label="Image column:",
                     orientation=Qt.Horizontal, model=self.image_attr_model,
                     callback=self._on_option_changed)
        self.folders_model = VariableListModel(placeholder="(none)")
        gui.comboBox(box, self, "folders_by", label="Folders by:",
                     orientation=Qt.Horizontal, model=self.folders_model,
                     callback=self._on_option_changed,
                     tooltip="One folder for each value of this column: the class, "
                             "a group marked in Image Grid, a predicted class, ...")

        box = gui.vBox(self.controlArea, "Format")
        gui.comboBox(box, self, "file_format", label="File format:",
                     orientation=Qt.Horizontal, model=_LabelledModel(FORMAT_LABELS),
                     callback=self._on_option_changed)
        row = gui.hBox(box)
        gui.checkBox(row, self, "use_scale", "Scale images to",
                     callback=self._on_scale_changed)
        self.scale_combo = gui.comboBox(
            row, self, "scale_embedder", model=_LabelledModel(SCALE_LABELS),
            callback=self._on_option_changed)
        self.keep_aspect_check = gui.checkBox(
            box, self, "keep_aspect", "Keep the aspect ratio (fit inside the size)",
            callback=self._on_option_changed)
        self._on_scale_changed(commit=False)

        box = gui.vBox(self.controlArea, "Folder")
        self.folder_label = gui.widgetLabel(box, "")
        self.folder_label.setWordWrap(True)
        self.status_label = gui.widgetLabel(box, "No data.")
        self.status_label.setWordWrap(True)
        for label in (self.folder_label, self.status_label):
            label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)

        gui.checkBox(self.controlArea, self, "auto_save",
                     "Autosave when receiving new data or settings change",
                     callback=self._on_auto_save_changed)
        buttons = gui.hBox(self.controlArea)
        self.save_button = gui.button(buttons, self, "Save", callback=self.save_or_stop,
                                      autoDefault=False)
        self.save_as_button = gui.button(buttons, self, "Save as ...", callback=self.save_as,
                                         autoDefault=False)
        self.controlArea.setMinimumWidth(340)
        self.layout().setSizeConstraint(QLayout.SetFixedSize)
        self._update_folder_label()
        self._update_buttons()

    # --- inputs -------------------------------------------------------------

    @Inputs.data
    def set_data(self, data: Table | None) -> None:
        self._cancel_running()
        self.closeContext()
        self.Error.no_image_attr.clear()
        self._clear_result_messages()
        self._resumable = False
        self.data = data
        columns = image_columns(data)
        self.image_attr_model[:] = columns
        self.folders_model[:] = [None, *folder_columns(data)]
        self.image_attr = columns[0] if columns else None
        class_var = data.domain.class_var if data is not None else None
        # as the older add-on: folders by the class, when it is categorical
        self.folders_by = class_var if isinstance(class_var, DiscreteVariable) else None
        if data is None:
            self.status_label.setText("No data.")
        elif not columns:
            self.Error.no_image_attr()
            self.status_label.setText("No image column.")
        else:
            self.openContext(data)
            self._apply_legacy_image_attr(columns)
            self.status_label.setText(f"{len(data)} images to save.")
        self._update_buttons()
        if self.auto_save:
            self._autosave()

    def _apply_legacy_image_attr(self, columns: list[Variable]) -> None:
        index = self.legacy_image_attr_index
        if index is None:
            return
        # the older add-on offered the same columns in the same order
        if isinstance(index, int) and 0 <= index < len(columns):
            self.image_attr = columns[index]
        self.legacy_image_attr_index = None

    # --- controls -----------------------------------------------------------

    def _on_scale_changed(self, commit: bool = True) -> None:
        self.scale_combo.setEnabled(self.use_scale)
        self.keep_aspect_check.setEnabled(self.use_scale)
        if commit:
            self._on_option_changed()

    def _on_option_changed(self) -> None:
        self._resumable = False
        self._update_buttons()
        if self.auto_save:
            self._autosave()

    def _on_auto_save_changed(self) -> None:
        self.Error.no_file_name.clear()
        if self.auto_save:
            self._autosave()

    def _autosave(self) -> None:
        if self.data is None or self.image_attr is None:
            return
        if not self.dirname:
            self.Error.no_file_name()
            return
        self.save()

    def _update_folder_label(self) -> None:
        if self.dirname:
            # the box is titled "Folder"; "Saving into" read as a save running
            self.folder_label.setText(_short_path(self.dirname))
            self.folder_label.setToolTip(self.dirname)
        else:
            self.folder_label.setText("No folder chosen yet: press \"Save as ...\".")

    def _update_buttons(self) -> None:
        if self._running:
            self.save_button.setText("Stop")
            self.save_button.setEnabled(True)
        else:
            self.save_button.setText("Resume save" if self._resumable else "Save")
            self.save_button.setEnabled(self.data is not None and self.image_attr is not None)
        self.save_as_button.setEnabled(not self._running)

    # --- saving -------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``save_images`` for the current settings."""
        return {
            "image_column": self.image_attr,
            "folders_by": self.folders_by,
            "format": self.file_format,
            "size": _SIZES[self.scale_embedder] if self.use_scale else None,
            "keep_aspect": bool(self.use_scale and self.keep_aspect),
        }

    def save_or_stop(self) -> None:
        """The Save button: Save, Stop while saving, Resume save after a stop."""
        if self._running:
            self.stop()
        elif not self.dirname:
            self.save_as()
        else:
            self.save()

    def choose_folder(self) -> str:
        """Ask for a folder; an empty string when the user cancels."""
        start = self.dirname or self.last_dir or os.path.expanduser("~")
        return QFileDialog.getExistingDirectory(self, "Save images into folder", start)

    def save_as(self) -> None:
        folder = self.choose_folder()
        if not folder:
            return
        self.dirname = folder
        self.last_dir = os.path.dirname(os.path.normpath(folder)) or folder
        self.Error.no_file_name.clear()
        self._resumable = False
        self._update_folder_label()
        self.save()

    def save(self) -> None:
        """Save the images into the chosen folder, in a worker thread."""
        if self.data is None or self.image_attr is None or not self.dirname:
            return
        self._cancel_running()
        self._clear_result_messages()
        self.Error.no_file_name.clear()
        self._stop = threading.Event()
        self._running = True
        self.status_label.setText(
            f"Saving {len(self.data)} images into {_short_path(self.dirname)} ...")
        self.start(run, self.data, self.dirname, self.options(), self._stop)
        self._update_buttons()

    def stop(self) -> None:
        """Stop after the image being written; what is saved stays."""
        self._stop.set()
        self.status_label.setText("Stopping ...")
        self.save_button.setEnabled(False)

    def _cancel_running(self) -> None:
        if self._running:
            self._stop.set()
            self.cancel()
            self._running = False

    def _clear_result_messages(self) -> None:
        self.Information.stopped.clear()
        self.Warning.images_skipped.clear()
        self.Error.save_failed.clear()
        self.Error.failed.clear()

    def on_done(self, report: SaveReport) -> None:
        self._running = False
        self.last_report = report
        self.status_label.setText(report.summary(into=_short_path(report.target)))
        self.status_label.setToolTip(_skipped_tooltip(report))
        if report.skipped:
            self.Warning.images_skipped(plural(len(report.skipped), "image"),
                                        reasons_text(report.skip_reasons()))
        if report.error:
            self.Error.save_failed(report.error)
        self._resumable = not report.finished
        if report.cancelled:
            self.Information.stopped()
        self._update_buttons()

    def on_exception(self, ex: Exception) -> None:
        self._running = False
        self.Error.failed(f"{type(ex).__name__}: {ex}", exc_info=ex)
        self.status_label.setText("Saving failed.")
        self._update_buttons()

    def on_partial_result(self, result: Any) -> None:
        pass  # run() reports only progress

    def onDeleteWidget(self) -> None:
        self._stop.set()
        self.shutdown()
        super().onDeleteWidget()

    def send_report(self) -> None:
        items = [("Folder", self.dirname or "not chosen")]
        if self.image_attr is not None:
            items.append(("Image column", self.image_attr.name))
        items.append(("Folders by", self.folders_by.name if self.folders_by else "none"))
        items.append(("Format", FORMAT_LABELS[self.file_format]))
        if self.use_scale:
            scale = SCALE_LABELS[self.scale_embedder]
            items.append(("Scaled to", scale + (", aspect ratio kept" if self.keep_aspect
                                                else "")))
        self.report_items(items)
        self.report_paragraph("Result", self.status_label.text())

    # --- old workflows ------------------------------------------------------

    @classmethod
    def migrate_settings(cls, settings: dict, version: int | None) -> None:
        # version 1 (or none): the older add-on stored positions in its combos
        if not version or version < 2:
            index = settings.pop("file_format_index", None)
            if "file_format" not in settings:
                settings["file_format"] = _legacy_item(FORMATS[:8], index)
            index = settings.pop("scale_index", None)
            if "scale_embedder" not in settings:
                settings["scale_embedder"] = _legacy_item(LEGACY_ORDER, index)
            index = settings.pop("image_attr_current_index", None)
            if isinstance(index, int) and index >= 0:
                settings["legacy_image_attr_index"] = index
        # version 2 (and the older add-on) saved as PNG by default; what a
        # workflow had then stays what it gets
        if not version or version < 3:
            settings.setdefault("file_format", FORMATS[0])


def _short_path(path: str) -> str:
    """``path`` with the home folder written as ``~``."""
    home = os.path.expanduser("~")
    if home and path.startswith(home.rstrip(os.sep) + os.sep):
        return "~" + path[len(home.rstrip(os.sep)):]
    return path


def _legacy_item(items: tuple[str, ...], index: Any) -> str:
    try:
        index = int(index)
    except (TypeError, ValueError):
        return items[0]
    return items[index] if 0 <= index < len(items) else items[0]


def _skipped_tooltip(report: SaveReport, limit: int = 20) -> str:
    lines = [f"{skip.source or f'row {skip.row + 1}'}: {skip.reason}"
             for skip in report.skipped[:limit]]
    if len(report.skipped) > limit:
        lines.append(f"... and {len(report.skipped) - limit} more")
    return "\n".join(lines)


def _preview_data() -> Table:
    """The two photos that scikit-learn ships, as an image table with a class."""
    import numpy as np
    import sklearn.datasets
    from Orange.data import Domain, StringVariable

    folder = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    image = StringVariable("image")
    image.attributes.update(type="image", origin=folder)
    kind = DiscreteVariable("kind", values=["city", "flower"])
    return Table.from_numpy(Domain([], kind, metas=[image]), np.empty((2, 0)),
                            np.array([0, 1]),
                            metas=np.array([["china.jpg"], ["flower.jpg"]], dtype=object))


if __name__ == "__main__":  # pragma: no cover
    WidgetPreview(OWSaveImages).run(_preview_data())
