#!/usr/bin/env python3
"""Benchmark: import a large folder of images (Import Images' scan).

Scans a workload folder the way the Import Images widget does
(``import_images``: image headers only, sorted, categories, the Orange
table) and, in the same run, a reference scan that builds the same table but
learns every size by fully decoding the image (``Image.open`` + ``load``).
Each scan runs **whole process** (a fresh Python interpreter, imports
included); the two alternate ``--repeat`` times and the best of each is kept,
after an untimed pass that reads every file so that both find the files in
the page cache. Reports files/s for both (whole process, and the scan alone
as measured inside the process) and the ratios reference / ours. Interpreter
start-up and importing Orange take about 2 s here, so on small collections
the whole-process ratio tends to 1.

The standard workload is "many" (20,000 JPEGs of 96x72 in four
sub-folders), made by the shared ``make_photos.py`` script::

    python make_photos.py OUT --count 20000 --size 96x72 --quality 80

Usage::

    # the workload exists already
    python benchmarks/bench_import.py MANY

    # build it first if the folder is missing
    python benchmarks/bench_import.py MANY \\
        --make-photos path/to/make_photos.py --count 20000

    # a quick check on a smaller collection
    python benchmarks/bench_import.py MANY2K \\
        --make-photos path/to/make_photos.py --count 2000

Options: ``--workers N`` (header-reading threads, default as the library),
``--repeat N`` (runs of each scan; the best is reported), ``--no-reference``.
The target for "many" is at least 2,000 files/s on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time

import PIL

# Run in a fresh interpreter: argv = [folder, workers, "header" | "decode"].
# "decode" is the reference: the same scan and table, but every image is
# opened and fully decoded (Image.open + load) to learn its size.
SCAN = """
import json, sys, time
t0 = time.perf_counter()
from PIL import Image
from orangecontrib.imageanalytics import import_images as module
from orangecontrib.imageanalytics.images import ImageInfo, ImageLoadError

def full_decode_info(path, **_):
    try:
        with Image.open(path) as im:
            im.load()
            return ImageInfo(im.width, im.height, im.format or "")
    except Exception as e:
        raise ImageLoadError(str(e))

if sys.argv[3] == "decode":
    module.read_image_info = full_decode_info
workers = int(sys.argv[2]) if sys.argv[2] != "default" else None
t1 = time.perf_counter()
r = module.import_images(sys.argv[1], workers=workers)
t2 = time.perf_counter()
print(json.dumps({"images": r.n_images, "skipped": r.n_skipped,
                  "categories": r.n_categories,
                  "startup_s": t1 - t0, "scan_s": t2 - t1}))
"""


def count_image_files(folder: str) -> int:
    """Read every file once (untimed): warms the page cache for both scans."""
    from orangecontrib.imageanalytics.images import IMAGE_EXTENSIONS

    n = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                with open(os.path.join(root, name), "rb") as f:
                    f.read()
                n += 1
    return n


def whole_process(code: str, *args: str) -> tuple[float, dict]:
    """Wall time of a fresh interpreter running `code`, and what it printed."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args],
                          check=False, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"scan failed (exit {proc.returncode}):\n{proc.stderr}")
    return elapsed, json.loads(proc.stdout.strip().splitlines()[-1])


def make_workload(args: argparse.Namespace) -> None:
    if os.path.isdir(args.workload):
        return
    if not args.make_photos:
        sys.exit(f"{args.workload} does not exist; give --make-photos "
                 "(path to make_photos.py) to build it")
    cmd = [sys.executable, args.make_photos, args.workload,
           "--count", str(args.count), "--size", args.size,
           "--quality", str(args.quality)]
    print("building workload:", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", help="folder of images to scan")
    ap.add_argument("--make-photos", metavar="SCRIPT",
                    help="make_photos.py, to build the workload if missing")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--size", default="96x72")
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--workers", default="default",
                    help="header-reading threads (default: the library's)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the full-decode reference scan")
    args = ap.parse_args(argv)

    print("command:", shlex.join([sys.executable] + sys.argv))
    print(f"machine: nproc={os.cpu_count()}, {platform.platform()}, "
          f"Python {platform.python_version()}, Pillow {PIL.__version__}")
    make_workload(args)
    workload = os.path.abspath(args.workload)
    n_files = count_image_files(workload)
    print(f"workload: {workload}: {n_files} image files")

    modes = {"header": "import_images (headers)"}
    if not args.no_reference:
        modes["decode"] = "full-decode reference"
    # alternate the scans, so that a change in the machine's load hits both
    best: dict[str, tuple[float, dict]] = {}
    for _ in range(max(1, args.repeat)):
        for mode in modes:
            run = whole_process(SCAN, workload, args.workers, mode)
            if mode not in best or run[0] < best[mode][0]:
                best[mode] = run
    seconds = {}
    for mode, label in modes.items():
        wall, info = best[mode]
        seconds[mode] = wall
        print(f"{label}, whole process: {info['images']} images, "
              f"{info['categories']} categories, {info['skipped']} skipped "
              f"in {wall:.2f} s -> {n_files / wall:,.0f} files/s "
              f"(interpreter and imports {wall - info['scan_s']:.2f} s, "
              f"scan {info['scan_s']:.2f} s -> "
              f"{n_files / info['scan_s']:,.0f} files/s)")
    if "decode" in seconds:
        print(f"ratio, whole process (full decode / headers): "
              f"{seconds['decode'] / seconds['header']:.2f}x")
        print(f"ratio, scan only (full decode / headers): "
              f"{best['decode'][1]['scan_s'] / best['header'][1]['scan_s']:.2f}x")


if __name__ == "__main__":
    main()
