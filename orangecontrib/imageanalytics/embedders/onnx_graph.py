"""Build the ONNX graphs of the local embedders from their NumPy weights.

The ONNX Runtime engine used to get its model by exporting the PyTorch
network, which costs a user's first embedding about four seconds (importing
torch, tracing, exporting).  The networks are small and fixed, so this module
writes their graphs directly from the weights: SqueezeNet from ndf's arrays,
EfficientNet-Lite0 from its folded layers, in a few milliseconds and without
torch.

The graph is written as ONNX's protobuf encoding by :class:`_Message`, which
knows only the few message types a graph of convolutions needs (model,
graph, node, attribute, tensor, value info).  ``onnx.helper`` would do the
same, but importing it costs more than the whole first vector.  Measured on
a shared 2-core machine (2026-12-02, onnx 1.23): ``python -X importtime -c
"import onnx.helper"`` took 1.2-1.3 s at load 2.3 and 2.9-3.9 s at load 3,
while the whole first-vector process (``bench_local.py --first-vector PHOTO
--repeat 5``: Python's start, the imports, the vector) took 0.5-0.7 s for
SqueezeNet and 0.7-0.9 s for EfficientNet-Lite0 at load 2.3.  The tests
check every graph with ``onnx.checker`` and against the PyTorch networks.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from orangecontrib.imageanalytics.embedders.efficientnet import (
    EfficientNetLayers,
    efficientnet_layers,
)
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec
from orangecontrib.imageanalytics.embedders.same_padding import same_padding
from orangecontrib.imageanalytics.embedders.squeezenet import (
    LAYERS as SQUEEZENET_LAYERS,
)
from orangecontrib.imageanalytics.embedders.squeezenet import load_ndf_weights

__all__ = [
    "INPUT_NAME",
    "IR_VERSION",
    "OPSET",
    "OUTPUT_NAME",
    "efficientnet_graph",
    "efficientnet_model",
    "squeezenet_graph",
    "squeezenet_model",
]

#: ONNX opset of the graphs; ONNX Runtime ≥ 1.12 runs it
OPSET = 17
#: the IR version that goes with opset 17
IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "output"

# onnx.proto: TensorProto.DataType and AttributeProto.AttributeType
_FLOAT = 1
_ATTR_INT = 2
_ATTR_INTS = 7


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64   # int64 as protobuf writes it: ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Message:
    """A protobuf message being written: fields in the order they are
    added (any order is valid protobuf)."""

    def __init__(self):
        self._parts: list[bytes] = []

    def int(self, field: int, value: int) -> _Message:
        self._parts += [_varint(field << 3), _varint(int(value))]
        return self

    def ints(self, field: int, values: Iterable[int]) -> _Message:
        for value in values:
            self.int(field, value)
        return self

    def bytes(self, field: int, value: bytes | str | _Message) -> _Message:
        if isinstance(value, str):
            value = value.encode()
        elif isinstance(value, _Message):
            value = value.encode()
        self._parts += [_varint(field << 3 | 2), _varint(len(value)), value]
        return self

    def encode(self) -> bytes:
        return b"".join(self._parts)


def _tensor(name: str, array: np.ndarray) -> _Message:
    array = np.ascontiguousarray(array, dtype="<f4")
    return (_Message().ints(1, array.shape).int(2, _FLOAT)
            .bytes(8, name).bytes(9, array.tobytes()))


def _value_info(name: str, shape: Iterable[int | str]) -> _Message:
    dims = _Message()
    for dim in shape:
        if isinstance(dim, str):
            dims.bytes(1, _Message().bytes(2, dim))
        else:
            dims.bytes(1, _Message().int(1, dim))
    tensor_type = _Message().int(1, _FLOAT).bytes(2, dims)
    return _Message().bytes(1, name).bytes(2, _Message().bytes(1, tensor_type))


class _Graph:
    """Nodes and initializers of one graph, with fresh value names."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[_Message] = []
        self.initializers: list[_Message] = []
        self._count = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, array: np.ndarray) -> str:
        name = self._fresh(hint)
        self.initializers.append(_tensor(name, array))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None,
             **attributes) -> str:
        output = output or self._fresh(op.lower())
        node = _Message()
        for value in inputs:
            node.bytes(1, value)
        node.bytes(2, output).bytes(3, output).bytes(4, op)
        for key, value in attributes.items():
            attribute = _Message().bytes(1, key)
            if isinstance(value, (tuple, list)):
                attribute.int(20, _ATTR_INTS).ints(8, value)
            else:
                attribute.int(20, _ATTR_INT).int(3, value)
            node.bytes(5, attribute)
        self.nodes.append(node)
        return output

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray, *,
             stride: int = 1, pads: tuple[int, int] = (0, 0),
             group: int = 1, output: str | None = None) -> str:
        kernel = weight.shape[-2:]
        before, after = pads
        return self.node(
            "Conv", [x, self.constant("w", weight), self.constant("b", bias)],
            output, kernel_shape=list(kernel), strides=[stride, stride],
            pads=[before, before, after, after], group=group)

    def model(self, input_size: int, dimension: int) -> bytes:
        graph = _Message()
        for node in self.nodes:
            graph.bytes(1, node)
        graph.bytes(2, self.name)
        for initializer in self.initializers:
            graph.bytes(5, initializer)
        graph.bytes(11, _value_info(INPUT_NAME,
                                    ("batch", 3, input_size, input_size)))
        graph.bytes(12, _value_info(OUTPUT_NAME, ("batch", dimension)))
        opset = _Message().bytes(1, "").int(2, OPSET)
        return (_Message().int(1, IR_VERSION)
                .bytes(2, "orangecontrib.imageanalytics")
                .bytes(7, graph).bytes(8, opset).encode())


