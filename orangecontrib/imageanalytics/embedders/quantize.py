"""INT8 versions of local models, for embedders whose vectors stay close.

ONNX Runtime's static quantisation (QDQ, weights per channel, activations
from a calibration set) roughly halves SqueezeNet's CPU time per image.  It
is offered only for embedders in :data:`INT8_EMBEDDERS`, where the vectors of
the quantised model on the fast decoding path stay within cosine 0.99 of the
exact path (full decode, float32).  Measured on 100 "web" and 30 "camera"
photos: SqueezeNet minimum 0.995, mean 0.998; EfficientNet-Lite0 only
0.984 (its depthwise convolutions lose too much), so it is not offered.

The calibration set is made of pictures that ship inside installed packages
(scikit-learn's and matplotlib's sample photos, ndf's test photo), cropped
deterministically, so every computer builds the same model without
downloading anything.  Importing ``onnx`` (which the quantiser needs) and
calibrating take a few seconds, once: the engine caches the result.
"""
from __future__ import annotations

import importlib.resources
import io
import os
import tempfile

import numpy as np
from PIL import Image

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.preprocess import (
    resize_for_model,
    to_model_input,
)
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = [
    "CALIBRATION_IMAGES",
    "INT8_EMBEDDERS",
    "calibration_batch",
    "quantize_int8",
]

#: Embedders whose INT8 model keeps vectors within cosine 0.99 of the exact
#: path (see the module's docstring; ``tests/test_quantize.py`` checks it).
INT8_EMBEDDERS = frozenset({"squeezenet"})

#: Images in the calibration set
CALIBRATION_IMAGES = 32

# (package, resource); scikit-learn's are always there (a dependency)
_PICTURES = (
    ("sklearn.datasets", "images/china.jpg"),
    ("sklearn.datasets", "images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("ndf", "tests/book-2020460_640.jpg"),
)


def _pictures() -> list[Image.Image]:
    pictures = []
    for package, resource in _PICTURES:
        try:
            data = (importlib.resources.files(package) / resource).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError, OSError):
            continue
        with Image.open(io.BytesIO(data)) as image:
            pictures.append(image.convert("RGB"))
    return pictures


def calibration_batch(spec: EmbedderSpec,
                      count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """Model input for calibration: crops of packaged pictures.

    Returns
    -------
    np.ndarray
        ``float32`` ``count×3×H×W``, preprocessed as ``spec`` prescribes;
        the same on every computer with the same packages.

    Raises
    ------
    EmbedderUnavailable
        If no packaged picture can be read.
    """
    pictures = _pictures()
    if not pictures:
        raise EmbedderUnavailable(
            "no calibration pictures for INT8 quantisation were found")
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        picture = pictures[i % len(pictures)]
        width, height = picture.size
        scale = rng.uniform(0.4, 1.0)
        crop_w, crop_h = int(width * scale), int(height * scale)
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        crop = picture.crop((left, top, left + crop_w, top + crop_h))
        crops.append(resize_for_model(crop, spec))
    return to_model_input(np.stack(crops), spec)


def quantize_int8(model: bytes, spec: EmbedderSpec, *,
                  input_name: str = "input") -> bytes:
    """Quantise a float32 ONNX model of ``spec`` to INT8 (QDQ).

    Weights are quantised per output channel (signed), activations per
    tensor (unsigned) with ranges from :func:`calibration_batch`.

    Raises
    ------
    EmbedderUnavailable
        If ``spec`` is not in :data:`INT8_EMBEDDERS` or the quantiser cannot
        run here.
    """
    if spec.key not in INT8_EMBEDDERS:
        raise EmbedderUnavailable(
            f"{spec.label} has no INT8 model: quantising it changes its "
            f"vectors by more than a cosine of 0.01; use the 'onnx' engine")
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as err:
        raise EmbedderUnavailable(
            f"INT8 quantisation needs onnxruntime and onnx: {err}") from err
    batch = calibration_batch(spec)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter({input_name: batch[i:i + 1]}
                               for i in range(len(batch)))

        def get_next(self):
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="imageanalytics-int8-") as tmp:
        source = os.path.join(tmp, "float32.onnx")
        target = os.path.join(tmp, "int8.onnx")
        with open(source, "wb") as f:
            f.write(model)
        quantize_static(
            source, target, _Reader(), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8)
        with open(target, "rb") as f:
            return f.read()
