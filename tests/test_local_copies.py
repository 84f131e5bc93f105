"""Inception v3 / VGG run on this computer from a weights file.

The weights here are random tensors with torchvision's names and shapes,
saved like the official files; the registry's hash is replaced by the hash of
that file (the official weights are never downloaded in tests).
"""
import dataclasses
import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from orangecontrib.imageanalytics.__main__ import main
from orangecontrib.imageanalytics.embedders import engines, registry
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.inputs import prepare_input
from orangecontrib.imageanalytics.embedders.models import build_network
from orangecontrib.imageanalytics.embedders.models.inception_v3 import (
    inception_v3,
)
from orangecontrib.imageanalytics.embedders.models.vgg import VGG, VGG_CONFIGS
from orangecontrib.imageanalytics.embedders.preprocess import to_model_input
from orangecontrib.imageanalytics.embedders.weights import WEIGHTS_DIR_ENV
from orangecontrib.imageanalytics.image_embedder import ImageEmbedder


def _small_vgg_state(depth: int) -> dict:
    """VGG's layout with narrow layers: loads like the real file, quickly."""
    torch.manual_seed(depth)
    config = [8 if item != "M" else "M" for item in VGG_CONFIGS[depth]]
    model = VGG(config, hidden=32, num_classes=10)
    return model.state_dict()


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    engines.clear_runner_cache()
    yield tmp_path
    engines.clear_runner_cache()


def _install(weights_dir, monkeypatch, key: str, state: dict):
    """Save ``state`` as the weights file of ``key`` and make the registry
    expect its hash; returns the patched spec."""
    spec = registry.LOCAL_COPIES[key]
    path = weights_dir / spec.weights.filename
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    patched = dataclasses.replace(spec, weights=dataclasses.replace(
        spec.weights, sha256=digest))
    monkeypatch.setitem(registry.LOCAL_COPIES, key, patched)
    return patched


def _photo(seed: int) -> bytes:
    # coarse blobs of colour: photos that differ to a network, unlike noise
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(coarse).resize((240, 180), Image.BILINEAR).save(
        buffer, "PNG")
    return buffer.getvalue()


def test_inception_v3_runs_here(weights_dir, monkeypatch, tmp_path):
    spec = registry.LOCAL_COPIES["inception-v3-local"]
    images = []
    for seed in range(1, 5):
        path = tmp_path / f"p{seed}.png"
        path.write_bytes(_photo(seed))
        images.append(path)
    batch = to_model_input(np.stack([
        prepare_input(p.read_bytes(), spec, exact=True) for p in images]),
        spec)

    torch.manual_seed(0)
    reference = inception_v3()
    # batch norms fitted to these photos: random weights whose output
    # depends on the input (and fusing them has something to fold)
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    reference.train()
    with torch.no_grad():
        reference(torch.from_numpy(batch))
    reference.eval()
    _install(weights_dir, monkeypatch, "inception-v3-local",
             reference.state_dict())

    embedder = ImageEmbedder("inception-v3-local", cache=False, exact=True)
    assert embedder.is_local
    vectors = np.stack(embedder([str(p) for p in images]))
    assert vectors.shape == (4, 2048)

    # independently: the unfused torch model on the spec's preprocessing
    with torch.inference_mode():
        expected = reference(torch.from_numpy(batch)).numpy()
        swapped = reference(torch.from_numpy(
            np.ascontiguousarray(batch[:, ::-1]))).numpy()
    np.testing.assert_allclose(vectors, expected, rtol=1e-3, atol=1e-4)
    # the check can tell: other channels, other photos give other vectors
    assert not np.allclose(vectors, swapped, rtol=1e-3, atol=1e-4)
    assert not np.allclose(vectors[0], vectors[1], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("depth", [16, 19])
def test_vgg_runs_here_and_from_the_command_line(depth, weights_dir,
                                                 monkeypatch, tmp_path):
    from Orange.data import Table
    state = _small_vgg_state(depth)
    key = f"vgg{depth}-local"
    spec = _install(weights_dir, monkeypatch, key, state)
    model = build_network(spec)
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in (3, 4, 5):
        (folder / f"p{seed}.png").write_bytes(_photo(seed))
    out = tmp_path / "out.tab"
    assert main(["embed", str(folder), "-o", str(out), "--model", key,
                 "--no-cache", "--exact", "-q"]) == 0
    table = Table.from_file(str(out))
    assert len(table) == 3 and table.X.shape[1] == 32    # fc7 of this file
    first = min(folder.iterdir())
    batch = to_model_input(prepare_input(first.read_bytes(), spec,
                                         exact=True)[None], spec)
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch)).numpy()[0]
    row = list(table.get_column("image name")).index(first.stem)
    # the .tab file keeps the vectors to a few significant digits
    np.testing.assert_allclose(table.X[row], expected, rtol=1e-3, atol=1e-4)


def test_missing_weights_say_how_to_get_them(weights_dir, tmp_path):
    photo = tmp_path / "p.png"
    photo.write_bytes(_photo(0))
    embedder = ImageEmbedder("vgg19-local", cache=False)
    with pytest.raises(EmbedderUnavailable) as info:
        embedder([str(photo)])
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(weights_dir) in message
    assert "python -m orangecontrib.imageanalytics download vgg19" in message
    assert "Download" in message


def test_damaged_and_foreign_files_are_refused(weights_dir, monkeypatch):
    spec = registry.LOCAL_COPIES["vgg16-local"]
    (weights_dir / spec.weights.filename).write_bytes(b"not the weights")
    with pytest.raises(EmbedderUnavailable, match="corrupt"):
        build_network(spec)
    # a file with the expected hash, but another network's parameters
    patched = _install(weights_dir, monkeypatch, "inception-v3-local",
                       _small_vgg_state(16))
    with pytest.raises(EmbedderUnavailable, match="does not fit"):
        build_network(patched)


def test_auto_engine_runs_them_in_torch(weights_dir, monkeypatch):
    _install(weights_dir, monkeypatch, "vgg16-local", _small_vgg_state(16))
    runner = engines.get_runner("vgg16-local", threads=1)
    assert runner.engine == "torch"
    out = runner(np.zeros((2, 3, 224, 224), np.float32))
    assert out.shape == (2, 32)
