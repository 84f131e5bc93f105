"""Optional JPEG decoding on the GPU with torchvision's nvJPEG decoder.

Used only with ``--decoder gpu`` on a CUDA device where torchvision is
importable.  Plain RGB or greyscale JPEGs without an EXIF rotation are
decoded on the GPU, a whole batch per call; every other image (PNG, CMYK,
rotated, or one nvJPEG refuses) takes the usual Pillow path, so results and
error messages are those of the CPU decoder.  An image that is not already at
the model's input size is resized with antialiased bilinear interpolation
(Orange's clients send images at the input size, so this is rare).
"""
from __future__ import annotations

import io
from collections.abc import Mapping

from PIL import Image

from orangecontrib.imageanalytics import images
from orangecontrib.imageanalytics.embedders.inputs import prepare_input
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = ["GpuJpegDecoder"]

_ORIENTATION = 0x0112


class GpuJpegDecoder:
    """Batch JPEG decoder on a CUDA device."""

    def __init__(self, spec: EmbedderSpec, device, max_pixels: int) -> None:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        self._torch = torch
        self._decode_jpeg = decode_jpeg
        self._mode = ImageReadMode.RGB
        self.spec = spec
        self.device = device
        self.max_pixels = max_pixels

    def accepts(self, data: bytes) -> bool:
        """Whether ``data`` can go to the GPU (reads the header only)."""
        if data[:2] != b"\xff\xd8":
            return False
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                return (image.format == "JPEG"
                        and image.mode in ("RGB", "L")
                        and width * height <= self.max_pixels
                        and image.getexif().get(_ORIENTATION, 1) == 1)
        except Exception:  # noqa: BLE001 - let the CPU path give the reason
            return False

    def _cpu(self, data: bytes):
        array = prepare_input(data, self.spec, max_pixels=self.max_pixels)
        return self._torch.from_numpy(array).permute(2, 0, 1).to(self.device)

    def decode_into(self, batch, encoded: Mapping[int, bytes]
                    ) -> dict[int, str]:
        """Decode ``encoded`` (row -> JPEG bytes) into rows of ``batch``
        (``uint8`` ``N×3×H×W`` on the device); return failed rows."""
        torch = self._torch
        height, width = self.spec.input_shape
        rows = list(encoded)
        tensors = [torch.frombuffer(bytearray(encoded[row]), dtype=torch.uint8)
                   for row in rows]
        errors: dict[int, str] = {}
        try:
            decoded = self._decode_jpeg(tensors, mode=self._mode,
                                        device=self.device)
        except RuntimeError:
            # one bad image fails the whole call: retry one by one
            decoded = []
            for row, tensor in zip(rows, tensors):
                try:
                    decoded.append(self._decode_jpeg(
                        tensor, mode=self._mode, device=self.device))
                except RuntimeError:
                    try:
                        decoded.append(self._cpu(encoded[row]))
                    except images.ImageLoadError as error:
                        errors[row] = error.reason
                        decoded.append(None)
        for row, image in zip(rows, decoded):
            if image is None:
                continue
            if image.shape[1:] != (height, width):
                image = torch.nn.functional.interpolate(
                    image[None].float(), size=(height, width),
                    mode="bilinear", antialias=True, align_corners=False,
                )[0].round_().clamp_(0, 255).to(torch.uint8)
            batch[row].copy_(image)
        return errors
