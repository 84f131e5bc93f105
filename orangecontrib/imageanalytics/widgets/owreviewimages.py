"""Review Images widget: the duplicates and the bad shots of a collection.

The review runs in a worker thread (:func:`~orangecontrib.imageanalytics.
review.run`); this module shows its groups as rows of thumbnails, the keeper
first and marked, lets the user choose another keeper or take a photo out of
its group, lists the flagged photos, and passes the table on in three forms.
Nothing is ever deleted or moved. The user's changes are kept in the workflow
by image value, so they survive a new review of the same photos.
"""
from __future__ import annotations

import numpy as np
from AnyQt.QtCore import QSize, Qt
from AnyQt.QtGui import QIcon, QPixmap
from AnyQt.QtWidgets import (
    QLabel,
    QListWidgetItem,
    QMenu,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from Orange.data import DiscreteVariable, StringVariable, Table, Variable
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, DomainContextHandler, Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.itemmodels import DomainModel
from Orange.widgets.utils.widgetpreview import WidgetPreview
from Orange.widgets.widget import Input, Msg, Output, OWWidget
from orangewidget.utils.signals import LazyValue

from orangecontrib.imageanalytics import review_tables
from orangecontrib.imageanalytics.counts_text import count_reasons, plural, reasons_text
from orangecontrib.imageanalytics.review import ISSUES, Review, ReviewCancelled, Strictness, run
from orangecontrib.imageanalytics.table_images import find_image_column, origin_of
from orangecontrib.imageanalytics.widgets.utils import placeholders, review_view
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader

__all__ = ["OWReviewImages"]

#: Groups and flagged photos shown (the outputs hold all of them).
MAX_SHOWN = 100
STRICTNESS_LABELS = (
    "Same file (identical copies)",
    "Same picture (re-saved, resized, converted, cropped)",
    "Near duplicates (also the next frames of a burst)",
)
ALL_ISSUES = "All issues"


class OWReviewImages(OWWidget, ConcurrentWidgetMixin):
    name = "Review Images"
    description = "Find duplicate photos and bad shots, and suggest which to keep."
    icon = "icons/ReviewImages.svg"
    priority = 165
    keywords = "review images, duplicates, near duplicates, blurry, dark, " \
               "overexposed, cull, photos"

    class Inputs:
        data = Input("Data", Table, doc="Images; an embedded table's vectors "
                                        "are used for near duplicates.")

    class Outputs:
        unique = Output("Unique Images", Table, default=True,
                        doc="Keepers and photos in no group.")
        duplicates = Output("Duplicates", Table,
                            doc="The other photos of each group, with Group, "
                                "Kind and Keeper.")
        data = Output("Data", Table, doc="Every row, annotated.")

    want_main_area = True

    settingsHandler = DomainContextHandler()
    image_attr: Variable | None = ContextSetting(None)
    strictness: int = Setting(int(Strictness.NEAR_DUPLICATE))
    leave_out_flagged: bool = Setting(False)
    issue_filter: str = Setting(ALL_ISSUES)
    #: image values (as in the column, without the origin) the user chose as
    #: keepers, and those taken out of their groups
    chosen_keepers: list = Setting([], schema_only=True)
    taken_out: list = Setting([], schema_only=True)
    auto_commit: bool = Setting(True)

    class Information(OWWidget.Information):
        cancelled = Msg("Review cancelled.")
        more_shown = Msg("{} shown; the outputs hold all.")

    class Warning(OWWidget.Warning):
        skipped = Msg("{} could not be read: {}.")

    class Error(OWWidget.Error):
        no_image_column = Msg("Data has no column with image paths or URLs.")
        failed = Msg("Review failed: {}")

    def __init__(self) -> None:
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Table | None = None
        self.review: Review | None = None   # as the worker found it
        self.shown: Review | None = None    # with the user's changes
        self._values: list[str | None] = []
        self._buttons: dict[int, list[QWidget]] = {}
        self._builder: review_view.Progressive | None = None
        self._items: dict[int, QListWidgetItem] = {}

        box = gui.vBox(self.controlArea, "Images")
        self.image_model = DomainModel(
            order=DomainModel.METAS, valid_types=(StringVariable, DiscreteVariable))
        gui.comboBox(box, self, "image_attr", label="Image column:",
                     model=self.image_model, callback=self._start)

        box = gui.vBox(self.controlArea, "Duplicates are")
        gui.radioButtons(box, self, "strictness", STRICTNESS_LABELS,
                         callback=self._start)

        box = gui.vBox(self.controlArea, "Unique Images")
        gui.checkBox(box, self, "leave_out_flagged",
                     "Leave out blurry, dark and overexposed photos",
                     callback=self.commit.deferred)

        box = gui.vBox(self.controlArea, "Info")
        self.info_label = gui.widgetLabel(box, "No data.")
        self.info_label.setWordWrap(True)
        self.cancel_button = gui.button(box, self, "Cancel", callback=self.cancel_review,
                                        enabled=False, autoDefault=False)
        gui.button(box, self, "Undo my changes", callback=self.reset_changes,
                   autoDefault=False)
        gui.rubber(self.controlArea)
        gui.auto_send(self.buttonsArea, self, "auto_commit")

        self.tabs = QTabWidget()
        self.mainArea.layout().addWidget(self.tabs)
        self.groups_area = QScrollArea(widgetResizable=True)
        self.tabs.addTab(self.groups_area, "Duplicates")
        self.issue_combo = gui.comboBox(
            None, self, "issue_filter", items=[ALL_ISSUES, *ISSUES],
            sendSelectedValue=True, callback=self._show_flagged)
        flagged, self.flagged_list = review_view.flagged_tab(self.issue_combo)
        self.tabs.addTab(flagged, "Flagged")

        self.loader = ThumbnailLoader(self)
        self.loader.thumbnailReady.connect(self._thumbnail_ready)
        self._show_groups()

    def sizeHint(self) -> QSize:
        return QSize(1000, 640)

    # ------------------------------------------------------------ input

    @Inputs.data
    def set_data(self, data: Table | None) -> None:
        self.closeContext()
        self.cancel()
        self.data = data
        self.review = self.shown = None
        self.Error.clear()
        self.Warning.clear()
        self.Information.clear()
        self.image_model.set_domain(data.domain if data is not None else None)
        self.image_attr = None
        if data is not None:
            self.image_attr = find_image_column(data.domain) or (
                self.image_model[0] if len(self.image_model) else None)
            if self.image_attr is None:
                self.Error.no_image_column()
                self.data = None
            else:
                self.openContext(data.domain)
        self._start(commit_now=True)

    def _column_values(self) -> list[str | None]:
        var = self.image_attr
        if self.data is None or var is None:
            return []
        column = self.data.get_column(var)
        if var.is_discrete:
            return [None if np.isnan(x) else var.values[int(x)] for x in column]
        return [None if v is None or v == "" or (isinstance(v, float) and np.isnan(v))
                else str(v) for v in column]

    def _start(self, commit_now: bool = False) -> None:
        """Review the data in a worker thread (again, after a change)."""
        self.cancel()
        self.Information.cancelled.clear()
        self.Error.failed.clear()
        self.review = self.shown = None
        self._values = self._column_values()
        self.loader.clear()
        self._show_all()
        if self.data is None or self.image_attr is None:
            self.info_label.setText("No data.")
            self.cancel_button.setEnabled(False)
            if commit_now:
                self.commit.now()
            else:
                self.commit.deferred()
            return
        self.info_label.setText(f"Reviewing {plural(len(self.data), 'image')}…")
        self.cancel_button.setEnabled(True)
        self.start(run, self.data, self.image_attr, self.strictness)
        # outputs wait for the review; until then they are empty
        self.commit.now()

    def cancel_review(self) -> None:
        if self.task is None:
            return
        self.cancel()
        self.cancel_button.setEnabled(False)
        self.info_label.setText("Cancelled.")
        self.Information.cancelled()

    def on_partial_result(self, _) -> None:
        pass

    def on_done(self, review: Review) -> None:
        self.cancel_button.setEnabled(False)
        self.review = review
        self._apply_changes()
        reasons = reasons_text(count_reasons(skip.reason for skip in review.skipped))
        self.Warning.skipped(plural(len(review.skipped), "image"), reasons,
                             shown=bool(review.skipped))
        self.commit.now()

    def on_exception(self, ex: Exception) -> None:
        self.cancel_button.setEnabled(False)
        if isinstance(ex, ReviewCancelled):
            self.info_label.setText("Cancelled.")
            self.Information.cancelled()
        else:
            self.info_label.setText("Review failed.")
            self.Error.failed(str(ex) or type(ex).__name__, exc_info=ex)
        self.commit.now()

    # ------------------------------------------------------------ changes

    def _rows_of(self, values) -> list[int]:
        wanted = set(values)
        return [row for row, value in enumerate(self._values)
                if value is not None and value in wanted]

    def _apply_changes(self) -> None:
        if self.review is None:
            self.shown = None
        else:
            self.shown = self.review.with_changes(
                keepers=self._rows_of(self.chosen_keepers),
                removed=self._rows_of(self.taken_out))
        self._show_all()

    def _group_rows(self, row: int) -> list[int]:
        """All rows the review grouped with ``row`` (taken out ones too)."""
        if self.review is None:
            return [row]
        index = self.review.group_of(row)
        return [row] if index is None else self.review.groups[index]

    def make_keeper(self, row: int) -> None:
        """Keep the photo in ``row`` rather than its group's keeper."""
        group_values = {self._values[r] for r in self._group_rows(row)}
        self.chosen_keepers = [v for v in self.chosen_keepers if v not in group_values]
        self.chosen_keepers.append(self._values[row])
        self.taken_out = [v for v in self.taken_out if v != self._values[row]]
        self._changed()

    def take_out(self, row: int) -> None:
        """The photo in ``row`` is not a duplicate: out of its group."""
        value = self._values[row]
        if value not in self.taken_out:
            self.taken_out = [*self.taken_out, value]
        self.chosen_keepers = [v for v in self.chosen_keepers if v != value]
        self._changed()

    def put_back(self, row: int) -> None:
        """Undo :meth:`take_out`."""
        self.taken_out = [v for v in self.taken_out if v != self._values[row]]
        self._changed()

    def reset_changes(self) -> None:
        self.chosen_keepers = []
        self.taken_out = []
        self._changed()

    def _changed(self) -> None:
        self._apply_changes()
        self.commit.deferred()

    # ------------------------------------------------------------ views

    def _show_all(self) -> None:
        self._buttons = {}
        self._items = {}
        self._show_groups()
        self._show_flagged()
        self._update_info()

    def _origin(self) -> str | None:
        return origin_of(self.image_attr)

    def _icon(self, key, row: int) -> QIcon:
        image = self.loader.request(key, self._values[row], self._origin(), review_view.THUMB)
        if image is not None:
            return QIcon(QPixmap.fromImage(image))
        if self.loader.error(key) is not None:
            return QIcon(placeholders.failed_pixmap(review_view.THUMB))
        return QIcon(placeholders.loading_pixmap(review_view.THUMB))

    def _label(self, row: int) -> str:
        value = self._values[row] or f"row {row + 1}"
        return value.replace("\\", "/").rsplit("/", 1)[-1]

    def _show_groups(self) -> None:
        if self._builder is not None:
            self._builder.cancel()
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setSpacing(2)
        layout.addStretch(1)
        review, shown = self.review, self.shown
        if review is None or shown is None:
            text = "Reviewing…" if self.task is not None else "No duplicates."
            layout.insertWidget(0, QLabel(text, alignment=Qt.AlignCenter))
        elif not review.groups:
            layout.insertWidget(0, QLabel("No duplicates.", alignment=Qt.AlignCenter))
        taken = set(self._rows_of(self.taken_out))
        groups = review.groups if review is not None and shown is not None else []
        shown_group = {row: index for index, group in enumerate(shown.groups)
                       for row in group} if groups else {}

        def add(number, original):
            # the group as shown: the user's keeper first, taken-out photos last
            index = next((shown_group[row] for row in original if row in shown_group),
                         None)
            members = shown.groups[index] if index is not None else []
            kinds = shown.kinds[index] if index is not None else []
            out = [row for row in original if row not in members]
            frame, buttons = review_view.group_frame(
                number, [*zip(members, kinds), *((r, review_view.TAKEN_OUT) for r in out)], taken,
                label=self._label, icon=lambda row: self._icon(("g", row), row),
                tooltip=lambda row: self._values[row] or "", menu=self._menu)
            for button in buttons:
                self._buttons.setdefault(button.row, []).append(button)
            layout.insertWidget(layout.count() - 1, frame)   # before the stretch

        old = self.groups_area.takeWidget()
        if old is not None:
            old.deleteLater()
        self.groups_area.setWidget(content)
        # hundreds of groups are built a slice at a time from the event loop
        self._builder = review_view.Progressive(
            (lambda n=n, g=g: add(n, g) for n, g in enumerate(groups[:MAX_SHOWN], start=1)),
            parent=self)

    def _menu(self, parent, row: int, kind: str) -> QMenu:
        return review_view.photo_menu(parent, row, kind, make_keeper=self.make_keeper,
                          take_out=self.take_out, put_back=self.put_back)

    def _show_flagged(self) -> None:
        self.flagged_list.clear()
        self._items = {}
        if self.shown is None:
            return
        wanted = self.issue_filter
        rows = [row for row, found in sorted(self.shown.issues.items())
                if wanted == ALL_ISSUES or wanted in found]
        for row in rows[:MAX_SHOWN]:
            found = self.shown.issues[row]
            item = review_view.flagged_item(row, found, self.shown.issue_scores[row],
                                icon=self._icon(("f", row), row), label=self._label(row),
                                path=self._values[row] or "")
            self.flagged_list.addItem(item)
            self._items[row] = item

    def _thumbnail_ready(self, key) -> None:
        where, row = key
        targets = self._buttons.get(row, []) if where == "g" else \
            [self._items[row]] if row in self._items else []
        if not targets:
            return
        icon = self._icon(key, row)
        for target in targets:
            target.setIcon(icon)

    def _update_info(self) -> None:
        shown = self.shown
        if shown is None:
            return
        n_flagged = len(shown.issues)
        self.info_label.setText(
            f"{plural(len(shown.groups), 'group')} of duplicates, "
            f"{plural(len(shown.duplicate_rows()), 'photo')} besides the keepers; "
            f"{n_flagged} flagged, {len(shown.skipped)} not read.")
        longest = max(len(shown.groups), n_flagged)
        self.Information.more_shown(f"{MAX_SHOWN} of {longest}",
                                    shown=longest > MAX_SHOWN)

    # ------------------------------------------------------------ output

    @gui.deferred
    def commit(self) -> None:
        shown, data = self.shown, self.data
        if shown is None or data is None:
            self.Outputs.unique.send(None)
            self.Outputs.duplicates.send(None)
            self.Outputs.data.send(None)
            return
        # each table copies its rows' features (an embedded 50,000-row input:
        # hundreds of MB): made only when a linked widget asks for it
        for name, (n, make) in review_tables.table_makers(
                data, shown, self.image_attr, without_issues=self.leave_out_flagged).items():
            getattr(self.Outputs, name).send(LazyValue[Table](make, length=n) if n else None)

    # ------------------------------------------------------------ lifecycle

    def onDeleteWidget(self) -> None:
        self.shutdown()
        self.loader.shutdown()
        super().onDeleteWidget()

    def send_report(self) -> None:
        if self.data is None:
            return
        items = [("Image column", self.image_attr),
                 ("Duplicates are", STRICTNESS_LABELS[self.strictness].split(" (")[0])]
        if self.shown is not None:
            items.append(("Found", self.info_label.text()))
            if self.chosen_keepers or self.taken_out:
                items.append(("Changed by hand",
                              f"{plural(len(self.chosen_keepers), 'keeper')} chosen, "
                              f"{plural(len(self.taken_out), 'photo')} taken out"))
        items.append(("Unique Images", "without flagged photos"
                      if self.leave_out_flagged else "flagged photos included"))
        self.report_items(items)


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangecontrib.imageanalytics.import_images import import_images
    from orangecontrib.imageanalytics.tutorials import example_photos

    folder = sys.argv[1] if len(sys.argv) > 1 else example_photos("labelled")
    WidgetPreview(OWReviewImages).run(import_images(folder).table)
