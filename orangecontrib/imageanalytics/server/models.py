"""Loading the served models.

Models come from :class:`~orangecontrib.imageanalytics.server.config.
ModelEntry`: a network of this package, built by :func:`~orangecontrib.
imageanalytics.embedders.models.build_network` from the registry's spec as
everywhere else (SqueezeNet and EfficientNet-Lite0 with their shipped
weights and, on the CPU, the local engine; Inception v3, VGG16 and VGG19
from torchvision-format weight files checked by SHA-256), or TorchScript and
ONNX files declared in a models file.  Each is warmed up once, which also measures its output size.
"""
from __future__ import annotations

import logging

import numpy as np

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.server.config import (
    FILE_FORMATS,
    ModelEntry,
    ServerConfig,
)
from orangecontrib.imageanalytics.server.served import (
    RunnerModel,
    ServedModel,
    TorchModel,
)

__all__ = ["ServedModel", "load_model"]

log = logging.getLogger(__name__)


def _select_output(module, output: str | int | None):
    """Wrap a TorchScript module so that it returns one tensor: ``output``
    picks an element of a tuple, list or dict; by default the first."""
    import torch

    class SelectOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x):
            y = self.inner(x)
            if output is not None:
                y = y[output]
            elif isinstance(y, (tuple, list)):
                y = y[0]
            return y

    return SelectOutput()


def _onnx_session(path, output: str | int | None, cuda: bool):
    """ONNX Runtime session and the name of the embedding output.

    An ``output`` that names an inner tensor is made a graph output, so any
    layer of the file can be the embedding."""
    import onnxruntime as ort

    model_bytes = None
    if isinstance(output, str):
        import onnx
        model = onnx.load(str(path))
        names = [value.name for value in model.graph.output]
        if output not in names:
            inferred = onnx.shape_inference.infer_shapes(model)
            infos = [info for info in inferred.graph.value_info
                     if info.name == output]
            if not infos:
                raise EmbedderUnavailable(
                    f"{path} has no tensor named {output!r}")
            model.graph.output.append(infos[0])
            model_bytes = model.SerializeToString()
    providers = ["CPUExecutionProvider"]
    if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(
        model_bytes if model_bytes is not None else str(path),
        providers=providers)
    outputs = [value.name for value in session.get_outputs()]
    if output is None:
        name = outputs[0]
    elif isinstance(output, int):
        name = outputs[output]
    else:
        name = output
    return session, name


def _onnx_model(entry: ModelEntry, path, device: str, max_batch: int,
                max_pixels: int) -> ServedModel:
    session, output = _onnx_session(path, entry.output,
                                    device.startswith("cuda"))
    inputs = session.get_inputs()
    input_name = inputs[0].name
    batch_dim = inputs[0].shape[0] if inputs[0].shape else None
    fixed_one = batch_dim == 1

    def run(batch: np.ndarray) -> np.ndarray:
        if fixed_one:
            return np.concatenate([
                session.run([output], {input_name: batch[i:i + 1]})[0]
                .reshape(1, -1) for i in range(len(batch))])
        return session.run([output], {input_name: batch})[0]

    provider = session.get_providers()[0].replace("ExecutionProvider", "")
    return RunnerModel(entry.spec, run, engine=f"onnxruntime {provider}",
                       max_batch=1 if fixed_one else max_batch,
                       max_pixels=max_pixels, device=device)


def load_model(entry: ModelEntry, config: ServerConfig) -> ServedModel:
    """Build, load and warm up the model of ``entry``.

    Raises
    ------
    EmbedderUnavailable
        If the model cannot be served here; the message says why and, for a
        missing weights file, which file and where to get it.
    """
    spec = entry.spec
    device = config.resolved_device()
    max_batch = config.resolved_max_batch()
    common = {"device": device, "max_batch": max_batch,
              "max_pixels": config.max_pixels}
    torch_options = dict(precision=config.precision,
                         channels_last=config.channels_last,
                         compile=config.compile, decoder=config.decoder,
                         **common)
    architecture = entry.architecture
    if not architecture:
        raise EmbedderUnavailable(
            f"No model file is configured for {spec.label}: declare one "
            f"under [models.{spec.key}] in a models file (--models-file), as "
            "a TorchScript or ONNX file.")
    if architecture in FILE_FORMATS:
        from orangecontrib.imageanalytics.embedders.weights import (
            check_weights_file,
        )
        path = check_weights_file(spec, config.weights_dir)
        if architecture == "onnx":
            model = _onnx_model(entry, path, **common)
        else:
            import torch
            try:
                module = torch.jit.load(str(path), map_location="cpu")
            except Exception as error:
                raise EmbedderUnavailable(
                    f"{path} cannot be loaded as TorchScript: {error}"
                ) from error
            model = TorchModel(spec, _select_output(module, entry.output),
                               **torch_options)
    elif spec.local and device == "cpu" and config.engine != "torch":
        # the local engines' fastest runner, the vectors of the local embedder
        from orangecontrib.imageanalytics.embedders.engines import get_runner
        runner = get_runner(spec, engine=config.engine)
        model = RunnerModel(
            spec, runner, engine=str(getattr(runner, "engine", "runner")),
            max_batch=max_batch, max_pixels=config.max_pixels)
    elif spec.network:
        from orangecontrib.imageanalytics.embedders.models import (
            build_network,
        )
        model = TorchModel(
            spec, build_network(spec, weights_dir=config.weights_dir,
                                random_weights=config.random_weights),
            **torch_options)
    else:
        raise EmbedderUnavailable(
            f"{spec.label}: unknown architecture {architecture!r}")
    try:
        model.warm_up()
    except EmbedderUnavailable:
        raise
    except Exception as error:
        raise EmbedderUnavailable(
            f"{spec.label} failed on a test image: {error}") from error
    return model
