#!/usr/bin/env python3
"""Benchmark: Image Viewer with many photos and with camera photos.

Measures, in one run of each workload:

* the input call (``set_data``) on the whole table;
* the time until every thumbnail of the first screen is shown (cold disk
  cache: a fresh cache folder);
* the longest GUI stall while the scroll bar moves from top to bottom, one
  step every ~30 ms: every ``QApplication.processEvents()`` call is timed,
  the longest is the longest freeze a user would see;
* peak RSS, and RSS after a quarter, half and all of the scroll (a bounded
  memory cache does not grow with the rows scrolled past);
* the first screen again in a new process, from the warm disk cache.

Workloads (see the shared bench README): ``many`` — a table of 50,000 rows,
each its own file: the 20,000 photos of 96x72 of ``many`` plus hard
links to them (distinct paths) in a scratch folder, made on the first run;
``camera`` — the 200 photos of 12 MP. ``--source`` names the workload's folder.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_viewer.py many --source MANY
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_viewer.py camera --source CAMERA
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_viewer.py many --source MANY --rows 5000
    # a slow scroll, at which thumbnails keep loading (no fling):
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_viewer.py many --source MANY \
        --page-fraction 0.25 --step-ms 80 --max-steps 300

Options: ``--source`` (the photos), ``--scratch`` (where the links and the
cache go, default a folder in the system's temporary folder), ``--rows N``, ``--size PX`` (zoom,
default 100), ``--step-ms``, ``--page-fraction``, ``--max-steps``.

A page every 30 ms is a fling: the viewer makes no thumbnails until it
stops (as phone galleries do), and the benchmark then times the painting of
the scroll and the first screen after it. The slow scroll loads throughout.
Targets on a 2-core machine: input ≤ 0.5 s at 50,000 rows; longest stall
≤ 100 ms; first screen ≤ 1 s (many), ≤ 3 s (camera), ≤ 0.3 s warm; peak RSS
≤ 1 GB for camera, no growth while scrolling.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

IMAGE_EXT = (".jpg", ".jpeg", ".png")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def list_photos(folder: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out.extend(os.path.join(root, f) for f in sorted(files)
                   if f.lower().endswith(IMAGE_EXT))
    return out


def build_files(source: str, rows: int, scratch: str) -> tuple[str, list[str]]:
    """``rows`` distinct files: the photos, then hard links (or copies)."""
    photos = list_photos(source)
    if not photos:
        sys.exit(f"no photos in {source}")
    if rows <= len(photos):
        return source, [os.path.relpath(p, source) for p in photos[:rows]]
    folder = os.path.join(scratch, f"links-{os.path.basename(source.rstrip('/'))}-{rows}")
    names = [f"{i // 1000:03d}/{i:06d}.jpg" for i in range(rows)]
    marker = os.path.join(folder, ".complete")
    if not os.path.exists(marker):
        for i, name in enumerate(names):
            target = os.path.join(folder, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.exists(target):
                continue
            original = photos[i % len(photos)]
            try:
                os.link(original, target)
            except OSError:
                shutil.copyfile(original, target)
        open(marker, "w").close()
    return folder, names


def make_table(folder: str, names: list[str]):
    import numpy as np
    from Orange.data import ContinuousVariable, Domain, StringVariable, Table

    image = StringVariable("image")
    image.attributes["type"] = "image"
    image.attributes["origin"] = folder
    title = StringVariable("image name")
    domain = Domain([ContinuousVariable("x")], None, [title, image])
    metas = np.empty((len(names), 2), dtype=object)
    metas[:, 0] = [os.path.splitext(os.path.basename(n))[0] for n in names]
    metas[:, 1] = names
    return Table.from_numpy(domain, np.zeros((len(names), 1)), None, metas)


# the GUI thread's own CPU time per processEvents() call: on a loaded
# machine the wall time also holds the time the process waited for a core
cpu_stalls: list[float] = []


def timed_events(app, stalls: list[float]) -> None:
    t, c = time.perf_counter(), time.thread_time()
    app.processEvents()
    stalls.append(time.perf_counter() - t)
    cpu_stalls.append(time.thread_time() - c)


def first_screen(app, widget, stalls, timeout=60.0) -> float:
    """Seconds until every visible row has its thumbnail or its failure."""
    view, loader = widget.view, widget.loader
    size = widget.imageSize
    t0 = time.perf_counter()
    while True:
        timed_events(app, stalls)
        rows = view.visible_rows()
        if len(rows) and all(loader.cached(r, size) is not None and
                             loader.cached(r, size).width() > 0 and
                             not loader.is_pending(r) or loader.error(r) is not None
                             for r in rows):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            return float("nan")
        time.sleep(0.002)


_gc_pauses: list[float] = []
_gc_start = [0.0]


def _gc_callback(phase, info):
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    elif info.get("generation") == 2:
        _gc_pauses.append(time.perf_counter() - _gc_start[0])


def run_child(args) -> dict:
    import gc

    gc.callbacks.append(_gc_callback)
    from AnyQt.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from orangecontrib.imageanalytics.widgets.owimageviewer import OWImageViewer

    folder, names = build_files(args.source, args.rows, args.scratch)
    data = make_table(folder, names)
    widget = OWImageViewer()
    widget.imageSize = args.size
    widget._on_zoom()
    widget.resize(1280, 860)
    widget.show()
    for _ in range(5):
        app.processEvents()
    if args.no_fling_pause:
        # for comparison: thumbnails keep loading during the fling too
        widget.view.verticalScrollBar().valueChanged.disconnect(widget._fling._on_moved)
    result = {"rows": len(data), "warm": args.warm}
    rss_before = rss_mb()
    t = time.perf_counter()
    widget.set_data(data)
    result["input_s"] = time.perf_counter() - t
    stalls: list[float] = []
    result["first_screen_s"] = first_screen(app, widget, stalls)
    bar = widget.view.verticalScrollBar()
    # the view lays its rows out in batches, between events; the scroll
    # starts when it is done (the bar's range stops growing), still timing
    view, model = widget.view, widget.model
    t = time.perf_counter()
    while time.perf_counter() - t < 60:
        last = view.visualRect(model.index(model.rowCount() - 1))
        first = view.visualRect(model.index(0))
        if last.isValid() and last.top() > first.top() \
                and bar.maximum() >= last.bottom() + bar.value() - view.viewport().height():
            break  # the last row has its place: every row is laid out
        timed_events(app, stalls)
        time.sleep(0.002)
    result["layout_s"] = time.perf_counter() - t
    result["first_screen_stall_ms"] = max(stalls) * 1000
    if args.warm:
        result["peak_rss_mb"] = peak_rss_mb()
        widget.onDeleteWidget()
        return result

    fraction = args.page_fraction or (1.0 if args.rows > 1000 else 0.25)
    step = max(1, int(bar.pageStep() * fraction))
    stalls = []
    cpu_stalls.clear()
    gc_before = len(_gc_pauses)  # imports and loading collect too
    marks = {}
    paused = []  # moves made while the viewer's loader was paused (a fling)
    bar.valueChanged.connect(lambda _: paused.append(widget.loader.is_paused()))
    t_scroll = time.perf_counter()
    value = 0

    def end():
        # the view may still be laying out rows: the range grows meanwhile
        return bar.maximum() if not args.max_steps \
            else min(bar.maximum(), step * args.max_steps)

    while value < end():
        value = min(end(), value + step)
        t = time.perf_counter()
        bar.setValue(value)
        stalls.append(time.perf_counter() - t)
        deadline = time.perf_counter() + args.step_ms / 1000
        while time.perf_counter() < deadline:
            timed_events(app, stalls)
            time.sleep(0.001)
        done = value / max(1, bar.maximum())
        for mark in (0.25, 0.5, 1.0):
            if done >= mark and mark not in marks:
                marks[mark] = rss_mb()
    # let the last screen load, still timing
    first_screen(app, widget, stalls)
    result["scroll_s"] = time.perf_counter() - t_scroll
    result["scroll_steps"] = len(range(0, end(), step))
    result["page_fraction"] = fraction
    result["paused_while_scrolling"] = sum(paused)
    result["longest_stall_ms"] = max(stalls) * 1000
    result["stalls_over_50ms"] = sum(s > 0.05 for s in stalls)
    result["longest_stall_cpu_ms"] = max(cpu_stalls) * 1000
    result["stalls_cpu_over_50ms"] = sum(s > 0.05 for s in cpu_stalls)
    result["load_average"] = os.getloadavg()[0]
    result["rss_before_mb"] = rss_before
    result["rss_at_mb"] = {str(k): round(v) for k, v in marks.items()}
    result["memory_cache_mb"] = widget.loader.memory_used() / 2**20
    result["peak_rss_mb"] = peak_rss_mb()
    result["gc_full_collections"] = len(_gc_pauses) - gc_before
    result["gc_longest_ms"] = max(_gc_pauses[gc_before:], default=0) * 1000
    widget.onDeleteWidget()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=("many", "camera"))
    parser.add_argument("--source")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "bench-viewer"))
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--step-ms", type=float, default=30.0)
    parser.add_argument("--page-fraction", type=float,
                        help="scroll step as a fraction of a page (default: a page "
                             "over 1,000 rows, else a quarter)")
    parser.add_argument("--max-steps", type=int, help="stop scrolling after N steps")
    parser.add_argument("--no-fling-pause", action="store_true",
                        help="for comparison: keep loading thumbnails during a fling")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.source:
        parser.error("--source: the folder of the workload's photos (see the shared bench README)")
    args.rows = args.rows or (50_000 if args.workload == "many" else 200)
    if args.child:
        print(json.dumps(run_child(args)))
        return

    cache = os.path.join(args.scratch, f"cache-{args.workload}")
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE=cache)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    base = [sys.executable, os.path.abspath(__file__), args.workload, "--child",
            "--source", args.source, "--rows", str(args.rows), "--scratch", args.scratch,
            "--size", str(args.size), "--step-ms", str(args.step_ms)]
    if args.page_fraction:
        base += ["--page-fraction", str(args.page_fraction)]
    if args.max_steps:
        base += ["--max-steps", str(args.max_steps)]
    if args.no_fling_pause:
        base += ["--no-fling-pause"]
    results = {}
    for phase, extra in (("cold", []), ("warm", ["--warm"])):
        t = time.perf_counter()
        out = subprocess.run(base + extra, env=env, capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            sys.exit(f"{phase} run failed:\n{out.stderr[-3000:]}")
        results[phase] = json.loads(out.stdout.strip().splitlines()[-1])
        results[phase]["process_s"] = time.perf_counter() - t
    cold, warm = results["cold"], results["warm"]
    print(f"workload {args.workload}: {cold['rows']:,} rows, zoom {args.size} px")
    print(f"  input call            {cold['input_s'] * 1000:8.1f} ms")
    print(f"  first screen (cold)   {cold['first_screen_s']:8.2f} s")
    print(f"  first screen (warm)   {warm['first_screen_s']:8.2f} s  (new process)")
    print(f"  longest stall scroll  {cold['longest_stall_ms']:8.1f} ms  "
          f"({cold['scroll_steps']} steps of {cold['page_fraction']:g} page every "
          f"{args.step_ms:.0f} ms, {cold['stalls_over_50ms']} calls > 50 ms)")
    print(f"  ... of it GUI-thread CPU {cold['longest_stall_cpu_ms']:6.1f} ms  "
          f"({cold['stalls_cpu_over_50ms']} calls > 50 ms; load average "
          f"{cold['load_average']:.1f} on {os.cpu_count()} cores)")
    print(f"  scroll steps with loading paused (a fling): {cold['paused_while_scrolling']}")
    print(f"  longest stall 1st scr {cold['first_screen_stall_ms']:8.1f} ms  "
          f"(until the view has laid out every row, {cold['layout_s']:.2f} s "
          f"after the first screen)")
    print(f"  RSS before / at 25 %, 50 %, 100 % of the scroll: "
          f"{cold['rss_before_mb']:.0f} / {cold['rss_at_mb']} MB")
    print(f"  peak RSS              {cold['peak_rss_mb']:8.0f} MB "
          f"(memory cache {cold['memory_cache_mb']:.0f} MB)")
    print(f"  full garbage collections while scrolling: {cold['gc_full_collections']}, "
          f"longest {cold['gc_longest_ms']:.0f} ms")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
