#!/usr/bin/env python3
"""Build the example image collection shipped in examples/images.

The pictures come from scikit-learn, a dependency: its two sample photos
(a Chinese temple and a flower) and its 8x8 handwritten digits. Each photo
gives several crops; each digit is enlarged. Deterministic: same output for
the same scikit-learn.

    python scripts/make_examples.py [OUT]
"""
import os
import sys

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits, load_sample_image

CROPS_PER_PHOTO = 6


def photo_crops(name: str, rng: np.random.Generator):
    photo = Image.fromarray(load_sample_image(name))
    w, h = photo.size
    for _ in range(CROPS_PER_PHOTO):
        cw, ch = int(w * rng.uniform(0.45, 0.8)), int(h * rng.uniform(0.45, 0.8))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        yield crop.resize((320, 240), Image.Resampling.LANCZOS)


def main(out: str) -> None:
    rng = np.random.default_rng(0)
    for name, category in (("china.jpg", "temple"), ("flower.jpg", "flower")):
        folder = os.path.join(out, category)
        os.makedirs(folder, exist_ok=True)
        for i, img in enumerate(photo_crops(name, rng)):
            img.save(os.path.join(folder, f"{category}-{i + 1:02d}.jpg"),
                     quality=85, optimize=True)
    digits = load_digits()
    folder = os.path.join(out, "digit")
    os.makedirs(folder, exist_ok=True)
    for i in range(CROPS_PER_PHOTO):
        pixels = (255 - digits.images[i] * 16).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(pixels).resize((96, 96), Image.Resampling.NEAREST)
        img.save(os.path.join(folder, f"digit-{digits.target[i]}-{i + 1:02d}.png"),
                 optimize=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "examples", "images"))
