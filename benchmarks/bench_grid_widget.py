"""Image Grid widget benchmark: time from input to outputs and the longest
GUI stall (each ``processEvents()`` call timed) while it lays out and while
the view scrolls, with 10,000 images of the "many" workload.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_grid_widget.py \
        VECTORS.npy FOLDER [--n 10000]

VECTORS.npy is the file ``bench_grid.py --embed FOLDER VECTORS.npy`` makes
(its rows follow the same choice of files).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vectors")
    ap.add_argument("folder")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--scroll-seconds", type=float, default=5.0)
    args = ap.parse_args()

    from AnyQt.QtWidgets import QApplication
    from Orange.data import ContinuousVariable, Domain, StringVariable, Table
    from orangecontrib.imageanalytics.widgets.owimagegrid import OWImageGrid

    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(args.folder) for f in fs)
    files = files[::max(1, len(files) // 10000)][:10000][:args.n]
    x = np.load(args.vectors)[:len(files)]
    files = files[:len(x)]
    image = StringVariable("image")
    image.attributes["type"] = "image"
    domain = Domain([ContinuousVariable(f"n{i}") for i in range(x.shape[1])],
                    metas=[image])
    table = Table.from_numpy(domain, x, metas=np.array(files, dtype=object)[:, None])

    app = QApplication.instance() or QApplication([])
    w = OWImageGrid()
    w.resize(1200, 800)
    w.show()
    app.processEvents()
    got = []
    send = w.Outputs.data.send
    w.Outputs.data.send = lambda value, *a: (got.append(value), send(value, *a))

    def pump(until, limit):
        longest, t_end = 0.0, time.perf_counter() + limit
        while not until() and time.perf_counter() < t_end:
            t = time.perf_counter()
            app.processEvents()
            longest = max(longest, time.perf_counter() - t)
            time.sleep(0.005)
        return longest

    t0 = time.perf_counter()
    w.set_data(table)
    w.handleNewSignals()
    t_input = time.perf_counter() - t0
    stall_layout = pump(lambda: any(v is not None for v in got), 120)
    t_out = time.perf_counter() - t0
    print(f"{len(table)} images: input call {t_input:.3f} s, outputs after "
          f"{t_out:.1f} s, longest GUI stall while laying out "
          f"{stall_layout * 1000:.0f} ms")

    bar = w.view.verticalScrollBar()
    hbar = w.view.horizontalScrollBar()
    longest, t_end, step = 0.0, time.perf_counter() + args.scroll_seconds, 0
    while time.perf_counter() < t_end:
        step += 1
        bar.setValue((step * 37) % (bar.maximum() + 1))
        hbar.setValue((step * 23) % (hbar.maximum() + 1))
        t = time.perf_counter()
        app.processEvents()
        longest = max(longest, time.perf_counter() - t)
        time.sleep(0.016)
    print(f"scrolling {step} steps: longest GUI stall {longest * 1000:.0f} ms")
    w.onDeleteWidget()


if __name__ == "__main__":
    main()
