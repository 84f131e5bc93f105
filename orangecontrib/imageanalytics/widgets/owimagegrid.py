"""Image Grid: similar images side by side, groups marked with the mouse."""
from __future__ import annotations

import numpy as np
from AnyQt.QtCore import QSize, Qt
from AnyQt.QtGui import QColor
from AnyQt.QtWidgets import QLabel
from Orange.data import DiscreteVariable, StringVariable, Table, Variable
from Orange.widgets import gui
from Orange.widgets.settings import (
    ContextSetting, DomainContextHandler, Setting)
from Orange.widgets.utils.annotated_data import (
    create_annotated_table, create_groups_table)
from Orange.widgets.utils.colorpalettes import LimitedDiscretePalette
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin, TaskState
from Orange.widgets.utils.itemmodels import VariableListModel
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.imageanalytics.image_grid import (
    GridTooSmall, LayoutCancelled, auto_size, project, snap_to_grid)
from orangecontrib.imageanalytics.widgets.utils.grid_view import GridView
from orangecontrib.imageanalytics.widgets.utils.preview import ImagePreview
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader
from orangecontrib.imageanalytics.widgets.utils.zoom import CtrlWheelZoom

CELL_FITS = ("Resize", "Crop")
MAX_SIDE = 1000


def image_candidates(domain) -> list:
    """Meta String/Discrete variables, those with ``type=image`` first."""
    metas = [v for v in domain.metas
             if isinstance(v, (StringVariable, DiscreteVariable))]
    return sorted(metas, key=lambda v: v.attributes.get("type") != "image")


