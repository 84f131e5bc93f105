"""Shared helpers of the server and client tests: generated images and small
generated model files (never downloaded weights)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orangecontrib.imageanalytics.embedders.models.inception_v3 import (
    inception_v3,
)
from orangecontrib.imageanalytics.embedders.models.vgg import VGG
from orangecontrib.imageanalytics.embedders.registry import (
    WeightsSource,
    get_embedder,
)
from orangecontrib.imageanalytics.server.config import ModelEntry

#: A VGG16 layout with narrow layers: torchvision's key names, tiny tensors.
NARROW_VGG16 = (8, 8, "M", 8, 8, "M", 16, 16, 16, "M", 16, 16, 16, "M",
                16, 16, 16, "M")
NARROW_HIDDEN = 32


def photo(seed: int = 0, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth, photo-like RGB image (gradients, blobs and a little
    noise), which JPEG compresses the way it compresses photos."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        value = rng.uniform(40, 200) + rng.uniform(-60, 60) * x / width \
            + rng.uniform(-60, 60) * y / height
        for _ in range(3):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            radius = rng.uniform(0.1, 0.4) * min(width, height)
            value += rng.uniform(-80, 80) * np.exp(
                -((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius ** 2))
        channels.append(value)
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def model_input_jpeg(key: str, seed: int = 0) -> bytes:
    """What Orange's client sends: the image at the model's input size,
    JPEG quality 75."""
    size = get_embedder(key).input_size
    return jpeg_bytes(photo(seed).resize((size, size), Image.LANCZOS))


def cosine(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_file(key: str, path: Path, **changes) -> ModelEntry:
    spec = get_embedder(key)
    spec = dataclasses.replace(
        spec, weights=WeightsSource(path.name, sha256=_sha256(path),
                                    url=spec.weights.url), **changes)
    architecture = {"inception-v3": "inception_v3"}.get(key, key)
    return ModelEntry(spec, architecture)


def inception_entry(folder: Path, seed: int = 0) -> ModelEntry:
    """Inception v3 with random weights saved in torchvision's format."""
    torch.manual_seed(seed)
    path = folder / "inception-random.pth"
    torch.save(inception_v3().state_dict(), path)
    return _with_file("inception-v3", path)


def narrow_vgg_entry(folder: Path, seed: int = 0) -> ModelEntry:
    """VGG16 with torchvision's key names but narrow layers (fc7 is 32-d)."""
    torch.manual_seed(seed)
    path = folder / "vgg16-narrow.pth"
    torch.save(VGG(NARROW_VGG16, hidden=NARROW_HIDDEN).state_dict(), path)
    return _with_file("vgg16", path, dimension=NARROW_HIDDEN)


def missing_entry(key: str, folder: Path) -> ModelEntry:
    """A registry model whose weights are not in ``folder``."""
    spec = get_embedder(key)
    return ModelEntry(spec, {"vgg19": "vgg19", "vgg16": "vgg16",
                             "inception-v3": "inception_v3"}[key])


def write_onnx_model(path: Path) -> None:
    """A tiny ONNX model: global average pool ("pool", N×3×1×1), then
    flatten and scale by 2 ("out", N×3)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pool"]),
         helper.make_node("Flatten", ["pool"], ["flat"]),
         helper.make_node("Mul", ["flat", "two"], ["out"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT,
                                       ["batch", 3])],
        initializer=[helper.make_tensor("two", TensorProto.FLOAT, [1],
                                        [2.0])])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


class _TwoOutputs(torch.nn.Module):
    def forward(self, x):
        pooled = x.mean(dim=(2, 3))
        return pooled, pooled * 3


def write_torchscript_model(path: Path) -> None:
    """A tiny TorchScript model returning (channel means, 3 × means)."""
    torch.jit.script(_TwoOutputs()).save(str(path))


def orange_client(url, cache_path, monkeypatch, max_parallel_requests=32):
    """Orange's own embedding client for ``url``, sending JPEG bytes as they
    are (the bytes the test prepared), its pickle cache at ``cache_path``."""
    from Orange.misc.server_embedder import ServerEmbedderCommunicator

    # the environment variable would override the address given here
    monkeypatch.delenv("ORANGE_EMBEDDING_API_URL", raising=False)

    class JpegCommunicator(ServerEmbedderCommunicator):
        def __init__(self):
            super().__init__(model_name="squeezenet",
                             max_parallel_requests=max_parallel_requests,
                             server_url=url, embedder_type="image")
            self.content_type = "image/jpeg"
            # keep Orange's pickle cache out of the user's folders
            self._cache._cache_dict = {}
            self._cache._cache_file_path = str(cache_path)

        async def _encode_data_instance(self, data_instance):
            return data_instance

    return JpegCommunicator()
