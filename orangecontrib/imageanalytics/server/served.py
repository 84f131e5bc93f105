"""Served models: one batch of decoded images in, vectors out.

A :class:`ServedModel` turns a batch of decoded images (``uint8`` ``H×W×3``
at the model's input size) into vectors, normalising them as the spec
prescribes.  On a GPU the work of one batch is *launched* (host to device
copy, forward pass, copy back, all asynchronous) and its result collected
later, so the batcher can gather the next batch while the GPU computes.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.inputs import prepare_input
from orangecontrib.imageanalytics.embedders.preprocess import to_model_input
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = ["Pending", "RunnerModel", "ServedModel", "TorchModel",
           "batch_buckets"]

log = logging.getLogger(__name__)

Item = Any   # np.ndarray (decoded) or bytes (for the GPU decoder)


class Pending:
    """The result of a launched batch: ``N×D`` float32 vectors and the
    indices of images that failed inside the model step, with reasons."""

    def __init__(self, vectors: np.ndarray,
                 errors: dict[int, str] | None = None, event=None) -> None:
        self._vectors = vectors
        self._errors = errors or {}
        self._event = event

    def result(self) -> tuple[np.ndarray, dict[int, str]]:
        if self._event is not None:
            self._event.synchronize()
            self._event = None
        return self._vectors, self._errors


def batch_buckets(max_batch: int) -> list[int]:
    """Batch sizes a GPU model is run at (batches are padded up to one).

    cuDNN tunes its kernels per input shape; a handful of fixed sizes keep
    the tuning to the warm-up instead of every new batch size.  Powers of two
    up to 32, then multiples of 32: padding wastes little on large batches.
    """
    sizes = []
    size = 1
    while size < min(32, max_batch):
        sizes.append(size)
        size *= 2
    size = min(32, max_batch)
    while size < max_batch:
        sizes.append(size)
        size += 32
    sizes.append(max_batch)
    return sorted(set(sizes))


class ServedModel(ABC):
    """One model, ready to embed batches.

    Attributes
    ----------
    spec
        The embedder (``spec.dimension`` may be 0 for models declared without
        one; :attr:`dimension` is the measured one).
    dimension
        Length of the vectors.
    device
        Where the model runs.
    engine
        Short description, e.g. ``"torch fp16"``, for ``GET /models``.
    max_batch
        Largest batch the model accepts.
    """

    def __init__(self, spec: EmbedderSpec, *, device: str, max_batch: int,
                 max_pixels: int) -> None:
        self.spec = spec
        self.device = device
        self.max_batch = max_batch
        self.max_pixels = max_pixels
        self.dimension = spec.dimension
        self.engine = ""

    def prepare(self, data: bytes) -> Item:
        """Decode one image for this model; runs in the decode pool.

        Raises
        ------
        orangecontrib.imageanalytics.images.ImageLoadError
            If the bytes are not a usable image.
        """
        return prepare_input(bytes(data), self.spec, max_pixels=self.max_pixels)

    @abstractmethod
    def launch(self, items: Sequence[Item]) -> Pending:
        """Start embedding a batch; runs in the model's inference thread."""

    @abstractmethod
    def forward_fn(self, batch_size: int) -> Callable[[], None]:
        """A function running one forward pass on a fixed, already
        normalised batch and waiting for it: model-only throughput for
        benchmarks, without decoding, normalisation or transfers."""

    def embed(self, items: Sequence[Item]) -> np.ndarray:
        """Embed a batch and wait for the vectors (tests, warm-up)."""
        vectors, _ = self.launch(items).result()
        return vectors

    def warm_up(self) -> None:
        """Run the model once (and at every batch size it uses on a GPU);
        measures :attr:`dimension`."""
        height, width = self.spec.input_shape
        blank = np.zeros((height, width, 3), dtype=np.uint8)
        vectors = self.embed([blank])
        if vectors.ndim != 2 or vectors.shape[0] != 1:
            raise EmbedderUnavailable(
                f"{self.spec.label}: the model returned an output of shape "
                f"{vectors.shape} for one image; expected 1×D")
        if self.spec.dimension and vectors.shape[1] != self.spec.dimension:
            raise EmbedderUnavailable(
                f"{self.spec.label}: the model gives {vectors.shape[1]}-d "
                f"vectors, but {self.spec.dimension} are declared")
        self.dimension = int(vectors.shape[1])


