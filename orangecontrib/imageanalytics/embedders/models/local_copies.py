"""Build the server's networks on this computer from downloaded weights.

The local copies of the registry (:data:`~orangecontrib.imageanalytics.
embedders.registry.LOCAL_COPIES`: Inception v3, VGG16, VGG19) run the same
plain-torch networks as the embedding server, with the same torchvision
weight file, read through the one loader that checks its SHA-256.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.models.inception_v3 import (
    inception_v3_from_state_dict,
)
from orangecontrib.imageanalytics.embedders.models.vgg import (
    vgg_from_state_dict,
)
from orangecontrib.imageanalytics.embedders.registry import (
    EmbedderSpec,
    get_embedder,
)

__all__ = ["NETWORKS", "build_local_copy", "network_from_state_dict"]

#: Key of a server embedder -> builder of its network from a state dict.
NETWORKS: dict[str, Callable[[Mapping[str, torch.Tensor]], nn.Module]] = {
    "inception-v3": inception_v3_from_state_dict,
    "vgg16": lambda state: vgg_from_state_dict(state, 16),
    "vgg19": lambda state: vgg_from_state_dict(state, 19),
}


def _network_key(spec: EmbedderSpec) -> str:
    key = spec.server_key or spec.key
    if key not in NETWORKS:
        raise EmbedderUnavailable(
            f"{spec.label} has no network that runs on this computer.")
    return key


def network_from_state_dict(spec: EmbedderSpec | str,
                            state: Mapping[str, torch.Tensor]) -> nn.Module:
    """The network of ``spec`` with the parameters ``state``, in eval mode,
    returning the embedding.

    Raises
    ------
    EmbedderUnavailable
        If ``state`` does not fit the network (another model's file).
    """
    if isinstance(spec, str):
        spec = get_embedder(spec)
    key = _network_key(spec)
    try:
        return NETWORKS[key](state).eval()
    except (KeyError, RuntimeError) as error:
        raise EmbedderUnavailable(
            f"The weights file of {spec.label} does not fit its network: "
            f"{error}") from error


def build_local_copy(spec: EmbedderSpec | str, *,
                     weights_dir=None) -> nn.Module:
    """Load the checked weights of ``spec`` and build its network.

    Parameters
    ----------
    spec
        A local copy (or the server embedder it copies).
    weights_dir
        Folder of the weight files; by default the user's weights folder.

    Raises
    ------
    EmbedderUnavailable
        If the weights file is missing or damaged (the message names the
        file and how to download it) or does not fit the network.
    """
    from orangecontrib.imageanalytics.embedders.weights import (
        load_state_dict_checked,
    )
    if isinstance(spec, str):
        spec = get_embedder(spec)
    _network_key(spec)
    state = load_state_dict_checked(spec, weights_dir)
    return network_from_state_dict(spec, state)
