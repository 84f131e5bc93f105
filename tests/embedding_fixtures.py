"""Photos, image tables and a stand-in engine for the Image Embedding tests."""
from __future__ import annotations

import os
import time

import numpy as np
from Orange.data import DiscreteVariable, Domain, StringVariable, Table
from PIL import Image

from orangecontrib.imageanalytics.embedders.errors import EmbeddingCancelled
from orangecontrib.imageanalytics.embedders.run_state import EmbedOutcome

SKIP_REASON = "skip reason"


def make_images(folder: str) -> None:
    """Four small photos in two folders, a broken file and a text file."""
    rng = np.random.default_rng(0)
    for sub, base in (("cats", (200, 120, 60)), ("city", (60, 90, 200))):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        for i in range(2):
            pixels = np.clip(
                np.array(base) + rng.normal(0, 40, (48, 64, 3)), 0, 255)
            image = Image.fromarray(pixels.astype(np.uint8))
            fmt = "JPEG" if i == 0 else "PNG"
            image.save(os.path.join(folder, sub, f"{sub}{i}.{fmt.lower()}"),
                       fmt)
    with open(os.path.join(folder, "cats", "broken.jpg"), "wb") as f:
        f.write(b"this is not an image")


def image_table(folder: str, cls: type = Table, *, bad: bool = True) -> Table:
    """A table like Import Images gives, optionally with four bad rows
    (a broken file, two missing files, an empty cell)."""
    names = ["cats/cats0.jpeg", "cats/cats1.png", "city/city0.jpeg",
             "city/city1.png"]
    if bad:
        names += ["cats/broken.jpg", "cats/missing.jpg", "city/gone.png", ""]
    image = StringVariable("image")
    image.attributes.update(type="image", origin=folder)
    category = DiscreteVariable("category", values=("cats", "city"))
    domain = Domain([], category, metas=[StringVariable("image name"), image])
    y = np.array([0. if n.startswith("cats") else 1. for n in names])
    metas = np.array([[os.path.splitext(os.path.basename(n))[0], n]
                      for n in names], dtype=object)
    return cls.from_numpy(domain, np.empty((len(names), 0)), y, metas)


class FakeEmbedder:
    """Stands in for ImageEmbedder: a 3-d vector (mean colour) per image,
    or the reason why there is none."""

    def __init__(self, factory: FakeFactory, model: str):
        self.factory = factory
        self.model = model

    @staticmethod
    def _embed_one(source: str | None) -> EmbedOutcome:
        if source is None:
            return EmbedOutcome(None, "no image path")
        try:
            with Image.open(source) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=float)
        except FileNotFoundError:
            return EmbedOutcome(None, "file not found")
        except OSError:  # PIL's UnidentifiedImageError is one
            return EmbedOutcome(None, "not an image")
        return EmbedOutcome(pixels.mean(axis=(0, 1)) / 255)

    def embed_sources(self, sources, *, progress=None, should_stop=None):
        factory = self.factory
        if factory.error is not None:
            raise factory.error
        outcomes = []
        for i, source in enumerate(sources):
            if should_stop is not None and should_stop():
                factory.stopped_at = time.monotonic()
                raise EmbeddingCancelled()
            time.sleep(factory.delay)
            outcomes.append(self._embed_one(source))
            if progress is not None:
                progress(i + 1, len(sources))
        return outcomes

    def close(self):
        self.factory.closed += 1


class FakeFactory:
    """Builds FakeEmbedders and records how it was called."""

    def __init__(self, delay: float = 0.0,
                 error: Exception | None = None):
        self.delay = delay
        self.error = error
        self.calls: list[tuple[str, str | None]] = []
        self.stopped_at: float | None = None
        self.closed = 0

    def __call__(self, model, server_url=None):
        self.calls.append((model, server_url))
        return FakeEmbedder(self, model)
