"""VGG16 and VGG19 in plain torch, with torchvision's parameter names.

The layout mirrors ``torchvision.models.vgg16`` / ``vgg19`` (without batch
norm): ``features.{i}`` numbers convolutions, ReLUs and poolings together,
``classifier.{0,3,6}`` are the three linear layers.  The embedding is *fc7*,
the 4096-d output of the classifier's second ReLU (``classifier[:5]``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from orangecontrib.imageanalytics.embedders.models import torchvision_network
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = ["VGG", "VGG_CONFIGS", "build_vgg16", "build_vgg19", "vgg",
           "vgg_from_state_dict"]

#: Convolution widths per block, "M" for max pooling (torchvision's D and E).
VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
         512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def _make_features(config: Sequence[int | str]) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, int(item), kernel_size=3,
                                    padding=1))
            layers.append(nn.ReLU(inplace=True))
            in_channels = int(item)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG without batch norm.

    Parameters
    ----------
    config
        Convolution widths and ``"M"`` poolings (see :data:`VGG_CONFIGS`).
    hidden
        Width of fc6 and fc7.
    num_classes
        Size of the classifier's output.
    features_only
        Make :meth:`forward` return fc7 (after its ReLU) instead of the class
        scores.
    """

    def __init__(self, config: Sequence[int | str], *,
                 hidden: int = 4096, num_classes: int = 1000,
                 features_only: bool = False) -> None:
        super().__init__()
        self.features_only = features_only
        self.features = _make_features(config)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        last = [item for item in config if item != "M"][-1]
        self.classifier = nn.Sequential(
            nn.Linear(int(last) * 7 * 7, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return fc7 after its ReLU, ``N×hidden``."""
        x = self.avgpool(self.features(x))
        x = torch.flatten(x, 1)
        for layer in self.classifier[:5]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        if self.features_only:
            return features
        return self.classifier[6](self.classifier[5](features))


def vgg(depth: int, *, features_only: bool = True) -> VGG:
    """Build an uninitialised VGG16 or VGG19 for torchvision's weights."""
    try:
        config = VGG_CONFIGS[depth]
    except KeyError:
        raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGS)}, "
                         f"not {depth}") from None
    return VGG(config, features_only=features_only)


def vgg_from_state_dict(state_dict: Mapping[str, torch.Tensor], depth: int
                        ) -> VGG:
    """Build VGG16/19 from a torchvision-format state dict.

    Layer widths are read from the tensors' shapes, so the official files
    give the standard networks while narrower variants with the same layout
    (fine-tuned or for tests) load as well.

    Returns
    -------
    VGG
        In eval mode, returning fc7.
    """
    template = VGG_CONFIGS.get(depth)
    if template is None:
        raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGS)}, "
                         f"not {depth}")
    config: list[int | str] = []
    index = 0
    for item in template:
        if item == "M":
            config.append("M")
            index += 1
        else:
            config.append(int(state_dict[f"features.{index}.weight"].shape[0]))
            index += 2
    hidden = int(state_dict["classifier.0.weight"].shape[0])
    num_classes = int(state_dict["classifier.6.weight"].shape[0])
    model = VGG(config, hidden=hidden, num_classes=num_classes,
                features_only=True)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _build(spec: EmbedderSpec, depth: int, *, state, weights_dir=None,
           random_weights: bool = False) -> VGG:
    return torchvision_network(
        spec, lambda state: vgg_from_state_dict(state, depth),
        lambda: vgg(depth), state=state, weights_dir=weights_dir,
        random_weights=random_weights)


def build_vgg16(spec: EmbedderSpec, *, state=None, weights_dir=None,
                random_weights: bool = False) -> VGG:
    """VGG16 returning fc7, from ``state`` or ``spec``'s checked weights
    file (see :func:`~.models.build_network`)."""
    return _build(spec, 16, state=state, weights_dir=weights_dir,
                  random_weights=random_weights)


def build_vgg19(spec: EmbedderSpec, *, state=None, weights_dir=None,
                random_weights: bool = False) -> VGG:
    """VGG19 returning fc7, as :func:`build_vgg16`."""
    return _build(spec, 19, state=state, weights_dir=weights_dir,
                  random_weights=random_weights)
