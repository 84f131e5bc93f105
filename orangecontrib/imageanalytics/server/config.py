"""Settings of the embedding server and the models it serves.

:class:`ServerConfig` holds everything the command line sets.
:class:`ModelEntry` says how to build one served model: a built-in
architecture (SqueezeNet, Inception v3, VGG16, VGG19) with its weights file,
or a TorchScript / ONNX file declared in a models file.

A models file (TOML, or JSON with the same structure) declares more models,
or changes the file of a built-in one::

    [models.painters]
    file = "painters.onnx"          # relative to the weights folder
    format = "onnx"                 # or "torchscript"; default from the suffix
    sha256 = "..."                  # optional; checked before loading
    url = "https://..."             # optional; shown when the file is missing
    input_size = 256
    channel_order = "RGB"           # "RGB" or "BGR"
    scale = 0.00392156862745098     # input = (pixels * scale - mean) / std
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    output = "pool5"                # ONNX: output or inner tensor name;
                                    # TorchScript: index or key of the output
    dimension = 2048                # optional; checked after loading

Keys of the registry (``painters``, ``deeploc``, ``openface``, ...) take
their label, input size and preprocessing from the registry unless the file
says otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from orangecontrib.imageanalytics.embedders.registry import (
    EMBEDDERS,
    EmbedderSpec,
    WeightsSource,
)

__all__ = [
    "FILE_FORMATS",
    "ConfigError",
    "ModelEntry",
    "ServerConfig",
    "load_models_file",
    "resolve_entries",
]

#: Model file formats a models file may declare.
FILE_FORMATS = ("onnx", "torchscript")


def _built_in(architecture: str | None) -> EmbedderSpec | None:
    """The registry's embedder whose network is ``architecture``."""
    return next((spec for spec in EMBEDDERS.values()
                 if architecture and spec.architecture == architecture), None)


def _architectures() -> set[str]:
    """Networks written in this package (the registry's) and file formats."""
    return {spec.architecture for spec in EMBEDDERS.values()
            if spec.architecture} | set(FILE_FORMATS)


class ConfigError(ValueError):
    """A models file or an option is invalid; the message says where."""


@dataclass(frozen=True)
class ModelEntry:
    """How to build one served model.

    Attributes
    ----------
    spec
        The embedder: key, input size, preprocessing; ``spec.weights`` names
        the file (relative to the weights folder) and its SHA-256.
    architecture
        A network of this package (``spec.architecture`` of a registry
        embedder: ``squeezenet``, ``inception_v3``, ...), ``onnx`` or
        ``torchscript`` (a model file), or ``""`` for a model that has no
        file configured yet.
    output
        Which output of a model file is the embedding (see the module
        docstring); ``None`` for the first.
    """
    spec: EmbedderSpec
    architecture: str
    output: str | int | None = None


@dataclass
class ServerConfig:
    """Options of the server; the command line fills these in.

    Attributes
    ----------
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ...
    models
        Keys to serve; ``None`` serves every known model (those without
        weights are listed as unavailable).
    weights_dir
        Folder with weight files; ``None`` for the default
        (:func:`~orangecontrib.imageanalytics.embedders.weights.default_weights_dir`).
    models_file
        TOML or JSON file declaring more models.
    entries
        Served models, given directly (tests, embedding applications);
        overrides ``models`` and ``models_file``.
    api_key
        When set, every request but ``GET /health`` must carry it.
    max_batch
        Largest forward pass; ``None`` picks 256 on a GPU and 32 on a CPU.
    max_wait_ms
        How long the first image of a batch may wait for others.
    max_queue
        Images admitted per model (decoding, waiting or in the model) before
        new requests get 503.
    max_body_bytes, max_images_per_request, max_pixels
        Limits on one request and one image.
    max_buffered_bytes
        Bytes of request bodies held at once, over all requests; beyond it
        new requests get 503.  ``None``: 1 GiB, or four bodies of
        ``max_body_bytes`` if that is more.
    request_timeout
        Seconds from the request's arrival to the reply, body upload
        included; longer requests get 504.
    decode_threads
        Threads decoding images; ``None`` for one per core.
    precision
        ``"auto"`` (fp16 on a GPU, fp32 on a CPU), ``"fp32"``, ``"fp16"``,
        ``"bf16"``.
    decoder
        ``"cpu"`` (Pillow, in the thread pool) or ``"gpu"`` (torchvision's
        nvJPEG decoder, when importable and the device is CUDA).
    engine
        Engine for SqueezeNet on the CPU: ``"auto"`` (the local engine's
        fastest), ``"onnx"``, ``"torch"``.
    compile
        Run ``torch.compile`` on built-in models (GPU; slow start).
    random_weights
        Build the built-in networks with random weights instead of loading
        files; for benchmarks where the real files cannot be had.
    """
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    models: tuple[str, ...] | None = None
    weights_dir: Path | None = None
    models_file: Path | None = None
    entries: tuple[ModelEntry, ...] | None = None
    api_key: str | None = None
    max_batch: int | None = None
    max_wait_ms: float = 5.0
    max_queue: int = 2048
    max_body_bytes: int = 64 * 1024 * 1024
    max_images_per_request: int = 1024
    max_pixels: int = 40_000_000
    max_buffered_bytes: int | None = None
    request_timeout: float = 120.0
    decode_threads: int | None = None
    precision: str = "auto"
    channels_last: bool = True
    decoder: str = "cpu"
    engine: str = "auto"
    compile: bool = False
    random_weights: bool = False

    def resolved_device(self) -> str:
        """The torch device string this config runs on."""
        if self.device != "auto":
            return self.device
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_max_batch(self) -> int:
        if self.max_batch is not None:
            return max(1, int(self.max_batch))
        return 256 if self.resolved_device().startswith("cuda") else 32

    def resolved_max_buffered_bytes(self) -> int:
        if self.max_buffered_bytes is not None:
            return max(1, int(self.max_buffered_bytes))
        return max(1 << 30, 4 * self.max_body_bytes)

    def resolved_decode_threads(self) -> int:
        if self.decode_threads:
            return max(1, int(self.decode_threads))
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return os.cpu_count() or 1


