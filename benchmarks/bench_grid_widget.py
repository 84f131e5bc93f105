"""Image Grid widget benchmark.

**Widget** (the default): the time from input to outputs and the longest GUI
stall (every ``processEvents()`` call timed, together with the mouse event
that precedes it) while the widget lays out, while the user zooms with Ctrl +
wheel from the whole grid down to thumbnails and back, and while they pan
by dragging (the middle button), both on the overview map and among
thumbnails; meanwhile the workers make the overview's average colours and the
thumbnails in view. Peak RSS at the end.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_grid_widget.py \\
        VECTORS.npy FOLDER [--n 10000] [--all-files]

VECTORS.npy is the file ``bench_grid.py --embed FOLDER VECTORS.npy`` makes
(its rows follow the same choice of 10,000 files). With ``--all-files`` every
file of FOLDER is used in sorted order, the rows of VECTORS following them;
beyond its rows, noisy copies of them (how 100,000 photos are made of
50,000 embedded ones).

**Workflow**: Import Images → Image Embedding → Image Grid → Image Viewer in
one process, as the canvas would run them (each output passed on and kept):
the resident memory after each widget, its peak, and the large feature
arrays alive (one per copy of the features). Image Embedding should find
every vector in its cache (point ``--cache`` at a cache folder that holds
them; the folder is used as it is). Half the grid is marked with a rubber
band on the overview and goes to Image Viewer.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_grid_widget.py \\
        --workflow FOLDER --cache CACHE_DIR
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import tempfile
import time

import numpy as np


def rss_mb() -> tuple[float, float]:
    """The process's resident memory now and at its peak, in MB."""
    now = peak = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return now, peak


def feature_copies(min_mb: float = 50) -> list[str]:
    """The distinct buffers of at least ``min_mb`` behind the X of every
    live Orange table: each is one copy of the features."""
    from Orange.data import Table
    seen = {}
    for obj in gc.get_objects():
        if isinstance(obj, Table) and obj.X is not None and obj.X.nbytes >= min_mb * 2**20:
            base = obj.X
            while isinstance(base.base, np.ndarray):
                base = base.base
            where = base.__array_interface__["data"][0]
            seen.setdefault(where, (base.nbytes, base.dtype, []))[2].append(len(obj))
    return [f"{nbytes / 2**20:.0f} MB {dtype} (tables of {', '.join(map(str, rows))} rows)"
            for nbytes, dtype, rows in seen.values()]


class Pump:
    """Runs the event loop, timing each step (an event sent and the events
    it causes). ``cpu`` keeps the most CPU time the GUI thread itself took
    in one step: on a shared machine the wall time also counts the time the
    thread waited for a core."""

    def __init__(self, app):
        self.app = app
        self.cpu = 0.0

    def step(self, action=None) -> float:
        t, c = time.perf_counter(), time.thread_time()
        if action is not None:
            action()
        self.app.processEvents()
        self.cpu = max(self.cpu, time.thread_time() - c)
        return time.perf_counter() - t

    def until(self, done, limit: float, pause: float = 0.005) -> float:
        longest, end = 0.0, time.perf_counter() + limit
        while not done() and time.perf_counter() < end:
            longest = max(longest, self.step())
            time.sleep(pause)
        return longest


def capture(output) -> list:
    """The values sent on ``output``; a lazy one is made, as the canvas does
    for a linked output."""
    from orangewidget.utils.signals import LazyValue
    got = []
    send = output.send

    def keep(value, *a, **k):
        send(value, *a, **k)
        got.append(value.get_value() if LazyValue.is_lazy(value) else value)
    output.send = keep
    return got


def wheel(view, pos, notches):
    from AnyQt.QtCore import QPoint, QPointF, Qt
    from AnyQt.QtGui import QWheelEvent
    from AnyQt.QtWidgets import QApplication
    vp = view.viewport()
    p = QPointF(pos)
    QApplication.sendEvent(vp, QWheelEvent(
        p, QPointF(vp.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, 120 * notches),
        Qt.NoButton, Qt.ControlModifier, Qt.NoScrollPhase, False))


def mouse(view, kind, pos, button):
    from AnyQt.QtCore import QEvent, QPointF, Qt
    from AnyQt.QtGui import QMouseEvent
    from AnyQt.QtWidgets import QApplication
    vp = view.viewport()
    types = {"press": QEvent.MouseButtonPress, "move": QEvent.MouseMove,
             "release": QEvent.MouseButtonRelease}
    buttons = Qt.NoButton if kind == "release" else button
    QApplication.sendEvent(vp, QMouseEvent(
        types[kind], QPointF(pos), QPointF(vp.mapToGlobal(pos)),
        button if kind != "move" else Qt.NoButton, buttons, Qt.NoModifier))


