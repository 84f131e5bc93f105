"""Synthetic photos and their copies for the Review Images tests.

Each photo is a random scene (a gradient sky, shapes with sharp edges and
fine texture), so that two seeds give two different pictures with the same
look, and a copy of one stays recognisable after the edits people make.
"""
import io
import os

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

SIZE = (320, 240)


def scene(seed: int, size=SIZE, palette_seed=None) -> Image.Image:
    """A random scene; ``palette_seed`` shares the colours between scenes."""
    rng = np.random.default_rng(seed)
    colours = np.random.default_rng(seed if palette_seed is None else palette_seed)
    w, h = size
    top, bottom = colours.integers(40, 220, 3), colours.integers(40, 220, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    sky = (top * (1 - t) + bottom * t) * np.ones((1, w, 1))
    sky += rng.normal(0, 6, sky.shape)   # fine texture, as a sensor gives
    im = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(14):
        x0, y0 = rng.integers(0, w - 20), rng.integers(0, h - 20)
        x1, y1 = x0 + rng.integers(15, w // 2), y0 + rng.integers(15, h // 2)
        colour = tuple(int(c) for c in colours.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    return im


def jpeg(im: Image.Image, quality: int = 90, **kwargs) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, **kwargs)
    return out.getvalue()


def write(folder, name: str, data: bytes, age: float = 0.0) -> str:
    """Write ``data``; ``age`` seconds older than the others (an original
    is older than its copies)."""
    path = os.path.join(str(folder), name)
    with open(path, "wb") as f:
        f.write(data)
    stamp = 1_700_000_000 - age
    os.utime(path, (stamp, stamp))
    return path


def decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def encoded(im: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kwargs)
    return out.getvalue()


def blurred(im: Image.Image) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(0.012 * max(im.size)))


def exposed(im: Image.Image, factor: float) -> Image.Image:
    """Exposure times ``factor`` in linear light, clipped as a sensor clips."""
    x = (np.asarray(im, dtype=np.float32) / 255.0) ** 2.2
    x = np.clip(x * factor, 0, 1) ** (1 / 2.2)
    return Image.fromarray((x * 255 + 0.5).astype(np.uint8))


def brighter(im: Image.Image, factor: float = 1.15) -> Image.Image:
    return ImageEnhance.Brightness(im).enhance(factor)


def cropped(im: Image.Image, share: float = 0.04) -> Image.Image:
    w, h = im.size
    dx, dy = round(share * w), round(share * h)
    return im.crop((dx, dy, w - dx, h - dy))


def next_frame(im: Image.Image, dx: float = 0.05, dy: float = 0.03) -> Image.Image:
    """The next frame of a burst: the scene moved by ``dx`` and ``dy``."""
    w, h = im.size
    dx, dy = round(dx * w), round(dy * h)
    return im.crop((dx, dy, w, h)).resize((w, h), Image.Resampling.BICUBIC)


def exif_rotated(im: Image.Image) -> bytes:
    """Stored turned a quarter, with the EXIF tag that turns it back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg(im.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