def _default_entry(spec: EmbedderSpec) -> ModelEntry:
    return ModelEntry(spec, spec.architecture)


def _read_file(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError(
                f"{path}: reading TOML needs Python 3.11 or the 'tomli' "
                "package; or write the file as JSON") from None
    return tomllib.loads(text)


def _model_entry(key: str, options: dict, source: Path) -> ModelEntry:
    where = f"{source}, model {key!r}"
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: expected a table of options")
    options = dict(options)
    base = EMBEDDERS.get(key)
    file = options.pop("file", None)
    fmt = options.pop("format", None)
    sha256 = str(options.pop("sha256", "") or "")
    url = options.pop("url", None)
    output = options.pop("output", None)
    architecture = options.pop("architecture", None)
    if fmt is None and file is not None:
        suffix = Path(file).suffix.lower()
        fmt = "onnx" if suffix == ".onnx" else \
            "torchscript" if suffix in (".pt", ".ts", ".torchscript", ".jit") \
            else None
    architecture = architecture or fmt or (base and base.architecture)
    if architecture not in _architectures():
        raise ConfigError(
            f"{where}: give 'format' (one of {', '.join(FILE_FORMATS)}) or "
            f"'architecture' (one of {', '.join(sorted(_architectures()))})")
    if file is None and (base is None or base.weights is None):
        raise ConfigError(f"{where}: 'file' is required")
    # how a network is built comes from the registry, through 'architecture'
    fields = {f.name for f in dataclasses.fields(EmbedderSpec)} \
        - {"network", "onnx_graph", "int8"}
    unknown = set(options) - fields
    if unknown:
        raise ConfigError(f"{where}: unknown options "
                          + ", ".join(sorted(unknown)))
    for name in ("mean", "std"):
        if name in options:
            value = options[name]
            if not (isinstance(value, (list, tuple)) and len(value) == 3):
                raise ConfigError(f"{where}: {name} needs three numbers")
            options[name] = tuple(float(v) for v in value)
    if options.get("channel_order", "RGB") not in ("RGB", "BGR"):
        raise ConfigError(f"{where}: channel_order must be RGB or BGR")
    weights = WeightsSource(file, sha256=sha256, url=url) if file else \
        base.weights
    if base is not None:
        spec = dataclasses.replace(base, weights=weights, **options)
    else:
        if "input_size" not in options:
            raise ConfigError(f"{where}: 'input_size' is required")
        options.setdefault("label", key)
        options.setdefault("description", "")
        options.setdefault("dimension", 0)  # known once the model is loaded
        options.setdefault("local", False)
        spec = EmbedderSpec(key=key, weights=weights, **options)
    if not isinstance(spec.input_size, int) or spec.input_size < 8:
        raise ConfigError(f"{where}: input_size must be an integer >= 8")
    network = _built_in(architecture)
    if network is not None and spec.network != network.network:
        # a model of its own on one of the package's networks
        spec = dataclasses.replace(spec, architecture=architecture,
                                   network=network.network)
    return ModelEntry(spec, architecture, output)


def load_models_file(path: str | os.PathLike) -> list[ModelEntry]:
    """Read the models declared in a TOML or JSON models file.

    Raises
    ------
    ConfigError
        If the file cannot be read or an entry is invalid.
    """
    path = Path(path)
    try:
        content = _read_file(path)
    except (OSError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"cannot read models file {path}: {error}") \
            from error
    models = content.get("models")
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: expected a [models.KEY] table per model")
    return [_model_entry(str(key), options, path)
            for key, options in models.items()]


def resolve_entries(config: ServerConfig) -> list[ModelEntry]:
    """The models a config serves, in the order ``GET /models`` lists them.

    Raises
    ------
    ConfigError
        If ``config.models`` names a key that is neither in the registry nor
        in the models file, or the models file is invalid.
    """
    if config.entries is not None:
        return list(config.entries)
    entries = {key: _default_entry(spec) for key, spec in EMBEDDERS.items()}
    if config.models_file is not None:
        for entry in load_models_file(config.models_file):
            entries[entry.spec.key] = entry
    if config.models is None:
        return list(entries.values())
    unknown = [key for key in config.models if key not in entries]
    if unknown:
        raise ConfigError(
            f"unknown model(s) {', '.join(unknown)}; known: "
            + ", ".join(entries))
    return [entries[key] for key in config.models]
