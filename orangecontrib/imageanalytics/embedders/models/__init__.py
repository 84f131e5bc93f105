"""Network architectures in plain torch for the server's embedders.

Parameter names match torchvision's state dicts so that the official weight
files load unchanged; torchvision itself is not needed.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["fuse_conv_bn"]


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold an inference-mode batch norm into the convolution before it.

    At inference time batch norm is an affine map per channel, so it can be
    folded into the convolution's weights and bias.  That saves one pass over
    every activation tensor, which is most of the batch norm's cost.
    """
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size,
        stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
        groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.copy_(conv.weight * factor.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None \
        else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * factor + bn.bias)
    return fused
