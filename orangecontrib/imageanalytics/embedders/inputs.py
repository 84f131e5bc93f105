"""From an image file's bytes to what the cache and the model need.

:func:`content_hash` names the bytes for the cache; :func:`prepare_input`
decodes them (JPEG draft scaling on the fast path) and resizes to the
model's input size.  Both run in the pipeline's worker threads: hashlib and
Pillow release the GIL on large buffers.
"""
from __future__ import annotations

import hashlib

import numpy as np

from orangecontrib.imageanalytics import images
from orangecontrib.imageanalytics.embedders import preprocess
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = ["content_hash", "prepare_input"]


def content_hash(data: bytes) -> str:
    """Hex digest that identifies an image file by its content.

    SHA-256: with the SHA instructions of current x86 and ARM processors
    hashlib hashes a 2.4 MB camera photo in about 1.3 ms, twice as fast as
    BLAKE2b.
    """
    return hashlib.sha256(data).hexdigest()


def prepare_input(data: bytes, spec: EmbedderSpec, *, exact: bool = False,
                  max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file and resize it to the model's input size.

    Parameters
    ----------
    data
        The file's bytes.
    spec
        The embedder; gives the input size.
    exact
        Decode every pixel and resize with plain LANCZOS.  By default JPEGs
        are decoded at the smallest DCT scale that still covers the input
        size, which is several times faster on camera photos and changes
        the vectors by far less than a cosine of 0.01.
    max_pixels
        Refuse larger images (decompression bombs); by default
        :data:`images.DEFAULT_MAX_PIXELS`.

    Returns
    -------
    np.ndarray
        ``uint8`` array ``H×W×3``, RGB, at ``spec.input_shape``.

    Raises
    ------
    images.ImageLoadError
        If the bytes are not a readable image; ``.reason`` says why.
    """
    if max_pixels is None:
        max_pixels = images.DEFAULT_MAX_PIXELS
    height, width = spec.input_shape
    image = images.decode_image(
        data, min_size=None if exact else (width, height),
        max_pixels=max_pixels)
    try:
        return preprocess.resize_for_model(image, spec, exact=exact)
    finally:
        image.close()
