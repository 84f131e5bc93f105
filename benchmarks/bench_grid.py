"""Image Grid benchmark: layout time, peak memory and k-NN preservation.

Vectors: SqueezeNet embeddings of the "many" workload, computed once with
ImageEmbedder and kept in an .npy outside the repository:

    python benchmarks/bench_grid.py VECTORS.npy [--sizes 1000 2000 5000 10000]
    python benchmarks/bench_grid.py --embed FOLDER VECTORS.npy   # make the file

Each size runs in a fresh process so peak memory (ru_maxrss) is its own.
Quality: for each image, the share of its 10 nearest images by cosine that
are also among its 10 nearest on the grid; the mean over images (random ≈ 0).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def embed(folder: str, out: str, n: int = 10000) -> None:
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs)
    files = files[::max(1, len(files) // n)][:n]
    vecs = ImageEmbedder(model="squeezenet")(files)
    np.save(out, np.array([v for v in vecs if v is not None], dtype=np.float32))


def one(path: str, n: int) -> dict:
    from orangecontrib.imageanalytics.image_grid import knn_preservation, layout_grid
    x = np.load(path)[:n]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    layout = layout_grid(x, seed=0)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(np.unique(layout.cell)) == len(x)
    return {"n": len(x), "grid": f"{layout.rows}x{layout.cols}",
            "seconds": round(elapsed, 2), "peak_mb": round(peak / 1024, 1),
            "layout_extra_mb": round((peak - base) / 1024, 1),
            "quality": round(knn_preservation(x, layout), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vectors")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    ap.add_argument("--embed", metavar="FOLDER")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.embed:
        embed(args.embed, args.vectors)
        return
    if args.one:
        print(json.dumps(one(args.vectors, args.one)))
        return
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, args.vectors, "--one", str(n)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['n']:>6} images  grid {r['grid']:>7}  {r['seconds']:7.2f} s  "
              f"peak {r['peak_mb']:7.1f} MB  quality {r['quality']:.3f}", flush=True)


if __name__ == "__main__":
    main()
