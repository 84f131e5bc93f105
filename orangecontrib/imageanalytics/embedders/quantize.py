"""INT8 versions of local models, checked on the processor they run on.

ONNX Runtime's static quantisation (QDQ, weights per channel, activations
from a calibration set) roughly halves SqueezeNet's CPU time per image on
processors with VNNI.  It is offered only for embedders whose spec says so
(``EmbedderSpec.int8``); EfficientNet-Lite0 loses too much (its depthwise
convolutions: minimum cosine 0.984 on 100 web photos), so it is not.

Whether INT8 is right depends on the processor (``processor.py``): ONNX
Runtime's unsigned-times-signed ("U8S8") kernels saturate on x86-64 without
VNNI, where SqueezeNet's vectors fall to a cosine of 0.95 of the exact ones.
:func:`int8_format` therefore quantises weights as unsigned ("U8U8") there,
and signed elsewhere.  Whatever the format, :func:`check_int8` compares the
quantised model with the float model on the check pictures, on the
processor it runs on, and the engine uses INT8 only if every vector is
within :data:`MIN_COSINE`; the engine keeps that decision with the cached
model (``engines.py``).

The calibration and check pictures are crops of pictures that ship inside
installed packages (scikit-learn's and matplotlib's sample photos, ndf's
test photo), made deterministically, so every computer builds the same model
without downloading anything.  Importing ``onnx`` (which the quantiser needs)
and calibrating take a few seconds, once: the engine caches the result.
"""
from __future__ import annotations

import contextlib
import importlib.resources
import io
import logging
import os
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.preprocess import (
    resize_for_model,
    to_model_input,
)
from orangecontrib.imageanalytics.embedders.processor import (
    Processor,
    current_processor,
)
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = [
    "CALIBRATION_IMAGES",
    "CHECK_IMAGES",
    "MIN_COSINE",
    "Int8Check",
    "Int8Format",
    "calibration_batch",
    "check_batch",
    "check_int8",
    "cosine_similarity",
    "int8_format",
    "quantize_int8",
]

#: Images in the calibration set
CALIBRATION_IMAGES = 32
#: Further pictures, not used for calibration, in the check
CHECK_IMAGES = 32
#: Every vector of the check pictures must be at least this close (cosine)
#: to the float model's for INT8 to be used
MIN_COSINE = 0.99


@dataclass(frozen=True)
class Int8Format:
    """How activations and weights are quantised.

    ``activation`` and ``weight`` name ONNX Runtime's ``QuantType`` members.
    """
    name: str
    activation: str
    weight: str


#: Unsigned activations, signed weights: the fastest format where the
#: processor sums in 32 bits (VNNI, ARM)
U8S8 = Int8Format("u8s8", "QUInt8", "QInt8")
#: Unsigned activations and weights: no saturation on x86-64 without VNNI
#: (measured on an emulated AVX2 processor: SqueezeNet minimum cosine 0.995,
#: where U8S8 gave 0.937 and U8S8 with reduce_range 0.994)
U8U8 = Int8Format("u8u8", "QUInt8", "QUInt8")


def int8_format(processor: Processor | None = None) -> Int8Format:
    """The INT8 format for ``processor`` (by default this one)."""
    processor = processor or current_processor()
    if processor.arch == "x86-64" and not processor.has_vnni:
        return U8U8
    return U8S8


@dataclass(frozen=True)
class Int8Check:
    """The outcome of :func:`check_int8`: whether INT8 is used, and why."""
    accepted: bool
    min_cosine: float
    mean_cosine: float
    images: int
    format: str
    processor: str

    @property
    def reason(self) -> str:
        """For people: why INT8 is (not) used."""
        if self.accepted:
            return (f"INT8 ({self.format}) is within cosine "
                    f"{self.min_cosine:.4f} of float32 on this processor "
                    f"({self.processor})")
        return (f"INT8 is not exact on this processor ({self.processor}): "
                f"its vectors of {self.images} check pictures came only "
                f"within cosine {self.min_cosine:.3f} of float32 (at least "
                f"{MIN_COSINE} is required); using float32")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Int8Check:
        return cls(accepted=bool(data["accepted"]),
                   min_cosine=float(data["min_cosine"]),
                   mean_cosine=float(data["mean_cosine"]),
                   images=int(data["images"]), format=str(data["format"]),
                   processor=str(data["processor"]))

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
    return _crops(spec, count, seed=0, turns=False)


