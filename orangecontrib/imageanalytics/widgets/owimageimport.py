"""Import Images widget: a folder of images (and its sub-folders) → Table."""
from __future__ import annotations

import os

from AnyQt.QtCore import QSize, Qt
from AnyQt.QtGui import QBrush, QDragEnterEvent, QDropEvent
from AnyQt.QtWidgets import (
    QComboBox,
    QFileDialog,
    QSizePolicy,
    QStyle,
)
from Orange.data import Table
from Orange.widgets import gui
from Orange.widgets.settings import Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.filedialogs import RecentPath
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Msg, Output, OWWidget
from orangewidget.utils.filedialogs import unambiguous_paths

from orangecontrib.imageanalytics.counts_text import plural, reasons_text
from orangecontrib.imageanalytics.import_images import (
    ImportCancelled,
    ImportResult,
    run,
)

__all__ = ["OWImportImages"]

#: How many skipped files the summary's tooltip lists.
MAX_FILES_SHOWN = 20


def summary_text(result: ImportResult) -> str:
    """'N images / K categories, S skipped'."""
    return (f"{plural(result.n_images, 'image')} / "
            f"{plural(result.n_categories, 'category', 'categories')}, "
            f"{result.n_skipped} skipped")


def _local_folder(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The folder dragged onto the widget, if it is one local folder."""
    mime = event.mimeData()
    if not mime.hasUrls() or len(mime.urls()) != 1:
        return None
    url = mime.urls()[0]
    if not url.isLocalFile():
        return None
    path = url.toLocalFile()
    return path if os.path.isdir(path) else None


class OWImportImages(OWWidget, ConcurrentWidgetMixin):
    name = "Import Images"
    description = "Import images from a folder and its sub-folders."
    icon = "icons/ImportImages.svg"
    priority = 110
    keywords = "import images, load, folder, photos, pictures"

    class Outputs:
        data = Output("Data", Table,
                      doc="One row per image, with its category.")

    want_main_area = False
    resizing_enabled = False

    MAX_RECENT_PATHS = 15

    #: Most recent first; stored as RecentPath so that a workflow keeps its
    #: folder when it is moved together with the folder (path relative to
    #: the workflow's directory).
    recent_paths: list[RecentPath] = Setting([])

    class Information(OWWidget.Information):
        cancelled = Msg("Import cancelled.")

    class Warning(OWWidget.Warning):
        skipped = Msg("{} skipped: {}.")
        no_images = Msg("No images in '{}'.")

    class Error(OWWidget.Error):
        missing_folder = Msg("Folder '{}' was not found.")
        failed = Msg("Import failed: {}")

    def __init__(self) -> None:
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self._result: ImportResult | None = None
        self.setAcceptDrops(True)

        box = gui.vBox(self.controlArea, "Folder")
        row = gui.hBox(box)
        self.folder_combo = QComboBox(
            sizeAdjustPolicy=QComboBox.AdjustToMinimumContentsLengthWithIcon,
            minimumContentsLength=20)
        self.folder_combo.setSizePolicy(QSizePolicy.Expanding,
                                        QSizePolicy.Fixed)
        self.folder_combo.activated[int].connect(self._select_recent)
        row.layout().addWidget(self.folder_combo)
        self.browse_button = gui.button(
            row, self, "…", callback=self.browse, autoDefault=False,
            toolTip="Choose a folder", width=30)
        self.browse_button.setIcon(
            self.style().standardIcon(QStyle.SP_DirOpenIcon))
        self.browse_button.setIconSize(QSize(16, 16))
        self.browse_button.setText("")

        row = gui.hBox(box)
        self.reload_button = gui.button(
            row, self, "Reload", callback=self.reload, autoDefault=False,
            toolTip="Scan the folder again")
        self.cancel_button = gui.button(
            row, self, "Cancel", callback=self.cancel_import,
            autoDefault=False, enabled=False)

        box = gui.vBox(self.controlArea, "Info")
        self.summary_label = gui.widgetLabel(box, "No folder selected.")
        self.summary_label.setWordWrap(True)

        self.recent_paths = self._relocated(self.recent_paths)
        self._update_combo()
        if self.recent_paths:
            self.start_import()

    # --- recent folders -------------------------------------------------

    def _search_paths(self, basedir: str | None = None
                      ) -> list[tuple[str, str]]:
        basedir = basedir or self.workflowEnv().get("basedir")
        return [("basedir", basedir)] if basedir else []

    def _relocated(self, paths: list[RecentPath],
                   basedir: str | None = None) -> list[RecentPath]:
        """Paths re-resolved against the workflow's directory.

        A path stored as relative to the workflow ('basedir') wins over its
        absolute path, so that a workflow moved with its folder finds it.
        """
        search_paths = self._search_paths(basedir)
        relocated = []
        for recent in paths:
            found = recent.resolve(search_paths)
            path = found.abspath if found is not None \
                else recent.search(search_paths)
            relocated.append(recent if path is None
                             else RecentPath.create(path, search_paths))
        return relocated

    def workflowEnvChanged(self, key, value, oldvalue):
        # a workflow saved elsewhere stores its folders relative to there
        if key == "basedir":
            self.recent_paths = self._relocated(self.recent_paths, value)
            self._update_combo()

    def _update_combo(self) -> None:
        combo = self.folder_combo
        combo.clear()
        if not self.recent_paths:
            combo.addItem("(none)")
            combo.model().item(0).setEnabled(False)
            self.reload_button.setEnabled(False)
            return
        names = unambiguous_paths([r.abspath for r in self.recent_paths])
        for i, (recent, name) in enumerate(zip(self.recent_paths, names)):
            combo.addItem(name)
            combo.setItemData(i, recent.abspath, Qt.ToolTipRole)
            if not os.path.isdir(recent.abspath):
                combo.setItemData(i, QBrush(Qt.red), Qt.ForegroundRole)
        combo.setCurrentIndex(0)
        self.reload_button.setEnabled(True)

    @property
    def result(self) -> ImportResult | None:
        """The last finished import (``None`` when there is none)."""
        return self._result

    def current_folder(self) -> str | None:
        """The folder shown in the combo (the most recent one)."""
        return self.recent_paths[0].abspath if self.recent_paths else None

    def set_folder(self, path: str) -> None:
        """Make `path` the current folder and import it."""
        recent = RecentPath.create(path, self._search_paths())
        if recent in self.recent_paths:
            self.recent_paths.remove(recent)
        self.recent_paths.insert(0, recent)
        del self.recent_paths[self.MAX_RECENT_PATHS:]
        self._update_combo()
        self.start_import()

    def _select_recent(self, index: int) -> None:
        if 0 <= index < len(self.recent_paths):
            self.recent_paths.insert(0, self.recent_paths.pop(index))
            self._update_combo()
            self.start_import()

    def browse(self) -> None:
        """Choose a folder with a dialog."""
        start = self.current_folder() or os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(
            self, "Select a folder with images", start)
        if path:
            self.set_folder(path)

    def reload(self) -> None:
        """Scan the current folder again."""
        self.start_import()

    # --- scanning ----------------------------------------------------------

    def _clear_messages(self) -> None:
        self.Information.clear()
        self.Warning.clear()
        self.Error.clear()

    def start_import(self) -> None:
        """Scan the current folder in a worker thread."""
        self.cancel()
        self.cancel_button.setEnabled(False)
        self._clear_messages()
        folder = self.current_folder()
        if folder is None:
            return
        if not os.path.isdir(folder):
            self._set_result(None)
            self.summary_label.setText("Folder not found.")
            self.Error.missing_folder(folder)
            return
        self.summary_label.setText("Scanning…")
        self.summary_label.setToolTip("")
        self.cancel_button.setEnabled(True)
        self.start(run, folder)

    def cancel_import(self) -> None:
        """Stop the scan; the output is cleared."""
        if self.task is None:
            return
        self.cancel()
        self.cancel_button.setEnabled(False)
        self._set_result(None)
        self.summary_label.setText("Cancelled.")
        self.Information.cancelled()

    def on_partial_result(self, result) -> None:
        pass

    def on_done(self, result: ImportResult) -> None:
        self.cancel_button.setEnabled(False)
        self._set_result(result)
        self.summary_label.setText(summary_text(result))
        self.summary_label.setToolTip(
            "\n".join(f"{s.path}: {s.reason}"
                      for s in result.skipped[:MAX_FILES_SHOWN])
            + ("\n…" if result.n_skipped > MAX_FILES_SHOWN else ""))
        self.Warning.skipped(
            plural(result.n_skipped, "file"), reasons_text(result.skip_reasons()),
            shown=result.n_skipped > 0)
        self.Warning.no_images(result.folder, shown=result.n_images == 0)

    def on_exception(self, ex: Exception) -> None:
        self.cancel_button.setEnabled(False)
        self._set_result(None)
        if isinstance(ex, ImportCancelled):
            self.summary_label.setText("Cancelled.")
            self.Information.cancelled()
        elif isinstance(ex, (NotADirectoryError, FileNotFoundError)):
            self.summary_label.setText("Folder not found.")
            self.Error.missing_folder(self.current_folder())
        else:
            self.summary_label.setText("Import failed.")
            self.Error.failed(str(ex) or type(ex).__name__, exc_info=ex)

    def _set_result(self, result: ImportResult | None) -> None:
        self._result = result
        self.Outputs.data.send(result.table if result is not None else None)

    # --- drag and drop ---------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_folder(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _local_folder(event)
        if path is not None:
            event.acceptProposedAction()
            self.set_folder(path)

    # --- lifecycle and report ------------------------------------------

    def onDeleteWidget(self) -> None:
        self.shutdown()
        super().onDeleteWidget()

    def send_report(self) -> None:
        folder = self.current_folder()
        if folder is None:
            return
        items = [("Folder", folder)]
        if self._result is not None:
            items.append(("Summary", summary_text(self._result)))
            if self._result.n_skipped:
                items.append(("Skipped", reasons_text(self._result.skip_reasons())))
        self.report_items(items)


if __name__ == "__main__":  # pragma: no cover
    import sys

    def _preview_widget() -> OWImportImages:
        widget = OWImportImages()
        if len(sys.argv) > 1:
            widget.set_folder(sys.argv[1])
        return widget

    WidgetPreview(_preview_widget).run()
