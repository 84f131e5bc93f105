"""Image Grid benchmark: layout time, peak memory and k-NN preservation.

Vectors: SqueezeNet embeddings of the "many" workload, computed once with
ImageEmbedder and kept in an .npy outside the repository, with the float32
model by default (INT8's rounding differs from processor to processor, and
the quality below is measured against the file's own neighbours):

    python benchmarks/bench_grid.py --embed FOLDER VECTORS.npy     # make the file
    python benchmarks/bench_grid.py VECTORS.npy [--sizes 2000 10000 50000 100000]

The rows for a size are a fixed random draw from the file, so that every
size holds all kinds of photo; a size above the file's rows takes them all
plus noisy copies of rows drawn at random (``--noise`` times each feature's
spread, clipped at zero as the network's features are).

Each size and path runs in a fresh process so peak memory (ru_maxrss, the
input vectors included) is its own. Paths: ``layout`` is ``layout_grid`` as
it is (t-SNE on a sample above ``SAMPLE_ABOVE`` rows), ``full`` is t-SNE on
every row (the only path before the sample), run up to ``--full-max`` rows.

Quality: for each image, the share of its 10 nearest images by cosine that
are also among its 10 nearest on the grid; the mean over all images up to
``--quality-all`` rows, else over a fixed random sample of ``--quality-rows``
rows (their neighbours still sought among all rows); random ≈ 10 / n.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np


def embed(folder: str, out: str, n: int | None = None, engine: str = "onnx") -> None:
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs)
    if n is not None:
        files = files[::max(1, len(files) // n)][:n]
    vecs = ImageEmbedder(model="squeezenet", engine=engine)(files)
    np.save(out, np.array([v for v in vecs if v is not None], dtype=np.float32))


def rows_for(path: str, n: int, noise: float, dtype) -> np.ndarray:
    """n rows: a fixed draw from the file, or all of it plus noisy copies."""
    base = np.load(path, mmap_mode="r")
    rng = np.random.default_rng(0)
    if n <= len(base):
        return np.asarray(base[np.sort(rng.permutation(len(base))[:n])], dtype=dtype)
    out = np.empty((n, base.shape[1]), dtype=dtype)
    out[:len(base)] = base
    spread = np.asarray(base[::max(1, len(base) // 5000)]).std(axis=0)
    extra = rng.integers(0, len(base), n - len(base))
    for start in range(len(base), n, 10_000):
        src = extra[start - len(base):start - len(base) + 10_000]
        block = base[src] + rng.normal(size=(len(src), base.shape[1])) * noise * spread
        out[start:start + len(src)] = np.maximum(block, 0)
    return out


def one(path: str, n: int, how: str, args) -> dict:
    from orangecontrib.imageanalytics.image_grid import knn_preservation, layout_grid
    x = rows_for(path, n, args.noise, np.float64 if args.float64 else np.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    layout = layout_grid(x, seed=0, n_jobs=args.n_jobs,
                         sample_above=(10 ** 12) if how == "full" else None)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(np.unique(layout.cell)) == len(x)
    q_rows = None if n <= args.quality_all else args.quality_rows
    return {"n": len(x), "how": how, "grid": f"{layout.rows}x{layout.cols}",
            "seconds": round(elapsed, 2), "peak_mb": round(peak / 1024, 1),
            "layout_extra_mb": round((peak - base) / 1024, 1),
            "quality": round(knn_preservation(x, layout, rows=q_rows), 3),
            "quality_rows": q_rows or n}


def cpu_line() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "CPU flags: unknown"
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split()) \
        if "flags" in info else set()
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni"]
    return (f"CPU: {model.group(1) if model else '?'}, {os.cpu_count()} cores; "
            f"flags: {' '.join(w for w in wanted if w in flags) or 'none of avx2/avx512/vnni'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vectors")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 50000, 100000])
    ap.add_argument("--paths", nargs="+", default=["layout", "full"],
                    choices=["layout", "full"])
    ap.add_argument("--full-max", type=int, default=50000,
                    help="largest size for the full t-SNE path")
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--float64", action="store_true",
                    help="float64 input, as an Orange table holds it")
    ap.add_argument("--quality-all", type=int, default=10000)
    ap.add_argument("--quality-rows", type=int, default=2000)
    ap.add_argument("--embed", metavar="FOLDER")
    ap.add_argument("--count", type=int, help="with --embed: this many images")
    ap.add_argument("--engine", default="onnx",
                    help="with --embed: the engine (onnx = float32, the default: the same "
                         "vectors on every processor; auto, onnx-int8, torch)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--how", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.embed:
        embed(args.embed, args.vectors, args.count, args.engine)
        return
    if args.one:
        print(json.dumps(one(args.vectors, args.one, args.how, args)))
        return
    from orangecontrib.imageanalytics.image_grid import SAMPLE_ABOVE
    print(cpu_line())
    print(f"load average at start: {' '.join(map(str, os.getloadavg()))}", flush=True)
    for n in args.sizes:
        for how in args.paths:
            if how == "full" and (n > args.full_max or n <= SAMPLE_ABOVE):
                continue  # too slow, or the same path as "layout"
            cmd = [sys.executable, __file__, args.vectors, "--one", str(n), "--how", how,
                   "--noise", str(args.noise), "--n-jobs", str(args.n_jobs),
                   "--quality-all", str(args.quality_all),
                   "--quality-rows", str(args.quality_rows)]
            if args.float64:
                cmd.append("--float64")
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{r['n']:>7} images  {r['how']:>6}  grid {r['grid']:>9}  "
                  f"{r['seconds']:7.2f} s  peak {r['peak_mb']:7.1f} MB  "
                  f"quality {r['quality']:.3f} ({r['quality_rows']} rows)  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