def check_batch(spec: EmbedderSpec) -> np.ndarray:
    """Model input for :func:`check_int8`: the calibration crops and as
    many others (another seed, smaller crops, turned by quarters).

    Returns
    -------
    np.ndarray
        ``float32`` ``N×3×H×W``, the same on every computer with the same
        packages.
    """
    return np.concatenate([
        calibration_batch(spec),
        _crops(spec, CHECK_IMAGES, seed=1, turns=True, smallest=0.25)])


def _crops(spec: EmbedderSpec, count: int, *, seed: int, turns: bool,
           smallest: float = 0.4) -> np.ndarray:
    pictures = _pictures()
    if not pictures:
        raise EmbedderUnavailable(
            "no calibration pictures for INT8 quantisation were found")
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        picture = pictures[i % len(pictures)]
        width, height = picture.size
        scale = rng.uniform(smallest, 1.0)
        crop_w, crop_h = int(width * scale), int(height * scale)
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        crop = picture.crop((left, top, left + crop_w, top + crop_h))
        if turns:
            crop = crop.rotate(90 * (i % 4), expand=True)
        crops.append(resize_for_model(crop, spec))
    return to_model_input(np.stack(crops), spec)


def quantize_int8(model: bytes, spec: EmbedderSpec, *,
                  input_name: str = "input",
                  quant_format: Int8Format | None = None) -> bytes:
    """Quantise a float32 ONNX model of ``spec`` to INT8 (QDQ).

    Weights are quantised per output channel, activations per tensor, with
    ranges from :func:`calibration_batch`; ``quant_format`` (by default
    :func:`int8_format` of this processor) says which are signed.

    Raises
    ------
    EmbedderUnavailable
        If ``spec`` offers no INT8 model or the quantiser cannot
        run here.
    """
    if not spec.int8:
        raise EmbedderUnavailable(
            f"{spec.label} has no INT8 model: quantising it changes its "
            f"vectors by more than a cosine of 0.01; use the 'onnx' engine")
    quant_format = quant_format or int8_format()
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
        with _quiet_quantiser():
            quantize_static(
                source, target, _Reader(), quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=getattr(QuantType, quant_format.activation),
                weight_type=getattr(QuantType, quant_format.weight))
        with open(target, "rb") as f:
            return f.read()


@contextlib.contextmanager
def _quiet_quantiser():
    """Drop the quantiser's advice to pre-process the model, which it logs
    to the root logger as a warning; it means nothing to our users."""
    def advice(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def check_int8(float_model: bytes | str, int8_model: bytes | str,
               spec: EmbedderSpec, *, format_name: str = "",
               threads: int = 1) -> Int8Check:
    """Compare an INT8 model with its float model on this processor.

    Both run on :func:`check_batch`; the INT8 model is accepted if every
    vector is within :data:`MIN_COSINE` of the float model's.

    Parameters
    ----------
    float_model, int8_model
        ONNX models, as bytes or paths.
    spec
        The embedder both models are of.
    format_name
        The INT8 format's name, for the record.
    threads
        ONNX Runtime's intra-op threads.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    batch = check_batch(spec)

    def vectors(model):
        session = ort.InferenceSession(model, options,
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.vstack([session.run(None, {name: batch[i:i + 8]})[0]
                          for i in range(0, len(batch), 8)])

    exact, int8 = vectors(float_model), vectors(int8_model)
    cosine = cosine_similarity(int8, exact)
    return Int8Check(accepted=bool(cosine.min() >= MIN_COSINE),
                     min_cosine=float(cosine.min()),
                     mean_cosine=float(cosine.mean()), images=len(batch),
                     format=format_name,
                     processor=current_processor().description)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two ``N×D`` arrays (1 for two zero rows)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, dots / np.where(norms > 0, norms, 1),
                        np.all(a == b, axis=1).astype(float))
