"""Resizing and normalisation of model input."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from orangecontrib.imageanalytics.embedders.preprocess import (
    resize_for_model,
    to_model_input,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder

SQUEEZENET = get_embedder("squeezenet")
VGG16 = get_embedder("vgg16")


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth scene with edges and noise, like a downscaled photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    r = 128 + 100 * np.sin(xx / width * 7) * np.cos(yy / height * 3)
    g = 255 * yy / height
    b = np.where((xx // (width // 6) + yy // (height // 5)) % 2, 200, 40)
    image = np.stack([r, g, b], -1) + rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def test_resize_shape_aspect_ignored():
    out = resize_for_model(photo(300, 120), SQUEEZENET)
    assert out.shape == (227, 227, 3) and out.dtype == np.uint8
    assert resize_for_model(photo(50, 400), VGG16).shape == (224, 224, 3)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK"])
def test_resize_converts_modes(mode):
    image = photo(64, 48).convert(mode)
    out = resize_for_model(image, SQUEEZENET)
    assert out.shape == (227, 227, 3)


def test_resize_keeps_image_of_right_size():
    image = photo(227, 227)
    np.testing.assert_array_equal(resize_for_model(image, SQUEEZENET),
                                  np.asarray(image))


def test_exact_path_is_plain_lanczos():
    image = photo(1600, 1200)
    expected = np.asarray(image.resize((227, 227), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(
        resize_for_model(image, SQUEEZENET, exact=True), expected)


def test_fast_path_close_to_exact():
    from orangecontrib.imageanalytics.embedders.models import build_network
    image = photo(1600, 1200, seed=5)
    fast = resize_for_model(image, SQUEEZENET)
    exact = resize_for_model(image, SQUEEZENET, exact=True)
    assert not np.array_equal(fast, exact)      # it is a different path
    model = build_network(SQUEEZENET)
    with torch.inference_mode():
        a, b = model(torch.from_numpy(
            to_model_input(np.stack([fast, exact]), SQUEEZENET))).numpy()
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) >= 0.999


def test_squeezenet_input_bgr_minus_mean():
    batch = np.zeros((2, 227, 227, 3), np.uint8)
    batch[0, ..., 0] = 255                  # a pure red image
    batch[1, 10, 20] = (1, 2, 3)
    out = to_model_input(batch, SQUEEZENET)
    assert out.shape == (2, 3, 227, 227) and out.dtype == np.float32
    assert out.flags.c_contiguous
    b, g, r = 104.006, 116.669, 122.679
    np.testing.assert_allclose(out[0, :, 0, 0], [-b, -g, 255 - r], rtol=1e-6)
    np.testing.assert_allclose(out[1, :, 10, 20], [3 - b, 2 - g, 1 - r],
                               rtol=1e-6)


@pytest.mark.parametrize("spec", [SQUEEZENET, VGG16], ids=lambda s: s.key)
def test_matches_formula_of_spec(spec):
    size = spec.input_size
    batch = np.random.default_rng(1).integers(
        0, 256, (3, size, size, 3), dtype=np.uint8)
    order = [2, 1, 0] if spec.channel_order == "BGR" else [0, 1, 2]
    expected = (batch[..., order] * spec.scale - np.array(spec.mean)) \
        / np.array(spec.std)
    np.testing.assert_allclose(to_model_input(batch, spec),
                               expected.transpose(0, 3, 1, 2),
                               rtol=1e-5, atol=1e-5)


def test_empty_batch():
    out = to_model_input(np.zeros((0, 227, 227, 3), np.uint8), SQUEEZENET)
    assert out.shape == (0, 3, 227, 227)


@pytest.mark.parametrize("shape", [(227, 227, 3), (1, 224, 224, 3),
                                   (1, 227, 227, 4), (1, 3, 227, 227)])
def test_wrong_shape(shape):
    with pytest.raises(ValueError, match="227"):
        to_model_input(np.zeros(shape, np.uint8), SQUEEZENET)


def test_unknown_channel_order():
    spec = replace(SQUEEZENET, channel_order="GBR")
    with pytest.raises(ValueError, match="GBR"):
        to_model_input(np.zeros((1, 227, 227, 3), np.uint8), spec)
