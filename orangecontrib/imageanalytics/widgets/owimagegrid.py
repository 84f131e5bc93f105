"""Image Grid: similar images side by side, groups marked with the mouse."""
from __future__ import annotations

from functools import partial

import numpy as np
from AnyQt.QtCore import QSize, Qt
from AnyQt.QtGui import QColor
from AnyQt.QtWidgets import QLabel
from Orange.data import Table
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, Setting
from Orange.widgets.utils.annotated_data import (
    create_groups_table,
    lazy_annotated_table,
    lazy_groups_table,
)
from Orange.widgets.utils.colorpalettes import LimitedDiscretePalette
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.itemmodels import VariableListModel
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.imageanalytics import image_grid
from orangecontrib.imageanalytics.widgets.utils import grid_groups, grid_rows, grid_settings
from orangecontrib.imageanalytics.widgets.utils.grid_colors import GridColors
from orangecontrib.imageanalytics.widgets.utils.grid_settings import CELL_FITS
from orangecontrib.imageanalytics.widgets.utils.grid_task import (
    Prepared,
    grid_size,
    run_layout,
    run_prepare,
)
from orangecontrib.imageanalytics.widgets.utils.grid_view import MAX_CELL, GridView, mark_for
from orangecontrib.imageanalytics.widgets.utils.preview import ImagePreview
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader

MAX_SIDE = 1000