def zoom_and_pan(app, w, seconds: float) -> dict:
    """Zoom in and out at random places; pan on the map and among
    thumbnails. The longest stall of each."""
    from AnyQt.QtCore import QPoint, Qt
    pump = Pump(app)
    view = w.view
    vs = view.viewport().size()
    rng = random.Random(0)
    out = {"zoom": 0.0, "pan map": 0.0, "pan thumbnails": 0.0}
    cpu = {}
    end = time.perf_counter() + seconds
    zooms = 0
    while time.perf_counter() < end:
        pos = QPoint(rng.randrange(vs.width()), rng.randrange(vs.height()))
        for notches in [1] * 16 + [-1] * 16:
            out["zoom"] = max(out["zoom"], pump.step(
                lambda p=pos, k=notches: wheel(view, p, k)))
            zooms += 1
            time.sleep(0.03)
    out["zoom steps"] = zooms
    cpu["zoom"], pump.cpu = pump.cpu, 0.0
    middle = QPoint(vs.width() // 2, vs.height() // 2)
    for label, size in (("pan map", 8), ("pan thumbnails", 48)):
        view.zoom_at(middle, size)
        w._on_wheel_zoom(view.cell_size)
        end = time.perf_counter() + seconds
        steps = 0
        while time.perf_counter() < end:
            start = QPoint(vs.width() // 2, vs.height() // 2)
            dx, dy = rng.choice([(12, 0), (-12, 0), (0, 9), (0, -9), (9, 9), (-9, -9)])
            out[label] = max(out[label], pump.step(
                lambda s=start: mouse(view, "press", s, Qt.MiddleButton)))
            for i in range(1, 31):
                p = QPoint(start.x() + i * dx, start.y() + i * dy)
                out[label] = max(out[label], pump.step(
                    lambda p=p: mouse(view, "move", p, Qt.MiddleButton)))
                steps += 1
                time.sleep(0.016)
            out[label] = max(out[label], pump.step(
                lambda p=p: mouse(view, "release", p, Qt.MiddleButton)))
        out[f"{label} steps"] = steps
        cpu[label], pump.cpu = pump.cpu, 0.0
    out["cpu"] = cpu
    return out


def run_widget(args) -> None:
    from AnyQt.QtWidgets import QApplication
    from Orange.data import ContinuousVariable, Domain, StringVariable, Table

    from orangecontrib.imageanalytics.widgets.owimagegrid import OWImageGrid

    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(args.folder) for f in fs)
    vectors = np.load(args.vectors)
    if args.all_files:
        files = files[:args.n]
        rng = np.random.default_rng(0)
        reps = -(-len(files) // len(vectors))
        x = np.concatenate([vectors] * reps)[:len(files)].astype(np.float64)
        extra = slice(len(vectors), None)
        x[extra] += rng.normal(0, 0.05 * vectors.std(), x[extra].shape)
    else:
        files = files[::max(1, len(files) // 10000)][:10000][:args.n]
        x = vectors[:len(files)]
        files = files[:len(x)]
    image = StringVariable("image")
    image.attributes["type"] = "image"
    domain = Domain([ContinuousVariable(f"n{i}") for i in range(x.shape[1])],
                    metas=[image])
    table = Table.from_numpy(domain, x, metas=np.array(files, dtype=object)[:, None])
    del x

    app = QApplication.instance() or QApplication([])
    w = OWImageGrid()
    w.resize(1200, 800)
    w.show()
    app.processEvents()
    got = capture(w.Outputs.data)
    pump = Pump(app)
    t0 = time.perf_counter()
    w.set_data(table)
    w.handleNewSignals()
    t_input = time.perf_counter() - t0
    stall_layout = pump.until(lambda: any(v is not None for v in got), args.limit)
    t_out = time.perf_counter() - t0
    print(f"{len(table)} images on a {w.rows}×{w.columns} grid: input call {t_input:.3f} s, "
          f"outputs after {t_out:.1f} s, longest GUI stall while laying out "
          f"{stall_layout * 1000:.0f} ms (GUI thread's own CPU {pump.cpu * 1000:.0f} ms)")
    pump.cpu = 0.0
    print(f"overview: cells of {w.view.cell_size:.2f} px, map: {w.view.is_map()}, "
          f"colours known {int((w.averages.state != 0).sum())}")
    stalls = zoom_and_pan(app, w, args.seconds)
    cpu = stalls["cpu"]
    print(f"zooming ({stalls['zoom steps']} wheel notches, whole grid ↔ thumbnails): "
          f"longest GUI stall {stalls['zoom'] * 1000:.0f} ms (CPU {cpu['zoom'] * 1000:.0f} ms)")
    for label in ("pan map", "pan thumbnails"):
        print(f"{label} ({stalls[label + ' steps']} moves): longest GUI stall "
              f"{stalls[label] * 1000:.0f} ms (CPU {cpu[label] * 1000:.0f} ms)")
    now, peak = rss_mb()
    print(f"colours known {int((w.averages.state != 0).sum())} of {len(table)} "
          f"after {time.perf_counter() - t0:.0f} s; RSS {now:.0f} MB, peak {peak:.0f} MB")
    w.onDeleteWidget()


def run_workflow(args) -> None:
    os.environ["ORANGE_IMAGEANALYTICS_CACHE_DIR"] = args.cache
    scratch = tempfile.TemporaryDirectory(prefix="bench-grid-thumbnails-")
    os.environ["ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE"] = scratch.name
    from AnyQt.QtCore import QPoint, QRect, Qt
    from AnyQt.QtWidgets import QApplication

    from orangecontrib.imageanalytics.widgets.owimageembedding import OWImageEmbedding
    from orangecontrib.imageanalytics.widgets.owimagegrid import OWImageGrid
    from orangecontrib.imageanalytics.widgets.owimageimport import OWImportImages
    from orangecontrib.imageanalytics.widgets.owimageviewer import OWImageViewer

    app = QApplication.instance() or QApplication([])
    pump = Pump(app)
    t0 = time.perf_counter()

    def report(stage):
        gc.collect()
        now, peak = rss_mb()
        print(f"{time.perf_counter() - t0:6.1f} s  {stage}: RSS {now:.0f} MB, "
              f"peak {peak:.0f} MB", flush=True)
        for line in feature_copies():
            print(f"           features: {line}")

    report("start")
    imp = OWImportImages()
    images = capture(imp.Outputs.data)
    imp.set_folder(args.folder)
    pump.until(lambda: images and images[-1] is not None, args.limit, 0.02)
    table = images[-1]
    report(f"Import Images: {len(table)} rows")

    emb = OWImageEmbedding()
    embedded = capture(emb.Outputs.embeddings)
    emb.set_data(table)
    emb.handleNewSignals()
    pump.until(lambda: embedded and embedded[-1] is not None, args.limit, 0.02)
    vectors = embedded[-1]
    report(f"Image Embedding: {len(vectors)} rows × {len(vectors.domain.attributes)}")

    grid = OWImageGrid()
    grid.resize(1200, 800)
    grid.show()
    selected, all_images = capture(grid.Outputs.selected_data), capture(grid.Outputs.data)
    grid.set_data(vectors)
    grid.handleNewSignals()
    stall = pump.until(lambda: all_images and all_images[-1] is not None, args.limit, 0.02)
    report(f"Image Grid laid out (longest GUI stall {stall * 1000:.0f} ms)")
    # the top half of the overview marked with a rubber band
    view = grid.view
    vp = view.viewport().rect()
    grid.select(view.rows_in(QRect(QPoint(0, 0), QPoint(vp.width(), vp.height() // 2))),
                Qt.NoModifier)
    pump.until(lambda: False, 2)
    marked = selected[-1]
    report(f"Image Grid: {len(marked)} marked")

    viewer = OWImageViewer()
    viewer.resize(1000, 700)
    viewer.show()
    viewer.set_data(marked)
    viewer.handleNewSignals()
    stall = pump.until(lambda: False, args.seconds)
    report(f"Image Viewer showing the marked images ({args.seconds:.0f} s; "
           f"longest GUI stall {stall * 1000:.0f} ms)")
    # and the whole table instead (the grid's other output)
    viewer.set_data(all_images[-1])
    viewer.handleNewSignals()
    pump.until(lambda: False, args.seconds)
    report("Image Viewer showing all images")
    for widget in (viewer, grid, emb, imp):
        widget.onDeleteWidget()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vectors", nargs="?")
    ap.add_argument("folder", nargs="?")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--all-files", action="store_true")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="how long each of zooming and panning goes on")
    ap.add_argument("--limit", type=float, default=600.0)
    ap.add_argument("--workflow", metavar="FOLDER")
    ap.add_argument("--cache", help="the embedding cache folder (--workflow)")
    args = ap.parse_args()
    from machine import machine_line
    print(machine_line(), flush=True)
    if args.workflow:
        args.folder = args.workflow
        run_workflow(args)
    else:
        run_widget(args)


if __name__ == "__main__":
    main()
