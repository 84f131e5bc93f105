"""Image Viewer widget: thumbnails of the images a table refers to.

The view is one QListView over :class:`ImageListModel`, which creates
nothing per row when data arrive; thumbnails are made off the GUI thread by
a :class:`ThumbnailLoader`, the visible ones first.
"""

from __future__ import annotations

import gc

import numpy as np
from AnyQt.QtCore import QEvent, QSize, Qt, QTimer
from AnyQt.QtGui import QKeyEvent
from AnyQt.QtWidgets import QApplication, QLabel
from Orange.data import StringVariable, Table, Variable
from Orange.widgets import gui
from Orange.widgets.report.report import get_html_img
from Orange.widgets.settings import (
    ContextSetting,
    DomainContextHandler,
    IncompatibleContext,
    Setting,
)
from Orange.widgets.utils.annotated_data import (
    ANNOTATED_DATA_SIGNAL_NAME,
    lazy_annotated_table,
)
from Orange.widgets.utils.itemmodels import DomainModel
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.imageanalytics.counts_text import (
    count_reasons,
    plural,
    reasons_text,
)
from orangecontrib.imageanalytics.table_images import (
    image_columns,
    is_image_marked,
    origin_of,
)
from orangecontrib.imageanalytics.widgets.utils.fling import FlingPause
from orangecontrib.imageanalytics.widgets.utils.image_list import (
    ImageListModel,
    ThumbnailDelegate,
    ValueRole,
)
from orangecontrib.imageanalytics.widgets.utils.image_list_view import ImageListView
from orangecontrib.imageanalytics.widgets.utils.preview import ImagePreview
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader
from orangecontrib.imageanalytics.widgets.utils.zoom import CtrlWheelZoom

__all__ = ["OWImageViewer"]

MIN_SIZE, MAX_SIZE, SIZE_STEP = 32, 1024, 16
_ARROWS = (Qt.Key_Left, Qt.Key_Right, Qt.Key_Up, Qt.Key_Down)


def default_image_attr(domain) -> StringVariable | None:
    """The first string variable with type=image, else the first string one."""
    columns = image_columns(domain, any_string=True)
    return columns[0] if columns else None


def default_title_attr(domain, image_attr) -> Variable | None:
    """The class variable, else a string variable that is not the image's."""
    if domain.class_var is not None:
        return domain.class_var
    for var in domain.variables + domain.metas:
        if var.is_string and var is not image_attr and not is_image_marked(var):
            return var
    return None


