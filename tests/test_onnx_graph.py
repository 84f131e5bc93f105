"""ONNX graphs written from the weights: valid ONNX, equal to the PyTorch
networks, and built on a cold cache without importing torch."""
import importlib.resources
import subprocess
import sys

import numpy as np
import pytest

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.registry import (
    get_embedder,
    resolve_reference,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

KEYS = ["squeezenet", "efficientnet-lite0"]


def weights_installed(key: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(get_embedder(key).weights.package) \
        is not None


@pytest.fixture(params=KEYS)
def spec(request):
    if not weights_installed(request.param):
        pytest.skip(f"weights of {request.param} are not installed")
    return get_embedder(request.param)


def model_input(spec, n: int) -> np.ndarray:
    from orangecontrib.imageanalytics.embedders.preprocess import (
        to_model_input,
    )
    rng = np.random.default_rng(n)
    pixels = rng.integers(0, 256, (n, *spec.input_shape, 3), dtype=np.uint8)
    # smooth images, as photos are, besides noise
    pixels[0] = np.linspace(0, 255, spec.input_size)[:, None, None]
    return to_model_input(pixels, spec)


def test_graph_is_valid_onnx(spec):
    model = onnx.load_from_string(resolve_reference(spec.onnx_graph)(spec))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == engines.ONNX_OPSET
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value
            for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, spec.input_size, spec.input_size]
    assert out.type.tensor_type.shape.dim[1].dim_value == spec.dimension


def test_graph_equals_the_torch_network(spec):
    torch = pytest.importorskip("torch")
    session = ort.InferenceSession(resolve_reference(spec.onnx_graph)(spec),
                                   providers=["CPUExecutionProvider"])
    x = model_input(spec, 3)
    ours = session.run(None, {"input": x})[0]
    with torch.inference_mode():
        expected = engines.build_torch_model(spec)(torch.from_numpy(x)).numpy()
    assert ours.shape == (3, spec.dimension)
    assert np.linalg.norm(ours - expected) / np.linalg.norm(expected) < 1e-5
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-3)


_COLD_START = """
import sys
from pathlib import Path

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.image_embedder import ImageEmbedder

engines.model_cache_dir = lambda: Path(sys.argv[1])
vectors = ImageEmbedder(model=sys.argv[2], cache=False)([sys.argv[3]])
assert vectors[0] is not None and vectors[0].shape == (int(sys.argv[4]),)
assert "torch" not in sys.modules, "torch was imported"
# nor Orange's data classes (over a second): a list of paths needs no table
assert "Orange.data" not in sys.modules, "Orange was imported"
assert list(Path(sys.argv[1]).glob(sys.argv[2] + "-*.onnx")), "not cached"
"""


def test_first_vector_on_a_cold_cache_imports_neither_torch_nor_orange(
        spec, tmp_path):
    photo = importlib.resources.files("sklearn.datasets") / "images" \
        / "flower.jpg"
    folder = tmp_path / "models"
    proc = subprocess.run(
        [sys.executable, "-c", _COLD_START, str(folder), spec.key,
         str(photo), str(spec.dimension)],
        check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