def run_layout(vectors, coords, rows, cols, seed, state: TaskState):
    """Worker: t-SNE (unless ``coords`` are given), then snap to the grid."""
    def progress(f):
        state.set_progress_value(100 * f)
    stop = state.is_interruption_requested
    if coords is None:
        coords = project(vectors, seed=seed, progress=progress, should_stop=stop)
    layout = snap_to_grid(coords, rows, cols, should_stop=stop)
    return coords, layout


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

    settingsHandler = DomainContextHandler()
    settings_version = 2
    cell_fit = Setting("Resize")
    columns = Setting(10)
    rows = Setting(10)
    imageAttr = ContextSetting(0)
    imageSize = Setting(100)
    label_attr = ContextSetting(None, required=ContextSetting.OPTIONAL)
    label_selected = Setting(True)
    auto_update = Setting(True)
    auto_commit = Setting(True)
    # group of each image of the grid (0: not selected), kept with the workflow
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
        self._restore_selection = self.selection
        self._first_data = True

        self.image_model = VariableListModel()
        self.label_model = VariableListModel(placeholder="(No labels)")
        box = gui.vBox(self.controlArea, "Images")
        self.image_combo = gui.comboBox(
            box, self, "imageAttr", label="Image column:", callback=self._on_image_attr)
        self.image_combo.setModel(self.image_model)
        gui.comboBox(box, self, "label_attr", label="Label:",
                     model=self.label_model, callback=self._on_label)
        gui.checkBox(box, self, "label_selected", "Label only selected images",
                     callback=self._on_label)
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
        gui.hSlider(zoom, self, "imageSize", minValue=32, maxValue=512, step=8,
                    createLabel=False, callback=self._on_zoom)
        self.info_label = QLabel(wordWrap=True)
        gui.vBox(self.controlArea, "Info").layout().addWidget(self.info_label)
        self.cancel_button = gui.button(self.controlArea, self, "Cancel",
                                        callback=self.cancel)
        self.cancel_button.setEnabled(False)
        gui.rubber(self.controlArea)
        gui.auto_send(self.buttonsArea, self, "auto_commit")

        self.loader = ThumbnailLoader(self)
        self.view = GridView(self.loader)
        self.view.set_cell_size(self.imageSize)
        self._wheel_zoom = CtrlWheelZoom(
            self.view.viewport(), lambda: self.imageSize, self._set_zoom,
            32, 512, 8, self)
        self.view.crop = self._cell_fit_index == 1
        self.view.colors = [QColor(*map(int, c)) for c in LimitedDiscretePalette(12).palette]
        self.view.selectionMade.connect(self._on_selection_made)
        self.view.previewRequested.connect(lambda *_: self.toggle_preview())
        self.view.currentChanged.connect(self._on_current)
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
        self.label_attr = None
        if data is not None:
            candidates = image_candidates(data.domain)
            if not candidates:
                self.Error.no_image_attr()
            elif not data.domain.attributes or not len(data):
                self.Warning.no_valid_data()
            else:
                self.image_model[:] = candidates
                self.label_model[:] = [None] + list(data.domain.variables) \
                    + list(data.domain.metas)
                self.imageAttr = 0
                self.openContext(data.domain)
                if not 0 <= self.imageAttr < len(candidates):
                    self.imageAttr = 0
                self.image_combo.setCurrentIndex(self.imageAttr)
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

    def _image_var(self):
        if 0 <= self.imageAttr < len(self.image_model):
            return self.image_model[self.imageAttr]
        return None

    def _prepare(self):
        """Keep rows with an image and a whole vector; start the layout."""
        var = self._image_var()
        if var is None:
            self._update_info()
            return
        data = self.input
        values = data.get_column(var)
        if isinstance(var, DiscreteVariable):
            has_image = ~np.isnan(values.astype(float))
        else:
            has_image = np.array([bool(v) and v == v for v in values], dtype=bool)
        x = data.X.astype(float, copy=False)
        has_vector = ~np.isnan(x).any(axis=1) if x.size else np.zeros(len(data), bool)
        keep = has_image & has_vector
        reasons = []
        if (~has_image).sum():
            reasons.append(f"{(~has_image).sum()} without an image")
        if (has_image & ~has_vector).sum():
            reasons.append(f"{(has_image & ~has_vector).sum()} without a whole vector")
        if reasons:
            n = len(data) - keep.sum()
            self.Information.left_out(f"{n} row{'s' if n != 1 else ''}",
                                      ", ".join(reasons))
        if not keep.any():
            self.Warning.no_valid_data()
            self._update_info()
            return
        self.data = data[keep] if not keep.all() else data
        n = len(self.data)
        sel = self._restore_selection
        self._restore_selection = None
        self.view.groups = np.array(sel, dtype=np.int64) \
            if sel is not None and len(sel) == n else np.zeros(n, dtype=np.int64)
        self.view.faded = np.zeros(n, dtype=bool)
        # the first data after a workflow opens keeps the stored size if it fits
        if self.rows * self.columns < n or (self.auto_update and not self._first_data):
            self.rows, self.columns = self._auto_size(n)
        self._first_data = False
        self._set_labels()
        self._start_layout()

    def _auto_size(self, n):
        vp = self.view.viewport().size()
        aspect = vp.width() / max(vp.height(), 1) if vp.height() > 50 else 1.5
        return auto_size(n, aspect)

    def _start_layout(self):
        if self.data is None:
            return
        self.Warning.too_small.clear()
        if self.rows * self.columns < len(self.data):
            self.Warning.too_small(str(GridTooSmall(len(self.data), self.rows,
                                                    self.columns)))
            return
        vectors = None if self._coords is not None else self.data.X
        self.cancel_button.setEnabled(True)
        self.start(run_layout, vectors, self._coords, self.rows, self.columns, 0)

    def on_done(self, result):
        self.cancel_button.setEnabled(False)
        self._coords, self._layout = result
        var = self._image_var()
        values = [var.str_val(v) if isinstance(var, DiscreteVariable) else v
                  for v in self.data.get_column(var)]
        self.view.set_grid(self._layout.rows, self._layout.cols, self._layout.cell,
                           values, var.attributes.get("origin"))
        self._update_subset()
        self._update_info()
        self.commit.now()

    def on_exception(self, ex):
        self.cancel_button.setEnabled(False)
        if not isinstance(ex, LayoutCancelled):
            self.Error.layout_failed(str(ex))

    def on_partial_result(self, result):
        pass

    def cancel(self):
        super().cancel()
        self.cancel_button.setEnabled(False)

    # ------------------------------------------------------------ controls
    def _on_image_attr(self):
        self._coords = None
        self.loader.clear()
        self._prepare()

    def _set_labels(self):
        var = self.label_attr
        if var is None or self.data is None:
            self.view.set_labels(None)
        else:
            col = self.data.get_column(var)
            self.view.set_labels([var.str_val(v) for v in col])
        self.view.label_selected_only = self.label_selected
        self.view.refresh()

    def _on_label(self):
        self._set_labels()

    def _on_cell_fit(self):
        self.cell_fit = CELL_FITS[self._cell_fit_index]
        self.view.crop = self._cell_fit_index == 1
        self.view.refresh()

    def _on_size(self):
        # a size chosen by hand is kept for new data and when the workflow reopens
        self.auto_update = False
        self._start_layout()     # re-snaps; the projection is kept

    def set_auto_size(self):
        if self.data is not None:
            self.rows, self.columns = self._auto_size(len(self.data))
            self._start_layout()

    def _set_zoom(self, size: int) -> None:
        self.imageSize = size  # moves the slider
        self._on_zoom()

    def _on_zoom(self):
        self.view.set_cell_size(self.imageSize)

    def _update_info(self):
        if self.data is None:
            self.info_label.setText("No data.")
            return
        groups = self.view.groups
        n_sel = int((groups > 0).sum())
        self.info_label.setText(
            f"{len(self.data)} images on a {self.rows}×{self.columns} grid.\n"
            f"{n_sel} selected in {len(set(groups[groups > 0].tolist()))} group(s).")

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
        sub_ids = set(self.subset.ids.tolist())
        in_subset = np.array([i in sub_ids for i in self.data.ids], dtype=bool)
        found = set(self.data.ids.tolist()) & sub_ids
        var = self._image_var()
        if var is not None and var in self.subset.domain:
            sub_values = set(map(str, self.subset.get_column(var)))
            mine = [str(v) for v in self.data.get_column(var)]
            by_value = np.array([v in sub_values for v in mine], dtype=bool)
            in_subset |= by_value
            matched = sub_values & set(mine)
            n_found = max(len(found), len(matched))
        else:
            n_found = len(found)
        if not in_subset.any():
            self.Warning.no_subset_in_data()
        elif n_found < len(self.subset):
            self.Warning.some_subset_missing()
        self.view.faded = ~in_subset
        self.view.refresh()

    # ------------------------------------------------------------ selection
    def _on_selection_made(self, items, modifiers):
        self.select(items, modifiers)

    def select(self, items, modifiers=Qt.NoModifier):
        groups = self.view.groups
        items = np.asarray(items, dtype=np.int64)
        if modifiers & Qt.AltModifier:
            groups[items] = 0
        elif modifiers & Qt.ShiftModifier and modifiers & Qt.ControlModifier:
            groups[items] = max(int(groups.max(initial=0)), 1)
        elif modifiers & Qt.ShiftModifier:
            groups[items] = int(groups.max(initial=0)) + 1
        else:
            groups[:] = 0
            groups[items] = 1
        # renumber so the groups are 1..k
        used = sorted(set(groups[groups > 0].tolist()))
        remap = np.zeros(int(groups.max(initial=0)) + 1, dtype=np.int64)
        remap[used] = np.arange(1, len(used) + 1)
        self.view.groups = remap[groups]
        self.selection = self.view.groups.tolist() if used else None
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
        if groups.max(initial=0) <= 1:
            annotated = create_annotated_table(self.data, np.flatnonzero(groups))
        else:
            annotated = create_groups_table(self.data, groups)
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
        self.preview.close()
        super().onDeleteWidget()

    # ------------------------------------------------------------ old settings
    @classmethod
    def migrate_settings(cls, settings, version):
        fit = settings.get("cell_fit")
        if isinstance(fit, (int, np.integer)):
            settings["cell_fit"] = CELL_FITS[int(fit)] if 0 <= fit < 2 else "Resize"
        elif fit not in CELL_FITS and "cell_fit" in settings:
            settings["cell_fit"] = "Resize"
        for name in ("rows", "columns", "imageSize"):
            if name in settings:
                try:
                    settings[name] = int(settings[name])
                except (TypeError, ValueError):
                    del settings[name]

    @classmethod
    def migrate_context(cls, context, version):
        values = context.values
        image = values.get("imageAttr")
        if isinstance(image, tuple) and len(image) == 2 and image[1] == -2:
            values["imageAttr"] = (int(image[0]), -2)
        label = values.get("label_attr")
        if isinstance(label, tuple) and len(label) == 2 and label[0] is not None \
                and isinstance(label[1], int) and 0 <= label[1] < 100:
            values["label_attr"] = (label[0], label[1] + 100)
        elif isinstance(label, tuple) and label[0] is None:
            del values["label_attr"]


if __name__ == "__main__":  # pragma: no cover
    import sys
    from orangecontrib.imageanalytics.import_images import ImportImages
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    from orangecontrib.imageanalytics.tutorials import example_photos
    folder = sys.argv[1] if len(sys.argv) > 1 else example_photos()
    table, _ = ImportImages()(folder)
    embedded, _, _ = ImageEmbedder(model="squeezenet")(table, col="image")
    WidgetPreview(OWImageGrid).run(embedded)
