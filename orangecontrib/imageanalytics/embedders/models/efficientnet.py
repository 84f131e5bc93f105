"""The EfficientNet-Lite0 network in PyTorch.

Its layout and weights are in :mod:`orangecontrib.imageanalytics.embedders.
efficientnet`, which does not import torch, so that the ONNX Runtime engine
(which writes its graph from the same layers) never loads it.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from orangecontrib.imageanalytics.embedders.efficientnet import (
    Block,
    EfficientNetLayers,
    efficientnet_layers,
)
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec
from orangecontrib.imageanalytics.embedders.same_padding import same_padding

__all__ = ["EfficientNetLite", "MBConv", "build_efficientnet"]


def _conv(conv: tuple[np.ndarray, np.ndarray], *, size: int, stride: int = 1,
          groups: int = 1) -> tuple[nn.Module, int]:
    """A convolution with TensorFlow's ``same`` padding for a ``size``-pixel
    input, and the size of its output."""
    weight, bias = conv
    kernel = weight.shape[-1]
    before, after = same_padding(size, kernel, stride)
    layer = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], kernel,
                      stride=stride, groups=groups,
                      padding=before if before == after else 0)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.array(weight)))
        layer.bias.copy_(torch.from_numpy(np.array(bias)))
    out = -(-size // stride)
    if before != after:
        # nn.Conv2d pads symmetrically; TF puts the odd pixel after
        layer = nn.Sequential(nn.ZeroPad2d((before, after, before, after)),
                              layer)
    return layer, out


class MBConv(nn.Module):
    """Expand 1×1 (ReLU6), depthwise k×k (ReLU6), project 1×1, + input."""

    def __init__(self, block: Block, size: int):
        super().__init__()
        self.residual = block.residual
        layers: list[nn.Module] = []
        if block.expand is not None:
            layers += [_conv(block.expand, size=size)[0], nn.ReLU6()]
        channels = block.depthwise[0].shape[0]
        depthwise, self.output_size = _conv(
            block.depthwise, size=size, stride=block.stride, groups=channels)
        layers += [depthwise, nn.ReLU6(),
                   _conv(block.project, size=self.output_size)[0]]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 for a fixed square input: ``N×3×S×S`` (RGB,
    ``(x - 127) / 128``) -> ``N×1280`` pooled features."""

    def __init__(self, layers: EfficientNetLayers, input_size: int = 224):
        super().__init__()
        self.input_size = input_size
        stem, size = _conv(layers.stem, size=input_size, stride=2)
        modules: list[nn.Module] = [stem, nn.ReLU6()]
        for block in layers.blocks:
            module = MBConv(block, size)
            size = module.output_size
            modules.append(module)
        modules += [_conv(layers.head, size=size)[0], nn.ReLU6()]
        self.features = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))


def build_efficientnet(spec: EmbedderSpec, *,
                       state: Mapping[str, np.ndarray] | None = None,
                       **_ignored) -> EfficientNetLite:
    """EfficientNet-Lite0 for ``spec``'s input size, in eval mode:
    preprocessed ``N×3×S×S`` -> ``N×1280``.

    ``state`` is the checkpoint's tensors as NumPy arrays (by default the
    shipped file, read once per process); the weights ship with a package,
    so the options of downloaded weights do not apply.
    """
    model = EfficientNetLite(efficientnet_layers(state),
                             input_size=spec.input_size)
    model.requires_grad_(False)
    return model.eval()