class OWImageViewer(OWWidget):
    name = "Image Viewer"
    description = "View images referred to in the data."
    icon = "icons/ImageViewer.svg"
    priority = 130
    keywords = "image viewer, viewer, image"
    replaces = ["Orange.widgets.data.owimageviewer.OWImageViewer"]

    class Inputs:
        data = Input("Data", Table)

    class Outputs:
        selected_data = Output("Selected Images", Table)
        data = Output(ANNOTATED_DATA_SIGNAL_NAME, Table)

    graph_name = "view"  # save image of the thumbnails

    settingsHandler = DomainContextHandler()
    settings_version = 2
    image_attr: StringVariable | None = ContextSetting(None)
    title_attr: Variable | None = ContextSetting(None)
    selected_items: set = ContextSetting(set(), schema_only=True)
    imageSize: int = Setting(100)
    autoCommit: bool = Setting(True)

    class Information(OWWidget.Information):
        missing_values = Msg("{} without an image value.")

    class Warning(OWWidget.Warning):
        not_shown = Msg("{} could not be shown: {}.")

    class Error(OWWidget.Error):
        no_image_attr = Msg("Data does not contain any variables with image file "
                            "names or URLs.")

    def __init__(self):
        super().__init__()
        self.data: Table | None = None
        self._selection_rows: list[int] = []

        self.image_model = DomainModel(valid_types=(StringVariable,))
        self.title_model = DomainModel(placeholder="(None)", valid_types=(Variable,))
        box = gui.vBox(self.controlArea, "Images")
        gui.comboBox(box, self, "image_attr", label="Image column:",
                     model=self.image_model, callback=self._on_image_attr_changed)
        gui.comboBox(box, self, "title_attr", label="Title:",
                     model=self.title_model, callback=self._on_title_changed)
        zoom = gui.vBox(self.controlArea, "Zoom")
        gui.hSlider(zoom, self, "imageSize", minValue=MIN_SIZE, maxValue=MAX_SIZE,
                    step=SIZE_STEP, createLabel=False, callback=self._on_zoom)
        self.info_label = QLabel(wordWrap=True)
        gui.vBox(self.controlArea, "Info").layout().addWidget(self.info_label)
        gui.rubber(self.controlArea)
        gui.auto_send(self.buttonsArea, self, "autoCommit")

        self.loader = ThumbnailLoader(self)
        self.model = ImageListModel(self.loader, self)
        self.model.set_size(self.imageSize)
        self.delegate = ThumbnailDelegate(self)
        self.delegate.set_size(self.imageSize)
        self.view = ImageListView()
        self.view.setItemDelegate(self.delegate)
        self.view.setModel(self.model)
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.view.selectionModel().currentChanged.connect(self._on_current_changed)
        self.view.installEventFilter(self)
        self.view.verticalScrollBar().valueChanged.connect(self._schedule_retain)
        self._fling = FlingPause(self.view.verticalScrollBar(), self.loader, self)
        self._wheel_zoom = CtrlWheelZoom(
            self.view.viewport(), lambda: self.imageSize, self._set_zoom,
            MIN_SIZE, MAX_SIZE, SIZE_STEP, self)
        self.mainArea.layout().addWidget(self.view)

        self.preview = ImagePreview(self)
        self.preview.navigate.connect(self._on_preview_navigate)

        self._retain_timer = QTimer(self, singleShot=True, interval=40,
                                    timeout=self._retain_visible)
        self._info_timer = QTimer(self, singleShot=True, interval=250,
                                  timeout=self._update_info)
        self.model.thumbnailChanged.connect(self._on_thumbnail_changed)
        self._update_info()

    def sizeHint(self) -> QSize:
        return QSize(900, 600)

    # ------------------------------------------------------------ input

    @Inputs.data
    def set_data(self, data: Table | None) -> None:
        self.closeContext()
        self.clear()
        self.data = data
        if data is not None:
            domain = data.domain
            self.image_model.set_domain(domain)
            self.title_model.set_domain(domain)
            self.image_attr = default_image_attr(domain)
            if self.image_attr is None:
                self.Error.no_image_attr()
                self.data = None
            else:
                self.title_attr = default_title_attr(domain, self.image_attr)
                self.openContext(domain)
                self._show_column()
                self._restore_selection()
                # Scrolling a long table adds bookkeeping for every row seen,
                # which triggers full garbage collections; each one scanned
                # every object of the canvas process (~180 ms at 50,000 rows,
                # the longest freeze while scrolling). Objects alive now are
                # moved out of the collector's sight; they are still freed by
                # reference counting, and later objects are collected as ever.
                gc.freeze()
        self.commit.now()

    def clear(self) -> None:
        self.Error.clear()
        self.Information.clear()
        self.Warning.clear()
        self.loader.clear()
        self.model.set_column(None, None)
        self.image_model.set_domain(None)
        self.title_model.set_domain(None)
        self.image_attr = self.title_attr = None
        self.selected_items = set()
        self._selection_rows = []
        self.preview.close()
        self._update_info()

    def _column(self, var) -> np.ndarray | None:
        if var is None or self.data is None:
            return None
        return self.data.get_column(var)

    def _show_column(self) -> None:
        self.model.set_column(self._column(self.image_attr), origin_of(self.image_attr),
                              self._column(self.title_attr), self.title_attr)
        missing = self.model.missing_count()
        self.Information.missing_values(plural(missing, "row"), shown=missing > 0)
        self._update_info()
        self._schedule_retain()

    def _on_image_attr_changed(self) -> None:
        self.selected_items = set()
        self._show_column()
        self.commit.deferred()

    def _on_title_changed(self) -> None:
        self.model.set_titles(self._column(self.title_attr), self.title_attr)

    def _set_zoom(self, size: int) -> None:
        self.imageSize = size  # moves the slider
        self._on_zoom()

    def _on_zoom(self) -> None:
        self.model.set_size(self.imageSize)
        self.delegate.set_size(self.imageSize)
        self.view.doItemsLayout()
        self.view.viewport().update()
        self._schedule_retain()

    # ------------------------------------------------------------ loading

    def _schedule_retain(self) -> None:
        # at most every 40 ms while the view scrolls (restarting the timer
        # on every move would let requests pile up during a long scroll)
        if not self._retain_timer.isActive():
            self._retain_timer.start()

    def _retain_visible(self) -> None:
        # rows that scrolled away stop waiting for a worker
        self.loader.retain_only(self.view.visible_rows())

    def _on_thumbnail_changed(self, row: int) -> None:
        self.view.update(self.model.index(row))
        if not self._info_timer.isActive():
            self._info_timer.start()

    def _update_info(self) -> None:
        if self.data is None:
            self.info_label.setText("No data.")
            self.Warning.not_shown.clear()
            return
        n = len(self.model.values)
        failures = self.model.failures()
        text = f"{plural(n, 'image')}"
        if failures:
            text += f", {len(failures):,} could not be shown"
            reasons = reasons_text(count_reasons(failures.values()))
            self.Warning.not_shown(plural(len(failures), "image"), reasons)
        else:
            self.Warning.not_shown.clear()
        if self._selection_rows:
            text += f"\n{len(self._selection_rows):,} selected"
        self.info_label.setText(text)

    # ------------------------------------------------------------ selection

    def _on_selection_changed(self, *_) -> None:
        # ranges, not indexes: Ctrl+A on 50,000 rows stays instant
        rows = sorted({row for rng in self.view.selectionModel().selection()
                       for row in range(rng.top(), rng.bottom() + 1)})
        self._selection_rows = rows
        values = self.model.values
        self.selected_items = {str(values[r]) for r in rows
                               if values[r] is not None and str(values[r])}
        self._update_info()
        self.commit.deferred()

    def _restore_selection(self) -> None:
        if not self.selected_items:
            return
        wanted = self.selected_items
        self.view.select_rows(i for i, value in enumerate(self.model.values)
                              if value is not None and str(value) in wanted)

    def select_rows(self, rows) -> None:
        """Select these rows (as a click or rubber band would)."""
        self.view.select_rows(rows)

    @gui.deferred
    def commit(self) -> None:
        if self.data is None:
            self.Outputs.selected_data.send(None)
            self.Outputs.data.send(None)
            return
        rows = self._selection_rows
        self.Outputs.selected_data.send(self.data[rows] if rows else None)
        # made only when a linked widget asks: with 50,000 rows of features the
        # annotated copy held the GUI thread for a quarter of a second
        self.Outputs.data.send(lazy_annotated_table(self.data, rows))

    # ------------------------------------------------------------ preview

    def eventFilter(self, obj, event) -> bool:
        if obj is self.view and event.type() == QEvent.KeyPress \
                and event.key() == Qt.Key_Space and not event.modifiers():
            self.toggle_preview()
            return True
        return super().eventFilter(obj, event)

    def toggle_preview(self) -> None:
        if self.preview.isVisible():
            self.preview.close()
        else:
            self._preview_current()

    def _preview_current(self) -> None:
        index = self.view.currentIndex()
        if not index.isValid():
            if self.model.rowCount() == 0:
                return
            index = self.model.index(0)
            self.view.setCurrentIndex(index)
        self.preview.show_image(index.data(ValueRole), self.model.origin,
                                self.model.title(index.row()))

    def _on_current_changed(self, current, _previous) -> None:
        if self.preview.isVisible() and current.isValid():
            self._preview_current()

    def _on_preview_navigate(self, key: int) -> None:
        QApplication.sendEvent(self.view, QKeyEvent(QEvent.KeyPress, key, Qt.NoModifier))

    # ------------------------------------------------------------ misc

    def send_report(self) -> None:
        if self.data is None:
            return
        self.report_items((
            ("Image column", self.image_attr),
            ("Title", self.title_attr),
            ("Images", f"{len(self.model.values):,}"),
            ("Could not be shown", f"{len(self.model.failures()):,}"),
            ("Selected", f"{len(self._selection_rows):,}"),
        ))
        # report_plot() takes graphics views only; this is a list view
        self.report_raw(get_html_img(self.view))

    def onDeleteWidget(self) -> None:
        self.loader.shutdown()
        self.preview.close()
        super().onDeleteWidget()

    @classmethod
    def migrate_context(cls, context, version) -> None:
        # version 1 stored int indexes into the combos: nothing to restore
        if version is None or version < 2:
            values = context.values
            image = values.get("image_attr")
            if not (isinstance(image, tuple) and len(image) == 2 and image[1] == 103):
                raise IncompatibleContext
            for name in ("title_attr", "selected_items"):
                value = values.get(name)
                if name == "title_attr" and value is not None \
                        and not (isinstance(value, tuple) and len(value) == 2):
                    del values[name]


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangecontrib.imageanalytics.import_images import ImportImages
    from orangecontrib.imageanalytics.tutorials import example_photos

    folder = sys.argv[1] if len(sys.argv) > 1 else example_photos()
    WidgetPreview(OWImageViewer).run(ImportImages()(folder)[0])
