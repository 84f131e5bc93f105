"""SqueezeNet v1.1 in plain PyTorch with the weights the ``ndf`` package ships.

The network reproduces ndf's NumPy forward pass (``ndf.example_models.
squeezenet(include_softmax=False)``): TensorFlow-style ``same`` padding, which
can be asymmetric (the extra row/column goes to the bottom/right), ``valid``
3×3/2 max-pooling, and a 13×13 average pool over the last feature map.  The
output is the 1000-d pre-softmax vector.  Input is ``N×3×H×W`` float32 that is
already preprocessed (BGR, mean pixel subtracted; see ``preprocess.py``).

This module holds the layout and the weights and does not import torch; the
network is :mod:`.models.squeezenet`, and the ONNX graph ``onnx_graph.py``.
"""
from __future__ import annotations

import io
import pickle
import threading
from typing import ClassVar

import numpy as np

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.package_weights import (
    package_weights_sha256,
    read_package_weights,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder

__all__ = [
    "LAYERS",
    "load_ndf_weights",
    "ndf_weights_sha256",
]

_SPEC_KEY = "squeezenet"

#: The layers after conv1, shared by the PyTorch network and the ONNX graph:
#: (name, squeeze, expand 1×1, expand 3×3); "pool" marks ndf's max-pools.
LAYERS: tuple = (
    "pool",
    ("fire2", 16, 64, 64),
    ("fire3", 16, 64, 64),
    "pool",
    ("fire4", 32, 128, 128),
    ("fire5", 32, 128, 128),
    "pool",
    ("fire6", 48, 192, 192),
    ("fire7", 48, 192, 192),
    ("fire8", 64, 256, 256),
    ("fire9", 64, 256, 256),
)

_lock = threading.Lock()
_weights: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
_weights_sha256: str | None = None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays and nothing else.

    ndf ships its weights as a pickle; refusing every other global means a
    tampered file cannot run code when it is loaded.
    """
    # ndarray.__reduce__ names the reconstructor of the NumPy in use, which
    # moved from numpy.core to numpy._core in NumPy 2
    _ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"):
            np.ndarray.__reduce__(np.zeros(1))[0],
        ("numpy._core.multiarray", "_reconstruct"):
            np.ndarray.__reduce__(np.zeros(1))[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"unexpected object {module}.{name} in the weights file"
            ) from None


def _read_weights_file() -> bytes:
    return read_package_weights(get_embedder(_SPEC_KEY))


def _load() -> None:
    global _weights, _weights_sha256
    data = _read_weights_file()
    try:
        raw = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as err:
        raise EmbedderUnavailable(
            f"the SqueezeNet weights file of the 'ndf' package cannot be "
            f"read: {err}") from err
    weights = {}
    for name, (kernel, bias) in raw.items():
        kernel = np.asarray(kernel, dtype=np.float32)
        bias = np.asarray(bias, dtype=np.float32)
        kernel.flags.writeable = bias.flags.writeable = False
        weights[name] = (kernel, bias)
    _weights_sha256 = package_weights_sha256(get_embedder(_SPEC_KEY), data)
    _weights = weights


def load_ndf_weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return the SqueezeNet weights shipped with ``ndf``, loaded once.

    Returns
    -------
    dict
        Layer name (``"conv1"``, ``"fire2/squeeze1x1"``, …, ``"conv10"``) to
        ``(kernel, bias)``; kernels are in Keras layout ``(H, W, in, out)``.
        The arrays are read-only and shared by all callers.

    Raises
    ------
    EmbedderUnavailable
        If ``ndf`` is not installed or its weights file cannot be read.
    """
    with _lock:
        if _weights is None:
            _load()
        return _weights


def ndf_weights_sha256() -> str:
    """SHA-256 of ndf's weights file; changes whenever the weights do."""
    load_ndf_weights()
    return _weights_sha256