def _keras_kernel(kernel: np.ndarray) -> np.ndarray:
    # Keras (H, W, in, out) -> ONNX (out, in, H, W)
    return np.asarray(kernel).transpose(3, 2, 0, 1)


def squeezenet_graph(weights: dict[str, tuple[np.ndarray, np.ndarray]],
                     input_size: int = 227) -> bytes:
    """ONNX model of SqueezeNet v1.1 as ndf defines it (``squeezenet.py``).

    Parameters
    ----------
    weights
        ndf's layers, from :func:`.squeezenet.load_ndf_weights`.
    input_size
        Side of the square input the padding is computed for.

    Returns
    -------
    bytes
        A serialised ONNX model: ``input`` ``batch×3×S×S`` float32
        (preprocessed) -> ``output`` ``batch×1000``.
    """
    graph = _Graph("squeezenet")
    kernel, bias = weights["conv1"]
    x = graph.conv(INPUT_NAME, _keras_kernel(kernel), bias, stride=2,
                   pads=same_padding(input_size, 3, 2))
    x = graph.node("Relu", [x])
    for layer in SQUEEZENET_LAYERS:
        if layer == "pool":
            x = graph.node("MaxPool", [x], kernel_shape=[3, 3],
                           strides=[2, 2])
            continue
        name = layer[0]
        kernel, bias = weights[f"{name}/squeeze1x1"]
        x = graph.node("Relu", [graph.conv(x, _keras_kernel(kernel), bias)])
        kernel, bias = weights[f"{name}/expand1x1"]
        left = graph.node("Relu", [graph.conv(x, _keras_kernel(kernel), bias)])
        kernel, bias = weights[f"{name}/expand3x3"]
        right = graph.node("Relu", [graph.conv(
            x, _keras_kernel(kernel), bias, pads=(1, 1))])
        x = graph.node("Concat", [left, right], axis=1)
    kernel, bias = weights["conv10"]
    x = graph.conv(x, _keras_kernel(kernel), bias)
    # ndf averages 13×13 windows at stride 1 and flattens what comes out
    x = graph.node("AveragePool", [x], kernel_shape=[13, 13], strides=[1, 1])
    graph.node("Flatten", [x], OUTPUT_NAME, axis=1)
    return graph.model(input_size, bias.shape[0])


def efficientnet_graph(layers: EfficientNetLayers,
                       input_size: int = 224) -> bytes:
    """ONNX model of EfficientNet-Lite0 (``efficientnet.py``).

    Returns
    -------
    bytes
        A serialised ONNX model: ``input`` ``batch×3×S×S`` float32
        (preprocessed) -> ``output`` ``batch×1280`` pooled features.
    """
    graph = _Graph("efficientnet_lite0")
    low = graph.constant("zero", np.zeros((), np.float32))
    high = graph.constant("six", np.full((), 6, np.float32))

    def relu6(x: str) -> str:
        return graph.node("Clip", [x, low, high])

    size = input_size
    x = relu6(graph.conv(INPUT_NAME, *layers.stem, stride=2,
                         pads=same_padding(size, 3, 2)))
    size = -(-size // 2)
    for block in layers.blocks:
        inputs = x
        if block.expand is not None:
            x = relu6(graph.conv(x, *block.expand))
        channels = block.depthwise[0].shape[0]
        x = relu6(graph.conv(
            x, *block.depthwise, stride=block.stride, group=channels,
            pads=same_padding(size, block.kernel, block.stride)))
        size = -(-size // block.stride)
        x = graph.conv(x, *block.project)
        if block.residual:
            x = graph.node("Add", [x, inputs])
    x = relu6(graph.conv(x, *layers.head))
    x = graph.node("GlobalAveragePool", [x])
    graph.node("Flatten", [x], OUTPUT_NAME, axis=1)
    return graph.model(input_size, layers.head[0].shape[0])



def squeezenet_model(spec: EmbedderSpec) -> bytes:
    """The ONNX model of ``spec`` (SqueezeNet) with ndf's weights."""
    return squeezenet_graph(load_ndf_weights(), spec.input_size)


def efficientnet_model(spec: EmbedderSpec) -> bytes:
    """The ONNX model of ``spec`` (EfficientNet-Lite0) with its shipped
    weights."""
    return efficientnet_graph(efficientnet_layers(), spec.input_size)
