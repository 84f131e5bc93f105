#!/usr/bin/env python3
"""Embedding quality: which local embedder tells pictures apart best.

The labelled set is built only from pictures that ship inside installed
packages (scikit-learn's sample photos, matplotlib's, ndf's test photo,
Orange's splash screens, Qt's material textures), so anyone can rerun it
offline.  Each source picture is one class; its members are strong random
augmentations of it: a crop of 35-75 % of each side, a rotation of up to
45 degrees or a quarter turn, a mirror, brightness, contrast, saturation and
hue changes, a Gaussian blur and a JPEG recompression at quality 10-60.
Telling the classes apart means recognising a picture's content under all
that, not matching its pixels.

For every local embedder whose weights are present here, and for raw pixels
(the image at 24×24, RGB), it reports

* **logistic regression**: 5-fold stratified cross-validated accuracy of a
  multinomial logistic regression on standardised features;
* **1-NN retrieval**: the share of images whose nearest other image (cosine)
  belongs to the same class.

Usage::

    python benchmarks/bench_quality.py [--per-class 30] [--seed 0]
"""
from __future__ import annotations

import argparse
import importlib.resources
import io
import os
import sys
import tempfile
import time
import warnings

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.local import LocalEmbedder
from orangecontrib.imageanalytics.embedders.registry import (
    embedder_keys,
    get_embedder,
)

# (package, resource): pictures that installed packages ship
SOURCES = (
    ("sklearn.datasets", "images/china.jpg"),
    ("sklearn.datasets", "images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("ndf", "tests/book-2020460_640.jpg"),
    ("Orange", "canvas/icons/orange-splash-screen-01.png"),
    ("Orange", "canvas/icons/orange-splash-screen-02.png"),
    ("Orange", "canvas/icons/orange-splash-screen-03.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/grunge_b.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/brushed_a.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/paper_diffuse.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/concentric_milled_steel.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/art_paper_normal.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/grunge_d.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/spherical_checker.png"),
    ("PyQt5", "Qt5/qml/QtQuick3D/Materials/maps/brushed_full_contrast.png"),
    ("Orange", "canvas/icons/orange-256.png"),
    ("pyqtgraph", "icons/peegee/peegee_512px.png"),
)
RAW_SIDE = 24


def source_pictures() -> list[tuple[str, Image.Image]]:
    pictures = []
    for package, resource in SOURCES:
        try:
            path = importlib.resources.files(package) / resource
            with Image.open(io.BytesIO(path.read_bytes())) as image:
                pictures.append((os.path.basename(resource),
                                 image.convert("RGB")))
        except (ModuleNotFoundError, FileNotFoundError, OSError):
            continue
    return pictures


def _hue_shift(image: Image.Image, shift: float) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    h = h.point(lambda x: int(x + 255 * shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One strong random augmentation of ``image``."""
    width, height = image.size
    cw = int(width * rng.uniform(0.35, 0.75))
    ch = int(height * rng.uniform(0.35, 0.75))
    left = int(rng.integers(0, width - cw + 1))
    top = int(rng.integers(0, height - ch + 1))
    out = image.crop((left, top, left + cw, top + ch))
    scale = 320 / max(out.size)
    out = out.resize((max(1, round(out.width * scale)),
                      max(1, round(out.height * scale))),
                     Image.Resampling.BICUBIC)
    if rng.random() < 0.3:
        out = out.rotate(90 * int(rng.integers(1, 4)), expand=True)
    else:
        angle = float(rng.uniform(-45, 45))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        out = out.rotate(angle, Image.Resampling.BILINEAR, fillcolor=fill)
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.6, 1.4))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.6, 1.4))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.3, 1.7))
    out = _hue_shift(out, rng.uniform(-0.1, 0.1))
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2.5)))
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=int(rng.integers(10, 61)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def build_set(folder: str, per_class: int, seed: int
              ) -> tuple[list[str], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    paths, labels, names = [], [], []
    for label, (name, picture) in enumerate(source_pictures()):
        names.append(name)
        for i in range(per_class):
            path = os.path.join(folder, f"{label:02d}_{i:03d}.png")
            augment(picture, rng).save(path)
            paths.append(path)
            labels.append(label)
    return paths, np.array(labels), names


def raw_pixels(paths: list[str]) -> np.ndarray:
    rows = []
    for path in paths:
        with Image.open(path) as image:
            small = image.convert("RGB").resize((RAW_SIDE, RAW_SIDE),
                                                Image.Resampling.BOX)
        rows.append(np.asarray(small, dtype=np.float32).ravel())
    return np.vstack(rows)


def scores(features: np.ndarray, labels: np.ndarray, seed: int
           ) -> tuple[float, float, float]:
    """(mean 5-fold accuracy, its standard deviation, 1-NN retrieval)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits
    # the classes are separable in most feature spaces: lbfgs would iterate
    # long for digits that do not change the accuracy
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(max_iter=300))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    # one BLAS thread: the fits are small, and more threads only contend
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        accuracy = cross_val_score(model, features, labels, cv=folds)
    unit = features / np.maximum(
        np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    retrieval = float(np.mean(labels[nearest] == labels))
    return float(accuracy.mean()), float(accuracy.std()), retrieval


def local_embedders() -> list[str]:
    keys = []
    for key in embedder_keys():
        spec = get_embedder(key)
        if not spec.local:
            continue
        try:
            engines.get_runner(spec)
        except EmbedderUnavailable as err:
            print(f"{key}: skipped ({str(err).split(':')[0]})", flush=True)
            continue
        keys.append(key)
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30,
                        help="augmented images per source picture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact", action="store_true",
                        help="embed on the exact decoding path")
    args = parser.parse_args()
    print("command:", " ".join([os.path.basename(sys.executable)] + sys.argv))
    with tempfile.TemporaryDirectory() as folder:
        paths, labels, names = build_set(folder, args.per_class, args.seed)
        print(f"{len(names)} classes ({', '.join(names)}), "
              f"{len(paths)} images", flush=True)
        rows = [("raw pixels", raw_pixels(paths))]
        for key in local_embedders():
            start = time.perf_counter()
            outcomes = LocalEmbedder(key, exact=args.exact).embed(paths)
            if any(o.vector is None for o in outcomes):
                sys.exit(f"{key}: some images were not embedded")
            rows.append((key, np.vstack([o.vector for o in outcomes])))
            print(f"{key}: embedded in {time.perf_counter() - start:.1f} s",
                  flush=True)
    print("\n| features | dimension | logistic regression, 5-fold | "
          "1-NN retrieval |\n|---|---|---|---|")
    for name, features in rows:
        mean, std, retrieval = scores(features, labels, args.seed)
        print(f"| {name} | {features.shape[1]} | {mean:.3f} ± {std:.3f} | "
              f"{retrieval:.3f} |", flush=True)


if __name__ == "__main__":
    main()