def _stack(items: Sequence[np.ndarray], out: np.ndarray | None = None
           ) -> np.ndarray:
    if out is None:
        return np.stack(items)
    for row, item in zip(out, items):
        row[...] = item
    return out


class RunnerModel(ServedModel):
    """A callable on normalised float32 ``N×3×H×W`` batches (the local
    engine's runner, or an ONNX Runtime session), on the CPU."""

    def __init__(self, spec: EmbedderSpec, runner, *, engine: str,
                 max_batch: int, max_pixels: int,
                 device: str = "cpu") -> None:
        super().__init__(spec, device=device, max_batch=max_batch,
                         max_pixels=max_pixels)
        self._runner = runner
        self.engine = engine

    def launch(self, items: Sequence[np.ndarray]) -> Pending:
        batch = to_model_input(_stack(items), self.spec)
        vectors = np.asarray(self._runner(batch), dtype=np.float32)
        return Pending(vectors.reshape(len(items), -1))

    def forward_fn(self, batch_size: int) -> Callable[[], None]:
        height, width = self.spec.input_shape
        pixels = np.random.default_rng(0).integers(
            0, 256, (batch_size, height, width, 3), dtype=np.uint8)
        batch = to_model_input(pixels, self.spec)
        return lambda: self._runner(batch)