class OWImageGrid(OWWidget, ConcurrentWidgetMixin):
    name = "Image Grid"
    description = "Visualize images in a similarity grid"
    icon = "icons/ImageGrid.svg"
    priority = 160
    keywords = "image grid, image, grid, similarity"

    class Inputs:
        data = Input("Embeddings", Table, default=True)
        data_subset = Input("Data Subset", Table)

    class Outputs:
        selected_data = Output("Selected Images", Table, default=True)
        data = Output("Images", Table)

    settingsHandler = grid_settings.ImageColumnContextHandler()
    settings_version = 3
    cell_fit = Setting("Resize")
    columns = Setting(10)
    rows = Setting(10)
    #: rows × columns belong to this widget's workflow (not a fresh widget's
    #: defaults): the first data keeps them while they fit
    keep_size = Setting(False, schema_only=True)
    imageAttr = ContextSetting(None)
    imageSize = Setting(100)
    #: the whole grid in view, until the user zooms by hand
    zoom_to_fit = Setting(True, schema_only=True)
    label_attr = ContextSetting(None, required=ContextSetting.OPTIONAL)
    label_selected = Setting(True)
    auto_update = Setting(True)
    auto_commit = Setting(True)
    #: {image value: group} of the marked images, kept with the workflow
    selection = Setting(None, schema_only=True)

    graph_name = "view"

    class Information(OWWidget.Information):
        left_out = Msg("{} left out: {}.")

    class Warning(OWWidget.Warning):
        no_valid_data = Msg("No valid data")
        no_subset_in_data = Msg("No Data Subset elements appear in the Data.")
        some_subset_missing = Msg("Some Data Subset elements do not appear in the Data.")
        too_small = Msg("{}")

    class Error(OWWidget.Error):
        no_image_attr = Msg("Data does not contain any variables with image "
                            "file names or URLs.")
        layout_failed = Msg("The layout failed: {}")

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Table | None = None      # the rows on the grid
        self.input: Table | None = None
        self.subset: Table | None = None
        self._coords = None
        self._layout = None
        self._values: list = []     # image value of each row of self.data
        self._first_data = True

        self.image_model = VariableListModel()
        self.label_model = VariableListModel(placeholder="(No labels)")
        box = gui.vBox(self.controlArea, "Images")
        gui.comboBox(box, self, "imageAttr", label="Image column:",
                     model=self.image_model, callback=self._on_image_attr)
        gui.comboBox(box, self, "label_attr", label="Label:",
                     model=self.label_model, callback=self._set_labels)
        gui.checkBox(box, self, "label_selected", "Label only selected images",
                     callback=self._set_labels)
        fit = gui.vBox(self.controlArea, "Cell fit")
        self._cell_fit_index = CELL_FITS.index(self.cell_fit) \
            if self.cell_fit in CELL_FITS else 0
        gui.radioButtons(fit, self, "_cell_fit_index", btnLabels=CELL_FITS,
                         callback=self._on_cell_fit)
        grid = gui.vBox(self.controlArea, "Grid size")
        gui.spin(grid, self, "columns", 1, MAX_SIDE, label="Columns:",
                 callback=self._on_size, keyboardTracking=False)
        gui.spin(grid, self, "rows", 1, MAX_SIDE, label="Rows:",
                 callback=self._on_size, keyboardTracking=False)
        gui.button(grid, self, "Set size automatically", callback=self.set_auto_size)
        gui.checkBox(grid, self, "auto_update", "Size automatically on new data")
        zoom = gui.vBox(self.controlArea, "Zoom")
        gui.checkBox(zoom, self, "zoom_to_fit", "Fit to window", callback=self._apply_fit)
        gui.hSlider(zoom, self, "imageSize", minValue=1, maxValue=MAX_CELL,
                    step=8, createLabel=False, callback=self._on_zoom)
        self.info_label = QLabel(wordWrap=True)
        gui.vBox(self.controlArea, "Info").layout().addWidget(self.info_label)
        self.cancel_button = gui.button(self.controlArea, self, "Cancel",
                                        callback=self.cancel)
        self.cancel_button.setEnabled(False)
        gui.rubber(self.controlArea)
        gui.auto_send(self.buttonsArea, self, "auto_commit")

        self.loader = ThumbnailLoader(self)
        self.averages = GridColors(self)
        self.view = GridView(self.loader)
        self.view.set_averages(self.averages)
        self.view.set_cell_size(self.imageSize)
        self.view.zoomed.connect(self._on_wheel_zoom)
        self.view.crop = self._cell_fit_index == 1
        self.view.colors = [QColor(*map(int, c)) for c in LimitedDiscretePalette(12).palette]
        self.view.selectionMade.connect(self.select)
        self.view.previewRequested.connect(lambda *_: self.toggle_preview())
        self.view.currentChanged.connect(self._on_current)
        self.view.cellSizeFitted.connect(self._on_fitted)
        self.mainArea.layout().addWidget(self.view)
        self.preview = ImagePreview(self)
        self.preview.navigate.connect(self._on_preview_navigate)
        self._update_info()

    def sizeHint(self):
        return QSize(1000, 650)

    # ------------------------------------------------------------ inputs
    @Inputs.data
    def set_data(self, data: Table | None):
        self.closeContext()
        self.cancel()
        self.clear()
        self.input = data
        self.Error.no_image_attr.clear()
        self.Warning.no_valid_data.clear()
        self.image_model[:] = []
        self.label_model[:] = [None]
        self.imageAttr = self.label_attr = None
        if data is not None:
            candidates = grid_rows.image_candidates(data.domain)
            if not candidates:
                self.Error.no_image_attr()
            elif not data.domain.attributes or not len(data):
                self.Warning.no_valid_data()
            else:
                self.image_model[:] = candidates
                self.label_model[:] = [None] + list(data.domain.variables) \
                    + list(data.domain.metas)
                self.imageAttr = candidates[0]
                self.openContext(data.domain)
                if self.imageAttr not in candidates:
                    self.imageAttr = candidates[0]
        self._prepare()

    @Inputs.data_subset
    def set_data_subset(self, subset: Table | None):
        self.subset = subset

    def handleNewSignals(self):
        self._update_subset()
        if self.data is None:
            self.commit.now()

    def clear(self):
        self.data = None
        self._coords = self._layout = None
        self.loader.clear()
        self.view.clear()
        self.preview.close()
        self.Information.left_out.clear()
        self.Warning.too_small.clear()
        self.Error.layout_failed.clear()

    def _prepare(self):
        """Start the worker on new data: it leaves out rows without an image
        or a whole vector, sizes the grid and lays it out."""
        var = self.imageAttr
        if var is None:
            self._update_info()
            return
        # a fresh widget sizes itself for its first data; a workflow's own
        # size stays for the first data while it fits
        restored = self._first_data and self.keep_size
        auto = not restored and (self._first_data or self.auto_update)
        size = partial(grid_size, rows=self.rows, cols=self.columns,
                       aspect=self._aspect(), auto=auto)
        self._first_data = False
        self.keep_size = True
        stored = self.selection.copy() if self.selection is not None else None
        self.cancel_button.setEnabled(True)
        self.start(run_prepare, self.input, var, stored, size, 0)

    def _take_rows(self, prepared: Prepared) -> bool:
        """Show the rows the worker chose; False when there are none."""
        rows, n = prepared.rows, prepared.rows.left_out
        if n:
            self.Information.left_out(f"{n} row{'s' * (n != 1)}", ", ".join(rows.reasons))
        if rows.data is None:
            self.Warning.no_valid_data()
            self._update_info()
            return False
        self.data, self._values = rows.data, rows.values
        self.averages.clear()      # colours of these images start after the layout
        # marked images keep their group when they come again, in any order
        self.view.groups = rows.groups
        if isinstance(self.selection, list):  # version 2: one group per row
            self.selection = grid_groups.groups_by_value(self._values, self.view.groups) or None
        self.view.faded = np.zeros(len(self.data), dtype=bool)
        self.rows, self.columns = prepared.size
        self._set_labels()
        return True

    def _aspect(self) -> float:
        vp = self.view.viewport().size()
        return vp.width() / max(vp.height(), 1) if vp.height() > 50 else 1.5

    def _start_layout(self):
        if self.data is None:
            return
        self.Warning.too_small.clear()
        if (n := len(self.data)) > self.rows * self.columns:
            self.Warning.too_small(str(image_grid.GridTooSmall(n, self.rows, self.columns)))
            return
        vectors = None if self._coords is not None else self.data.X
        self.cancel_button.setEnabled(True)
        self.start(run_layout, vectors, self._coords, self.rows, self.columns, 0)

    def on_done(self, result):
        self.cancel_button.setEnabled(False)
        if isinstance(result, Prepared):
            if not self._take_rows(result):
                return
            result = result.coords, result.layout
        self._coords, self._layout = result
        origin = self.imageAttr.attributes.get("origin")
        if len(self.averages.state) != len(self._values):
            self.averages.start(self._values, origin)
        self.view.set_grid(self._layout.rows, self._layout.cols, self._layout.cell,
                           self._values, origin)
        self._apply_fit()
        self._update_subset()
        self._update_info()
        self.commit.now()

    def on_exception(self, ex):
        self.cancel_button.setEnabled(False)
        if not isinstance(ex, image_grid.LayoutCancelled):
            self.Error.layout_failed(str(ex))

    def cancel(self):
        super().cancel()
        self.cancel_button.setEnabled(False)

    # ------------------------------------------------------------ controls
    def _on_image_attr(self):
        self.cancel()
        self.clear()
        self._prepare()

    def _column_text(self, var):
        if var is None or self.data is None:
            return None
        return grid_rows.ColumnText(self.data, var)

    def _set_labels(self):
        labels = self._column_text(self.label_attr)
        self.view.set_labels(labels)
        # tooltips title an image by its label, else by its class
        self.view.titles = labels if labels is not None else self._column_text(
            self.data.domain.class_var if self.data is not None else None)
        self.view.label_selected_only = self.label_selected
        self.view.refresh()

    def _on_cell_fit(self):
        self.cell_fit = CELL_FITS[self._cell_fit_index]
        self.view.crop = self._cell_fit_index == 1
        self.view.refresh()

    def _on_size(self):
        # a size chosen by hand is kept for new data and when the workflow reopens
        self.auto_update, self.keep_size = False, True
        if self.data is None and self.task is not None:
            self._prepare()      # new data on its way: lay it out at this size
        else:
            self._start_layout()     # re-snaps; the projection is kept

    def set_auto_size(self):
        if self.data is not None:
            self.rows, self.columns = image_grid.auto_size(len(self.data), self._aspect())
            self._start_layout()

    def _on_wheel_zoom(self, size: float) -> None:
        # the view zoomed itself at the mouse: only the settings follow
        self.zoom_to_fit = False
        self.imageSize = max(1, round(size))  # moves the slider

    def _on_zoom(self):
        # zoomed by hand (slider or Ctrl + wheel): the window no longer decides
        self.zoom_to_fit = False
        self.view.set_fit(False)
        self.view.set_cell_size(self.imageSize)

    def _apply_fit(self):
        # any number of images: a large grid in view is an overview map
        fit = self.zoom_to_fit and self.data is not None
        if not fit:
            self.view.set_cell_size(self.imageSize)
        self.view.set_fit(fit)

    def _on_fitted(self, size: float):
        self.imageSize = max(1, round(size))  # moves the slider, keeps fitting

    def _update_info(self):
        if self.data is None:
            self.info_label.setText("No data.")
            return
        self.info_label.setText(f"{len(self.data)} images on a {self.rows}×{self.columns} "
                                f"grid.\n{grid_groups.summary(self.view.groups)}")

    # ------------------------------------------------------------ subset
    def _update_subset(self):
        self.Warning.no_subset_in_data.clear()
        self.Warning.some_subset_missing.clear()
        if self.data is None or len(self.view.faded) != len(self.data):
            return
        if self.subset is None:
            self.view.faded[:] = False
            self.view.refresh()
            return
        in_subset, n_found = grid_rows.subset_membership(self.data, self.subset, self.imageAttr)
        if not in_subset.any():
            self.Warning.no_subset_in_data()
        elif n_found < len(self.subset):
            self.Warning.some_subset_missing()
        self.view.faded = ~in_subset
        self.view.refresh()

    # ------------------------------------------------------------ selection
    def select(self, items, modifiers=Qt.NoModifier):
        self.view.groups = grid_groups.mark(self.view.groups, items, mark_for(modifiers))
        self.selection = grid_groups.groups_by_value(self._values, self.view.groups) or None
        self.view.refresh()
        self._update_info()
        self.commit.deferred()

    @gui.deferred
    def commit(self):
        if self.data is None or self._layout is None:
            self.Outputs.selected_data.send(None)
            self.Outputs.data.send(None)
            return
        groups = self.view.groups
        selected = None
        if groups.any():
            selected = create_groups_table(self.data, groups, False, "Group")
        self.Outputs.selected_data.send(selected)
        # made only when a linked widget asks: with 100,000 rows it takes a
        # third of a second, on every change of the groups
        if groups.max(initial=0) <= 1:
            annotated = lazy_annotated_table(self.data, np.flatnonzero(groups))
        else:
            annotated = lazy_groups_table(self.data, groups)
        self.Outputs.data.send(annotated)

    # ------------------------------------------------------------ preview
    def toggle_preview(self):
        if self.preview.isVisible():
            self.preview.close()
        else:
            self._preview_current()

    def _preview_current(self):
        item = self.view.current
        if self.data is None or not 0 <= item < len(self.view.values):
            return
        title = self.view.labels[item] if self.view.labels else ""
        self.preview.show_image(self.view.values[item], self.view.origin, title)

    def _on_current(self, _item):
        if self.preview.isVisible():
            self._preview_current()

    def _on_preview_navigate(self, key):
        self.view.move_current(key)

    # ------------------------------------------------------------ report, close
    def send_report(self):
        if self.data is None:
            return
        self.report_items((
            ("Images", len(self.data)),
            ("Grid", f"{self.rows}×{self.columns}"),
            ("Cell fit", self.cell_fit),
            ("Labels", self.label_attr.name if self.label_attr else "none"),
            ("Selected", int((self.view.groups > 0).sum()))))
        self.report_plot()

    def onDeleteWidget(self):
        self.shutdown()
        self.loader.shutdown()
        self.averages.shutdown()
        self.preview.close()
        super().onDeleteWidget()

    # ------------------------------------------------------------ old settings
    @classmethod
    def migrate_settings(cls, settings, version):
        grid_settings.migrate_settings(settings, version)

    @classmethod
    def migrate_context(cls, context, version):
        grid_settings.migrate_context(context, version)


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    from orangecontrib.imageanalytics.import_images import import_images
    from orangecontrib.imageanalytics.tutorials import example_photos
    table = import_images(sys.argv[1] if len(sys.argv) > 1 else example_photos()).table
    WidgetPreview(OWImageGrid).run(ImageEmbedder(model="squeezenet")(table)[0])
