#!/usr/bin/env python3
"""Build the example photos that ship with the add-on (its tutorials use them).

Every picture comes from a package the add-on installs anyway:

=========  ===========================================================
temple     scikit-learn's sample photo ``china.jpg``
flower     scikit-learn's sample photo ``flower.jpg``
portrait   matplotlib's sample photo ``grace_hopper.jpg``
cartoon    Orange's splash-screen pictures of its mascot
digit      scikit-learn's 8x8 handwritten digits, enlarged
=========  ===========================================================

Two sets are written into ``orangecontrib/imageanalytics/tutorials/photos``:

``labelled/<category>/``
    ten pictures per category, for training and for the grid;
``new/``
    five more per category, without labels, to be predicted: other crops
    (another random stream), turned, with other colours and sharpness, and
    other digits, so none is a copy of a labelled picture.

Deterministic: the same output for the same scikit-learn, matplotlib and
Orange.

    python scripts/make_examples.py [OUT]
"""
from __future__ import annotations

import os
import shutil
import sys

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials", "photos")

LABELLED = 10
NEW = 5
SIZE = (256, 192)


def _photo(name: str) -> list[Image.Image]:
    """The source photos of a category."""
    if name == "temple":
        from sklearn.datasets import load_sample_image
        return [Image.fromarray(load_sample_image("china.jpg"))]
    if name == "flower":
        from sklearn.datasets import load_sample_image
        return [Image.fromarray(load_sample_image("flower.jpg"))]
    if name == "portrait":
        from matplotlib import cbook
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return [Image.open(f).convert("RGB")]
    if name == "cartoon":
        import Orange.canvas
        icons = os.path.join(os.path.dirname(Orange.canvas.__file__), "icons")
        photos = []
        for i in (1, 2, 3):
            with Image.open(os.path.join(icons, f"orange-splash-screen-0{i}.png")) as im:
                im = im.convert("RGBA")
                white = Image.new("RGBA", im.size, "white")
                # the mascot without the logo strip at the bottom
                photos.append(Image.alpha_composite(white, im).convert("RGB")
                              .crop((0, 0, im.width, int(im.height * 0.64))))
        return photos
    raise ValueError(name)


def crops(photos: list[Image.Image], n: int, rng: np.random.Generator,
          new: bool) -> list[Image.Image]:
    """``n`` random crops of the photos; the new ones also turned and retouched."""
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw = int(w * rng.uniform(0.45, 0.8))
        ch = min(h, int(cw * SIZE[1] / SIZE[0] * rng.uniform(0.9, 1.1)))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if new:
            crop = crop.rotate(float(rng.uniform(-12, 12)),
                               resample=Image.Resampling.BICUBIC, expand=False)
            crop = ImageEnhance.Color(crop).enhance(float(rng.uniform(0.6, 1.4)))
            crop = ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.8, 1.2)))
            if rng.random() < 0.5:
                crop = crop.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
        out.append(crop.resize(SIZE, Image.Resampling.LANCZOS))
    return out


def digits(first: int, n: int) -> list[tuple[int, Image.Image]]:
    from sklearn.datasets import load_digits
    data = load_digits()
    out = []
    for i in range(first, first + n):
        pixels = (255 - data.images[i] * 16).clip(0, 255).astype(np.uint8)
        out.append((int(data.target[i]),
                    Image.fromarray(pixels).resize((96, 96), Image.Resampling.NEAREST)))
    return out


def main(out: str = OUT) -> None:
    for part in ("labelled", "new"):
        shutil.rmtree(os.path.join(out, part), ignore_errors=True)
    labelled = os.path.join(out, "labelled")
    new = os.path.join(out, "new")
    os.makedirs(new)
    rng_labelled = np.random.default_rng(0)
    rng_new = np.random.default_rng(1)
    new_images: list[tuple[str, Image.Image]] = []
    for category in ("cartoon", "flower", "portrait", "temple"):
        photos = _photo(category)
        folder = os.path.join(labelled, category)
        os.makedirs(folder)
        for i, img in enumerate(crops(photos, LABELLED, rng_labelled, new=False)):
            img.save(os.path.join(folder, f"{category}-{i + 1:02d}.jpg"),
                     quality=82, optimize=True)
        new_images += [("photo", img) for img in crops(photos, NEW, rng_new, new=True)]
    folder = os.path.join(labelled, "digit")
    os.makedirs(folder)
    for i, (digit, img) in enumerate(digits(0, LABELLED)):
        img.save(os.path.join(folder, f"digit-{digit}-{i + 1:02d}.png"), optimize=True)
    new_images += [("drawing", img) for _, img in digits(LABELLED, NEW)]
    # the new pictures in a mixed order, named so that the name tells nothing
    order = rng_new.permutation(len(new_images))
    for number, index in enumerate(order, start=1):
        kind, img = new_images[index]
        name = f"new-{number:02d}"
        if kind == "drawing":
            img.save(os.path.join(new, name + ".png"), optimize=True)
        else:
            img.save(os.path.join(new, name + ".jpg"), quality=82, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else OUT)