class TorchModel(ServedModel):
    """A torch module; normalisation runs on the device, on a GPU in
    fp16/bf16 autocast with channels-last tensors and two pinned buffers so
    that gathering the next batch overlaps the current one."""

    def __init__(self, spec: EmbedderSpec, module, *, device: str,
                 max_batch: int, max_pixels: int, precision: str = "auto",
                 channels_last: bool = True, compile: bool = False,
                 decoder: str = "cpu") -> None:
        import torch

        super().__init__(spec, device=device, max_batch=max_batch,
                         max_pixels=max_pixels)
        self._torch = torch
        self._device = torch.device(device)
        self._cuda = self._device.type == "cuda"
        if precision == "auto":
            precision = "fp16" if self._cuda else "fp32"
        self._amp_dtype = {"fp32": None, "fp16": torch.float16,
                           "bf16": torch.bfloat16}[precision]
        self._channels_last = channels_last and self._cuda
        if self._cuda:
            # batch sizes are few (padded to buckets) and fixed after the
            # warm-up, so cuDNN's per-shape tuning pays off
            torch.backends.cudnn.benchmark = True
        module = module.eval().requires_grad_(False).to(self._device)
        if self._channels_last:
            module = module.to(memory_format=torch.channels_last)
        if compile:
            module = torch.compile(module)
        self._module = module
        std = np.asarray(spec.std, dtype=np.float64)
        self._factor = torch.tensor(spec.scale / std, dtype=torch.float32,
                                    device=self._device).reshape(1, 3, 1, 1)
        self._shift = torch.tensor(np.asarray(spec.mean) / std,
                                   dtype=torch.float32,
                                   device=self._device).reshape(1, 3, 1, 1)
        self._bgr = spec.channel_order == "BGR"
        self._buckets = batch_buckets(max_batch) if self._cuda else None
        self._slot = 0
        self._inputs: list = []
        self._outputs: list = []
        self._decoder = None
        if decoder == "gpu" and self._cuda:
            from orangecontrib.imageanalytics.server.gpudecode import (
                GpuJpegDecoder,
            )
            self._decoder = GpuJpegDecoder(spec, self._device, max_pixels)
        self.engine = f"torch {precision}" + (
            " channels-last" if self._channels_last else "") + (
            " compiled" if compile else "") + (
            " nvjpeg" if self._decoder is not None else "")

    def prepare(self, data: bytes) -> Item:
        if self._decoder is not None and self._decoder.accepts(data):
            return bytes(data)
        return super().prepare(data)

    def _padded(self, n: int) -> int:
        if self._buckets is None:
            return n
        return next(size for size in self._buckets if size >= n)

    def _host_buffers(self, size: int):
        """Pinned input/output buffers of the current slot, grown as needed."""
        torch = self._torch
        height, width = self.spec.input_shape
        while len(self._inputs) < 2:
            self._inputs.append(None)
            self._outputs.append(None)
        slot = self._slot
        self._slot = 1 - slot
        if self._inputs[slot] is None or self._inputs[slot].shape[0] < size:
            capacity = max(size, self.max_batch)
            self._inputs[slot] = torch.empty(
                (capacity, height, width, 3), dtype=torch.uint8,
                pin_memory=True)
            self._outputs[slot] = None
        return slot

    def _normalise(self, x):
        """uint8 N×3×H×W on the device -> float32 model input."""
        torch = self._torch
        if self._bgr:
            x = x.flip(1)
        x = x.to(torch.float32, memory_format=(
            torch.channels_last if self._channels_last
            else torch.contiguous_format))
        return x * self._factor - self._shift

    def launch(self, items: Sequence[Item]) -> Pending:
        torch = self._torch
        n = len(items)
        size = self._padded(n)
        errors: dict[int, str] = {}
        with torch.inference_mode():
            if self._cuda:
                slot = self._host_buffers(size)
                host = self._inputs[slot]
                arrays = [(i, item) for i, item in enumerate(items)
                          if isinstance(item, np.ndarray)]
                host_np = host.numpy()
                for i, item in arrays:
                    host_np[i] = item
                if len(arrays) == n:
                    x = host[:size].to(self._device, non_blocking=True)
                    x = x.permute(0, 3, 1, 2)
                else:   # JPEGs for the GPU decoder among them
                    if arrays:
                        x = host[:size].to(self._device, non_blocking=True)
                        x = x.permute(0, 3, 1, 2).contiguous()
                    else:
                        height, width = self.spec.input_shape
                        x = torch.empty((size, 3, height, width),
                                        dtype=torch.uint8, device=self._device)
                    encoded = {i: item for i, item in enumerate(items)
                               if not isinstance(item, np.ndarray)}
                    errors = self._decoder.decode_into(x, encoded)
            else:
                x = torch.from_numpy(_stack(items)).permute(0, 3, 1, 2)
            x = self._normalise(x)
            if self._amp_dtype is not None:
                with torch.autocast(self._device.type, dtype=self._amp_dtype):
                    y = self._module(x)
            else:
                y = self._module(x)
            y = y.reshape(y.shape[0], -1).float()
            if not self._cuda:
                return Pending(y.numpy()[:n], errors)
            out = self._outputs[slot]
            if out is None or out.shape[0] < size \
                    or out.shape[1] != y.shape[1]:
                out = torch.empty((host.shape[0], y.shape[1]),
                                  dtype=torch.float32, pin_memory=True)
                self._outputs[slot] = out
            out[:size].copy_(y, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        # the pinned buffers of this slot are reused two batches later, by
        # which time the batcher has collected this result (it keeps at most
        # one batch in flight while it gathers the next)
        return _CopyOnResult(out.numpy(), n, errors, event)

    def forward_fn(self, batch_size: int) -> Callable[[], None]:
        torch = self._torch
        height, width = self.spec.input_shape
        x = torch.randn((batch_size, 3, height, width), device=self._device)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        def forward() -> None:
            with torch.inference_mode():
                if self._amp_dtype is not None:
                    with torch.autocast(self._device.type,
                                        dtype=self._amp_dtype):
                        self._module(x)
                else:
                    self._module(x)
            if self._cuda:
                torch.cuda.synchronize(self._device)
        return forward

    def warm_up(self) -> None:
        super().warm_up()
        if self._buckets is None:
            return
        height, width = self.spec.input_shape
        blank = np.zeros((height, width, 3), dtype=np.uint8)
        for size in self._buckets:
            self.embed([blank] * size)


class _CopyOnResult(Pending):
    """Pending whose rows live in a reused pinned buffer: copy them out."""

    def __init__(self, buffer: np.ndarray, n: int, errors: dict[int, str],
                 event) -> None:
        super().__init__(buffer, errors, event)
        self._n = n

    def result(self) -> tuple[np.ndarray, dict[int, str]]:
        vectors, errors = super().result()
        return vectors[:self._n].copy(), errors
