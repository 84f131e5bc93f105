"""Inception v3 in plain torch, with torchvision's parameter names.

The module tree mirrors ``torchvision.models.inception_v3`` so that
torchvision's ``inception_v3_google-0cc3c7bd.pth`` loads with
``load_state_dict(strict=True)``.  The embedding is the 2048-d output of the
global average pool, before the classifier.

About ``transform_input``: Google's weights were trained on pixels scaled to
``[-1, 1]`` (``x / 127.5 - 1``).  torchvision feeds the model the usual
ImageNet normalisation (``(x / 255 - mean) / std``) and, for these weights,
sets ``transform_input=True`` so that the model first turns that input back
into Google's scaling.  The registry's Inception v3 spec uses the ImageNet
normalisation, so models built for those weights must use
``transform_input=True`` (the default of :func:`inception_v3`); the mean and
std it undoes are the spec's.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from orangecontrib.imageanalytics.embedders.models import torchvision_network
from orangecontrib.imageanalytics.embedders.registry import (
    EmbedderSpec,
    get_embedder,
)

__all__ = [
    "Inception3",
    "build_inception_v3",
    "inception_v3",
    "inception_v3_from_state_dict",
]

Normalisation = tuple[tuple[float, float, float], tuple[float, float, float]]

# the registry's embedder that Google's weights for this network serve
_SPEC_KEY = "inception-v3"


def _registry_normalisation() -> Normalisation:
    """Mean and std of the input of the registry's Inception v3."""
    spec = get_embedder(_SPEC_KEY)
    return spec.mean, spec.std


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)

    def fuse(self) -> None:
        """Fold the batch norm into the convolution (inference only)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn_eval(self.conv, self.bn)
            self.bn = nn.Identity()


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features,
                                       kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(
            self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(
            F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(
            self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7),
                                       padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1),
                                       padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1),
                                          padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7),
                                          padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1),
                                          padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7),
                                          padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_2(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_3(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_4(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_5(branch7x7dbl)
        branch_pool = self.branch_pool(
            F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7),
                                         padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1),
                                         padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_1(x)
        branch7x7x3 = self.branch7x7x3_2(branch7x7x3)
        branch7x7x3 = self.branch7x7x3_3(branch7x7x3)
        branch7x7x3 = self.branch7x7x3_4(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3),
                                        padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1),
                                        padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3),
                                           padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1),
                                           padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat(
            [self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl),
                                  self.branch3x3dbl_3b(branch3x3dbl)], 1)
        branch_pool = self.branch_pool(
            F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier; only used in training, kept for key names."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, kernel_size=5, stride=3)
        x = self.conv1(self.conv0(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.fc(torch.flatten(x, 1))


class Inception3(nn.Module):
    """Inception v3 (Szegedy et al., 2015) as laid out by torchvision.

    Parameters
    ----------
    num_classes
        Size of the classifier's output.
    aux_logits
        Create the auxiliary classifier (its parameters are in torchvision's
        weight file; it is never run here).
    transform_input
        Convert ImageNet-normalised input to the ``[-1, 1]`` scaling that
        Google's weights expect (see the module docstring).
    features_only
        Make :meth:`forward` return the 2048-d pooled features instead of
        the class scores.
    normalisation
        ``(mean, std)`` of the input that ``transform_input`` undoes; by
        default the registry's Inception v3 spec's.
    """

    def __init__(self, num_classes: int = 1000, *, aux_logits: bool = True,
                 transform_input: bool = False,
                 features_only: bool = False,
                 normalisation: Normalisation | None = None) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.features_only = features_only
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.5)
        self.fc = nn.Linear(2048, num_classes)
        # x' = x * (std / 0.5) + (mean - 0.5) / 0.5, per channel; buffers that
        # are not saved, so that the state dict stays torchvision's
        mean, std = normalisation or _registry_normalisation()
        std = torch.tensor(std).reshape(1, 3, 1, 1)
        mean = torch.tensor(mean).reshape(1, 3, 1, 1)
        self.register_buffer("_input_scale", std / 0.5, persistent=False)
        self.register_buffer("_input_shift", (mean - 0.5) / 0.5,
                             persistent=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the 2048-d globally pooled features, ``N×2048``."""
        if self.transform_input:
            x = x * self._input_scale.to(x.dtype) \
                + self._input_shift.to(x.dtype)
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = self.maxpool1(x)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = self.maxpool2(x)
        x = self.Mixed_5b(x)
        x = self.Mixed_5c(x)
        x = self.Mixed_5d(x)
        x = self.Mixed_6a(x)
        x = self.Mixed_6b(x)
        x = self.Mixed_6c(x)
        x = self.Mixed_6d(x)
        x = self.Mixed_6e(x)
        x = self.Mixed_7a(x)
        x = self.Mixed_7b(x)
        x = self.Mixed_7c(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        if self.features_only:
            return features
        return self.fc(self.dropout(features))

    def fuse_for_inference(self) -> Inception3:
        """Fold every batch norm into its convolution and drop ``AuxLogits``.

        Only for a model in eval mode whose weights are loaded: afterwards
        the state dict no longer matches torchvision's.
        """
        self.AuxLogits = None
        for module in self.modules():
            if isinstance(module, BasicConv2d):
                module.fuse()
        return self


def inception_v3(*, transform_input: bool = True, features_only: bool = True,
                 num_classes: int = 1000, aux_logits: bool = True,
                 normalisation: Normalisation | None = None) -> Inception3:
    """Build an uninitialised Inception v3 for torchvision's weights.

    The defaults suit the registry's ``inception-v3`` embedder: ImageNet
    normalised input (converted inside, see ``transform_input``) and the
    pooled 2048-d features as output.
    """
    return Inception3(num_classes, aux_logits=aux_logits,
                      transform_input=transform_input,
                      features_only=features_only,
                      normalisation=normalisation)


def inception_v3_from_state_dict(
        state_dict: Mapping[str, torch.Tensor], *,
        transform_input: bool = True, fuse: bool = True,
        normalisation: Normalisation | None = None) -> Inception3:
    """Build Inception v3 from a torchvision-format state dict.

    Parameters
    ----------
    state_dict
        Parameters with torchvision's names; ``AuxLogits.*`` may be absent.
    transform_input
        See the module docstring; ``True`` for Google's weights.
    fuse
        Fold batch norms into convolutions for faster inference.
    normalisation
        ``(mean, std)`` of the input, as in :class:`Inception3`.

    Returns
    -------
    Inception3
        In eval mode, returning pooled features.
    """
    num_classes = state_dict["fc.weight"].shape[0]
    has_aux = any(key.startswith("AuxLogits.") for key in state_dict)
    model = inception_v3(transform_input=transform_input, features_only=True,
                         num_classes=num_classes, aux_logits=has_aux,
                         normalisation=normalisation)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    if fuse:
        model.fuse_for_inference()
    return model


def build_inception_v3(spec: EmbedderSpec, *, state=None, weights_dir=None,
                       random_weights: bool = False) -> Inception3:
    """Inception v3 returning the pooled features, for input normalised as
    ``spec`` says, from ``state`` or ``spec``'s checked weights file (see
    :func:`~.models.build_network`)."""
    normalisation = (spec.mean, spec.std)
    return torchvision_network(
        spec,
        lambda state: inception_v3_from_state_dict(
            state, normalisation=normalisation),
        lambda: inception_v3(normalisation=normalisation),
        state=state, weights_dir=weights_dir, random_weights=random_weights)
