"""Review Images widget: the longest GUI stall while it reviews and shows
many groups.

A table of ROWS rows that name K files of FOLDER in turn (so K groups of
identical files, ROWS / K photos each) goes to the widget at "same file";
every ``processEvents()`` call is timed until the review is done and the
view built, and for one second more while thumbnails arrive.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_review_widget.py \\
        ROWS K FOLDER

E.g. 9000 300 WEB (300 groups of 30 web photos) and 3000 3 WEB (three
groups of 1,000, as a time-lapse makes). Target: no stall over 150 ms.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", type=int)
    ap.add_argument("k", type=int)
    ap.add_argument("folder")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from AnyQt.QtWidgets import QApplication
    from machine import machine_line
    from Orange.data import Domain, StringVariable, Table

    from orangecontrib.imageanalytics.widgets.owreviewimages import OWReviewImages

    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(args.folder) for f in fs)
    values = [files[i % args.k] for i in range(args.rows)]
    var = StringVariable("image")
    var.attributes["type"] = "image"
    table = Table.from_numpy(Domain([], metas=[var]), np.empty((args.rows, 0)),
                             metas=np.array(values, dtype=object)[:, None])
    app = QApplication.instance() or QApplication([])
    w = OWReviewImages()
    w.strictness = 0
    w.resize(1100, 700)
    w.show()
    app.processEvents()
    start = time.perf_counter()
    w.set_data(table)
    w.handleNewSignals()
    longest = 0.0
    after = None
    while after is None or time.perf_counter() < after + 1.0:
        t = time.perf_counter()
        app.processEvents()
        longest = max(longest, time.perf_counter() - t)
        if after is None and w.review is not None and w.task is None \
                and not (w._builder and w._builder.pending()):
            after = time.perf_counter()
        time.sleep(0.005)
    buttons = sum(len(b) for b in w._buttons.values())
    print(f"{args.rows} rows, {len(w.review.groups)} groups: shown after "
          f"{after - start:.1f} s ({buttons} photo buttons); longest GUI stall "
          f"{longest * 1000:.0f} ms; {machine_line()}")
    w.onDeleteWidget()


if __name__ == "__main__":
    main()
