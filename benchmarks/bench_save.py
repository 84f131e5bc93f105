#!/usr/bin/env python3
"""Benchmark: Save Images, the copy path and the re-encode path.

Saves a workload folder (the "web" collection: 500 JPEGs of 640x480 in four
sub-folders) with ``save_images`` into a fresh folder per run, one folder per
category, and in the same process runs the references:

- **copy**: ``save_images(format="jpg")`` without scaling, which copies each
  unchanged JPEG byte for byte (after checking it is whole), against a plain
  ``shutil.copyfile`` loop;
- **re-encode**: ``save_images(format="png", size=(227, 227))`` (SqueezeNet's
  input size), against a plain single-threaded Pillow loop: ``Image.open``,
  ``convert("RGB")``, ``resize((227, 227))``, ``save(... .png)``;
- **again**: the re-encode save repeated into the same folder, where every
  file is already there (what "Resume save" and saving twice cost).

Runs alternate ``--repeat`` times and the best of each is kept, after an
untimed pass that reads every file so that all runs find them in the page
cache. Reports files/s, the ratio ours / reference, and the CPU time per
wall second (how many cores were busy).

With ``--gui`` it instead runs the Save Images widget (headless Qt) on the
same photos, re-encoding, and reports the longest
``QApplication.processEvents()`` call while it saves: the longest the
window freezes.

Usage (WEB: the folder of the "web" photos, made with the shared
``make_photos.py WEB --count 500 --size 640x480``)::

    python benchmarks/bench_save.py WEB [--repeat 3] [--workers N]
    python benchmarks/bench_save.py WEB --gui

The target: at least 1.5× the plain loop on the re-encode path, on a 2-core
machine with both cores busy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import PIL
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from orangecontrib.imageanalytics.images import resolve_source  # noqa: E402
from orangecontrib.imageanalytics.import_images import import_images  # noqa: E402
from orangecontrib.imageanalytics.save_images import save_images  # noqa: E402

SIZE = (227, 227)


def _timed(func):
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _jobs(table):
    """(source path, category) of every row, as save_images sees them."""
    image = table.domain["image"]
    origin = image.attributes.get("origin")
    class_var = table.domain.class_var
    out = []
    for row in table:
        category = str(row[class_var]) if class_var is not None else ""
        out.append((resolve_source(str(row[image]), origin), category))
    return out


def reference_copy(jobs, target):
    for source, category in jobs:
        folder = os.path.join(target, category)
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(source, os.path.join(folder, os.path.basename(source)))


def reference_encode(jobs, target):
    for source, category in jobs:
        folder = os.path.join(target, category)
        os.makedirs(folder, exist_ok=True)
        stem = os.path.splitext(os.path.basename(source))[0]
        with Image.open(source) as im:
            im.convert("RGB").resize(SIZE).save(os.path.join(folder, stem + ".png"))


def gui_freeze(table, scratch=None) -> None:
    """Save with the widget; print the longest processEvents() call."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from AnyQt.QtWidgets import QApplication

    from orangecontrib.imageanalytics.widgets.owsaveimages import OWSaveImages

    app = QApplication.instance() or QApplication([])
    out = tempfile.mkdtemp(prefix="bench-save-gui-", dir=scratch)
    try:
        widget = OWSaveImages()
        widget.set_data(table)
        widget.dirname = out
        widget.use_scale = True
        widget.scale_embedder = "squeezenet"
        start = time.perf_counter()
        widget.save()
        longest, calls = 0.0, 0
        while widget.task is not None:
            t0 = time.perf_counter()
            app.processEvents()
            longest = max(longest, time.perf_counter() - t0)
            calls += 1
            time.sleep(0.002)
        wall = time.perf_counter() - start
        print(f"widget: {widget.status_label.text()} in {wall:.1f} s; longest "
              f"processEvents() {1000 * longest:.1f} ms over {calls} calls")
        widget.onDeleteWidget()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="workload folder, e.g. the 'web' photos")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None,
                        help="threads of save_images (default: one per core)")
    parser.add_argument("--scratch", default=None,
                        help="where the saved copies go (default: a temporary folder)")
    parser.add_argument("--gui", action="store_true",
                        help="measure the widget's longest freeze instead")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    table = import_images(args.folder).table
    if table is None:
        print(f"No images in {args.folder}", file=sys.stderr)
        return 1
    if args.gui:
        gui_freeze(table, args.scratch)
        return 0
    n = len(table)
    jobs = _jobs(table)
    for source, _ in jobs:  # page cache
        with open(source, "rb") as f:
            f.read()

    scratch = tempfile.mkdtemp(prefix="bench-save-", dir=args.scratch)
    runs: dict[str, list[tuple[float, float]]] = {}

    def record(name, func):
        out = os.path.join(scratch, f"{name}-{len(runs.get(name, []))}")
        result, wall, cpu = _timed(lambda: func(out))
        runs.setdefault(name, []).append((wall, cpu))
        return result, out

    try:
        for _ in range(args.repeat):
            report, _ = record("copy", lambda out: save_images(
                table, out, format="jpg", workers=args.workers))
            assert len(report.saved) == n, report.summary()
            record("copy reference", lambda out: reference_copy(jobs, out))
            report, out = record("re-encode", lambda out: save_images(
                table, out, format="png", size=SIZE, workers=args.workers))
            assert len(report.saved) == n, report.summary()
            wall_cpu = _timed(lambda out=out: save_images(
                table, out, format="png", size=SIZE, workers=args.workers))
            assert len(wall_cpu[0].already_there) == n
            runs.setdefault("again", []).append(wall_cpu[1:])
            record("re-encode reference", lambda out: reference_encode(jobs, out))
            for name in os.listdir(scratch):
                shutil.rmtree(os.path.join(scratch, name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    best = {name: min(values) for name, values in runs.items()}
    figures = {name: {"files_per_s": n / wall, "cores_busy": cpu / wall}
               for name, (wall, cpu) in best.items()}
    ratios = {
        "copy": best["copy reference"][0] / best["copy"][0],
        "re-encode": best["re-encode reference"][0] / best["re-encode"][0],
    }
    if args.json:
        print(json.dumps({"files": n, "figures": figures, "ratios": ratios}, indent=2))
        return 0
    print(f"{n} images from {args.folder}; {os.cpu_count()} cores "
          f"({platform.machine()}), Python {platform.python_version()}, "
          f"Pillow {PIL.__version__}; best of {args.repeat}")
    for name, value in figures.items():
        print(f"  {name:<20} {value['files_per_s']:8.1f} files/s   "
              f"{value['cores_busy']:.2f} cores busy")
    print(f"  copy:      ours / shutil.copyfile loop = {ratios['copy']:.2f}×")
    print(f"  re-encode: ours / plain Pillow loop    = {ratios['re-encode']:.2f}× "
          "(target ≥ 1.5×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
