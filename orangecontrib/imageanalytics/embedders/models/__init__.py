"""The embedders' networks in plain torch, and the one path that builds them.

Every network that runs here (SqueezeNet, EfficientNet-Lite0, Inception v3,
VGG16, VGG19) is built by :func:`build_network` from the registry's spec:
the local engines, the local copies of the server's networks and the
embedding server all call it.  The spec says which builder to use
(``EmbedderSpec.network``); nothing here names a model.

Parameter names of Inception v3 and VGG match torchvision's state dicts, so
the official weight files load unchanged; torchvision itself is not needed.

Importing this package does not import torch (the first vector of an ONNX
Runtime engine must not wait for it); the network modules do.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.registry import (
    EmbedderSpec,
    get_embedder,
    resolve_reference,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["build_network", "network_from_state_dict", "torchvision_network"]


def build_network(spec: EmbedderSpec | str, *,
                  state: Mapping[str, Any] | None = None,
                  weights_dir=None, random_weights: bool = False) -> nn.Module:
    """The network of ``spec`` with its weights, in eval mode, returning the
    embedding of preprocessed ``N×3×H×W`` float32 input.

    Parameters
    ----------
    spec
        An embedder (or its key) whose spec names a network.
    state
        The parameters, in the form the weights file holds them; by default
        they are read from the spec's weights (checked by SHA-256).
    weights_dir
        Folder of downloaded weight files; by default the user's.
    random_weights
        Random parameters instead of a downloaded file (a server started to
        test its throughput); weights that ship with a package are used as
        they are.

    Raises
    ------
    EmbedderUnavailable
        If the embedder has no network that runs here, or its weights are
        missing, damaged or do not fit the network.
    """
    if isinstance(spec, str):
        spec = get_embedder(spec)
    if not spec.network:
        raise EmbedderUnavailable(
            f"{spec.label} has no network that runs on this computer.")
    builder = resolve_reference(spec.network)
    return builder(spec, state=state, weights_dir=weights_dir,
                   random_weights=random_weights)


def network_from_state_dict(spec: EmbedderSpec | str,
                            state: Mapping[str, Any]) -> nn.Module:
    """:func:`build_network` with the parameters ``state``."""
    return build_network(spec, state=state)


def torchvision_network(spec: EmbedderSpec,
                        from_state: Callable[[Mapping], nn.Module],
                        random_network: Callable[[], nn.Module], *,
                        state: Mapping | None, weights_dir,
                        random_weights: bool) -> nn.Module:
    """Build a network whose weights file is a torchvision state dict.

    ``from_state`` builds the network from a state dict; ``random_network``
    makes an uninitialised one (for ``random_weights``).  The file is read
    through the one loader that checks its SHA-256.
    """
    if state is None:
        if random_weights:
            state = random_network().state_dict()
        else:
            from orangecontrib.imageanalytics.embedders.weights import (
                load_state_dict_checked,
            )
            state = load_state_dict_checked(spec, weights_dir)
    try:
        return from_state(state).eval()
    except (KeyError, RuntimeError) as error:
        raise EmbedderUnavailable(
            f"The weights file of {spec.label} does not fit the "
            f"{spec.architecture} network: {error}") from error
