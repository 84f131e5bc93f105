"""Run a local model on preprocessed batches: ONNX Runtime or PyTorch.

:func:`get_runner` returns a callable mapping a ``float32`` ``N×3×H×W`` batch
(from :func:`~.preprocess.to_model_input`) to ``float32`` ``N×D`` vectors.
Every local model is defined in PyTorch (``models/``, built by
:func:`.models.build_network` from the registry's spec).  For ONNX Runtime,
the embedders whose spec names a graph builder (SqueezeNet and
EfficientNet-Lite0) are written as ONNX graphs straight from their NumPy
weights (``onnx_graph.py``, a few milliseconds, no torch); other local models
are exported from PyTorch.  Either way the model is cached in the user's
cache folder and reused by later processes.

Engine choice ("auto"): the engines that give the right vectors here are
float32 ONNX Runtime, PyTorch when it is installed, and INT8 ONNX Runtime
where its check passed on this processor (``quantize.py``).  Which is
fastest depends on the processor (INT8 halves SqueezeNet's time with VNNI
and buys nothing without it), so :func:`choose_engine` measures them once,
briefly, before the first large job, and keeps the choice in the cache
folder beside the model, keyed by the processor, the thread count and the
engines' versions.  Until then "auto" runs float32 ONNX Runtime, which was
the fastest float engine everywhere measured (1.5-3x PyTorch eager on
SqueezeNet); downloaded networks run in PyTorch (an ONNX copy of their
weights would take up to 0.5 GB more disk).

torch is imported only when a PyTorch runner is built or a model without a
graph builder is exported (importing it takes about a second): with ONNX
Runtime a process embedding with SqueezeNet or EfficientNet-Lite0 never
loads it, not even on a cold cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from orangecontrib.imageanalytics.cache_dirs import write_atomically
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.processor import current_processor
from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_EMBEDDER,
    LOCAL_COPIES,
    EmbedderSpec,
    embedder_keys,
    get_embedder,
    resolve_reference,
)

if TYPE_CHECKING:
    from torch import nn

    from orangecontrib.imageanalytics.embedders.quantize import Int8Check

__all__ = [
    "AUTO_MEASURE_MIN_IMAGES",
    "ENGINES",
    "EngineChoice",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "auto_choice_path",
    "available_engines",
    "build_torch_model",
    "choose_engine",
    "clear_runner_cache",
    "default_threads",
    "get_runner",
    "int8_check",
    "int8_model_path",
    "measure_model_throughput",
    "model_cache_dir",
    "onnx_model_path",
    "torch_installed",
    "torch_missing",
]

log = logging.getLogger(__name__)

#: "onnx-int8" is ONNX Runtime with the INT8 model, only for embedders whose
#: spec offers one (``EmbedderSpec.int8``), and only where its check passes on this
#: processor (vectors within cosine 0.99 of float32); elsewhere float32 runs
ENGINES = ("auto", "onnx", "onnx-int8", "torch")

#: "auto" measures the engines before a job of at least this many images,
#: if it has not measured them on this computer yet (a few seconds, once);
#: smaller jobs run float32 ONNX Runtime meanwhile
AUTO_MEASURE_MIN_IMAGES = 200
# an engine is chosen over float32 ONNX Runtime only if it is faster by
# more than this share: the exact vectors win when speed is a wash
_AUTO_MARGIN = 0.05
# seconds of forward passes measured per engine and round
_AUTO_SECONDS = 0.4
_AUTO_ROUNDS = 2

#: ONNX opset of exported models; ONNX Runtime ≥ 1.12 runs it
ONNX_OPSET = 17
# bump when the export below or a graph builder changes so that cached
# .onnx files are rebuilt
_EXPORT_FORMAT = 2
# bump when the quantisation or its check in quantize.py changes
_INT8_FORMAT = 2
# bump when the way "auto" measures changes
_AUTO_FORMAT = 1
_INPUT_NAME = "input"
_OUTPUT_NAME = "output"


def _weights_digest(spec: EmbedderSpec) -> str:
    """A digest that changes whenever the weights of ``spec`` do.

    Weights with a whole SHA-256 in the registry are checked against it
    before every build, so that names them exactly; weights that ship in a
    package without one (ndf's) are hashed once per process.
    """
    if len(spec.weights.sha256) == 64:
        return spec.weights.sha256
    from orangecontrib.imageanalytics.embedders.package_weights import (
        package_weights_sha256,
    )
    return package_weights_sha256(spec)


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
    engines = ["torch"] if torch_installed() else []
    if _onnxruntime() is not None:
        engines.insert(0, "onnx")
    return engines


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _local_keys() -> list[str]:
    """Keys of the embedders that run on this computer."""
    return [key for key in embedder_keys()
            if get_embedder(key).local and get_embedder(key).network]


def _resolve_spec(spec: EmbedderSpec | str) -> EmbedderSpec:
    if isinstance(spec, str):
        spec = get_embedder(spec)
    if not spec.local:
        raise EmbedderUnavailable(
            f"{spec.label} runs on an embedding server; there is no local "
            f"model for it. Choose a local embedder "
            f"({', '.join(_local_keys())}) or set a server address.")
    if not spec.network:
        raise EmbedderUnavailable(
            f"there is no local model for the embedder {spec.key!r}; local "
            f"embedders are: {', '.join(_local_keys())}")
    return spec


def torch_installed() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):    # e.g. sys.modules["torch"] = None
        return False


def torch_missing(spec: EmbedderSpec) -> str:
    """What to install for ``spec`` to run in PyTorch here (for people)."""
    return (f"{spec.label} runs on this computer in PyTorch, which is not "
            f"installed. Install it with: pip install "
            f"\"Orange3-ImageAnalytics[torch]\" (or pip install torch), "
            f"then restart Orange.")


def build_torch_model(spec: EmbedderSpec | str) -> nn.Module:
    """A new PyTorch module of a local embedder, in eval mode.

    Raises
    ------
    EmbedderUnavailable
        If the embedder has no local model, its weights cannot be loaded
        or PyTorch is not installed.
    """
    spec = _resolve_spec(spec)
    if not torch_installed():
        raise EmbedderUnavailable(torch_missing(spec))
    from orangecontrib.imageanalytics.embedders.models import build_network
    return build_network(spec)


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
    exporter = "graph" if spec.onnx_graph else _torch_version()
    stamp = "|".join((
        _weights_digest(spec), str(spec.input_size),
        exporter, str(ONNX_OPSET), str(_EXPORT_FORMAT)))
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    return model_cache_dir() / f"{spec.key}-{digest}.onnx"


def _export_onnx(spec: EmbedderSpec, target) -> None:
    """Write the ONNX model of ``spec`` to a path or a binary file."""
    if spec.onnx_graph:
        data = resolve_reference(spec.onnx_graph)(spec)
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
    model it is quantised from, the quantiser's settings and the processor
    (the format and the check depend on it), so that a model checked on
    another processor is never used here."""
    from orangecontrib.imageanalytics.embedders.quantize import (
        CALIBRATION_IMAGES,
        CHECK_IMAGES,
        MIN_COSINE,
        int8_format,
    )
    float_path = onnx_model_path(spec)
    ort = _onnxruntime()
    stamp = "|".join((
        float_path.name, str(CALIBRATION_IMAGES), str(CHECK_IMAGES),
        str(MIN_COSINE), int8_format().name, current_processor().signature,
        getattr(ort, "__version__", ""), str(_INT8_FORMAT)))
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    return float_path.parent / f"{_resolve_spec(spec).key}.int8-{digest}.onnx"


def _int8_check_path(spec: EmbedderSpec) -> Path:
    return int8_model_path(spec).with_suffix(".json")


# decisions and INT8 models that could not be written to the cache folder
_int8_in_memory: dict[Path, tuple[Int8Check, bytes | None]] = {}
_int8_lock = threading.Lock()


def int8_check(spec: EmbedderSpec | str) -> Int8Check:
    """Whether the INT8 model of ``spec`` is used on this processor.

    The first call on a computer quantises the model and checks it against
    the float model (:func:`.quantize.check_int8`, a few seconds); the
    decision is kept beside the cached model, and later calls only read it.

    Raises
    ------
    EmbedderUnavailable
        If ``spec`` has no INT8 model, or ONNX Runtime or its quantiser
        cannot run here.
    """
    spec = _resolve_spec(spec)
    _require_int8(spec)
    with _int8_lock:
        path = int8_model_path(spec)
        if path in _int8_in_memory:
            return _int8_in_memory[path][0]
        check = _read_int8_check(path)
        if check is not None and (path.exists() or not check.accepted):
            return check
        return _build_int8(spec, path)


def _require_int8(spec: EmbedderSpec) -> None:
    if _onnxruntime() is None:
        raise EmbedderUnavailable(
            "ONNX Runtime is not installed; install it with "
            "'pip install onnxruntime' or use the 'torch' engine")
    if not spec.int8:
        raise EmbedderUnavailable(
            f"{spec.label} has no INT8 model: quantising it changes its "
            f"vectors by more than a cosine of 0.01; use the 'onnx' "
            f"engine")


def _read_int8_check(path: Path) -> Int8Check | None:
    from orangecontrib.imageanalytics.embedders.quantize import Int8Check
    try:
        return Int8Check.from_dict(
            json.loads(path.with_suffix(".json").read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _build_int8(spec: EmbedderSpec, path: Path) -> Int8Check:
    """Quantise, check and keep the model and the decision (or keep them in
    memory when the cache folder cannot be written)."""
    from orangecontrib.imageanalytics.embedders.quantize import (
        check_int8,
        int8_format,
        quantize_int8,
    )
    buffer = io.BytesIO()
    _export_onnx(spec, buffer)
    float_model = buffer.getvalue()
    quant_format = int8_format()
    try:
        int8_model = quantize_int8(float_model, spec, input_name=_INPUT_NAME,
                                   quant_format=quant_format)
        check = check_int8(float_model, int8_model, spec,
                           format_name=quant_format.name)
    except EmbedderUnavailable:
        raise
    except Exception as err:
        raise EmbedderUnavailable(
            f"{spec.label} cannot be quantised here: {err}") from err
    if check.accepted:
        log.info("%s: %s", spec.label, check.reason)
    else:
        log.warning("%s: %s", spec.label, check.reason)
    try:
        if check.accepted:
            write_atomically(path, int8_model)
        write_atomically(path.with_suffix(".json"),
                          json.dumps(check.to_dict(), indent=1).encode())
    except OSError as err:
        log.warning("Cannot cache the INT8 model in %s: %s", path.parent, err)
        _int8_in_memory[path] = (check, int8_model if check.accepted
                                 else None)
        return check
    for stale in path.parent.glob(f"{spec.key}.int8-*"):
        if stale.stem != path.stem:
            stale.unlink(missing_ok=True)
    return check


def _onnx_runner(spec: EmbedderSpec, threads: int) -> OnnxRunner:
    """The float32 model in ONNX Runtime, exported once and cached."""
    if _onnxruntime() is None:
        raise EmbedderUnavailable(
            "ONNX Runtime is not installed; install it with "
            "'pip install onnxruntime' or use the 'torch' engine")
    try:
        return _cached_onnx_runner(spec, threads)
    except EmbedderUnavailable:
        raise
    except Exception as err:
        raise EmbedderUnavailable(
            f"{spec.label} cannot run in ONNX Runtime: {err}") from err


def _write_onnx(spec: EmbedderSpec, path: Path) -> None:
    """Export the float model to ``path`` and drop older exports."""
    buffer = io.BytesIO()
    _export_onnx(spec, buffer)
    write_atomically(path, buffer.getvalue())
    for stale in path.parent.glob(f"{spec.key}-*.onnx"):
        if stale != path:
            stale.unlink(missing_ok=True)


def _cached_onnx_runner(spec: EmbedderSpec, threads: int) -> OnnxRunner:
    path = onnx_model_path(spec)
    try:
        if path.exists():
            try:
                return OnnxRunner(spec, str(path), threads)
            # a truncated or foreign file: ONNX Runtime's errors derive
            # from Exception only
            except Exception as err:  # noqa: BLE001
                log.warning("Rebuilding the ONNX model %s: %s", path, err)
        _write_onnx(spec, path)
        return OnnxRunner(spec, str(path), threads)
    except OSError as err:
        # a read-only or full cache folder only costs an export per process
        log.warning("Cannot cache the ONNX model in %s: %s", path.parent, err)
    buffer = io.BytesIO()
    _export_onnx(spec, buffer)
    return OnnxRunner(spec, buffer.getvalue(), threads)


def _int8_runner(spec: EmbedderSpec, threads: int) -> OnnxRunner:
    """The INT8 model in ONNX Runtime; only after :func:`int8_check`
    accepted it."""
    path = int8_model_path(spec)
    kept = _int8_in_memory.get(path)
    model = kept[1] if kept is not None else str(path)
    try:
        return OnnxRunner(spec, model, threads, engine="onnx-int8")
    except Exception as err:  # noqa: BLE001 - a damaged file: check again
        log.warning("Rebuilding the INT8 model %s: %s", path, err)
    with _int8_lock:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
    check = int8_check(spec)
    if not check.accepted:
        raise EmbedderUnavailable(check.reason)
    kept = _int8_in_memory.get(path)
    return OnnxRunner(spec, kept[1] if kept is not None else str(path),
                      threads, engine="onnx-int8")


@dataclass(frozen=True)
class EngineChoice:
    """The engine that runs a request for an engine, and why."""
    engine: str
    reason: str = ""


def choose_engine(spec: EmbedderSpec | str, engine: str = "auto", *,
                  threads: int | None = None,
                  measure: bool = False) -> EngineChoice:
    """Which engine :func:`get_runner` runs for ``engine``.

    - "onnx" and "torch" are themselves.
    - "onnx-int8" is itself where :func:`int8_check` accepts INT8 on this
      processor, else "onnx", with the check's reason (logged as a warning).
    - "auto" is the engine measured fastest here (see the module's
      docstring); if the engines were not measured yet, ``measure`` says
      whether to measure them now (a few seconds, once per computer),
      otherwise "onnx" runs.

    Raises
    ------
    EmbedderUnavailable
        If ``engine`` is "onnx-int8" and the embedder has no INT8 model or
        it cannot be built here.
    ValueError
        If ``engine`` is not one of :data:`ENGINES`.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; valid engines are: "
                         + ", ".join(ENGINES))
    spec = _resolve_spec(spec)
    threads = threads or default_threads()
    if engine in ("onnx", "torch"):
        return EngineChoice(engine)
    if engine == "onnx-int8":
        check = int8_check(spec)
        if check.accepted:
            return EngineChoice("onnx-int8", check.reason)
        log.warning("%s: %s", spec.label, check.reason)
        return EngineChoice("onnx", check.reason)
    if spec.key in LOCAL_COPIES:
        return EngineChoice("torch", "a downloaded network runs in PyTorch")
    if _onnxruntime() is None:
        return EngineChoice("torch", "ONNX Runtime is not installed")
    path = auto_choice_path(spec, threads)
    try:
        stored = json.loads(path.read_text("utf-8"))
        if stored["engine"] in ENGINES[1:]:
            return EngineChoice(stored["engine"], stored.get("reason", ""))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not measure:
        return EngineChoice("onnx", "not measured on this computer yet")
    with _auto_lock:
        choice = _measure_engines(spec, threads)
    try:
        write_atomically(path, json.dumps(
            {"engine": choice.engine, "reason": choice.reason}).encode())
    except OSError as err:
        log.warning("Cannot keep the engine choice in %s: %s",
                    path.parent, err)
    return choice


_auto_lock = threading.Lock()


def auto_choice_path(spec: EmbedderSpec | str, threads: int) -> Path:
    """Where the "auto" engine choice for ``spec`` and ``threads`` is kept:
    named after the float model, the processor and the engines' versions, so
    that a change in any of them measures again."""
    spec = _resolve_spec(spec)
    ort = _onnxruntime()
    stamp = "|".join((
        onnx_model_path(spec).name, current_processor().signature,
        str(threads), getattr(ort, "__version__", ""), _torch_version_or(""),
        str(_AUTO_FORMAT)))
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    return model_cache_dir() / f"{spec.key}.auto-{digest}.json"


def _torch_version_or(default: str) -> str:
    return _torch_version() if torch_installed() else default


def _candidates(spec: EmbedderSpec) -> list[str]:
    """Engines whose vectors are right here, float32 ONNX Runtime first."""
    candidates = ["onnx"]
    try:
        if int8_check(spec).accepted:
            candidates.append("onnx-int8")
    except EmbedderUnavailable:
        pass
    if torch_installed():
        candidates.append("torch")
    return candidates


def _measure_engines(spec: EmbedderSpec, threads: int) -> EngineChoice:
    speeds: dict[str, float] = {}
    for _ in range(_AUTO_ROUNDS):
        for engine in _candidates(spec):
            try:
                speed = measure_model_throughput(
                    spec, engine, batch_size=8, seconds=_AUTO_SECONDS,
                    threads=threads)
            except EmbedderUnavailable as err:
                log.info("Not measuring %s for %s: %s", engine, spec.key, err)
                continue
            speeds[engine] = max(speed, speeds.get(engine, 0.0))
    # a runner measured and not chosen is not kept (PyTorch's is large)
    best = max(speeds, key=speeds.get)
    if speeds[best] <= speeds["onnx"] * (1 + _AUTO_MARGIN):
        best = "onnx"
    with _runners_lock:
        for engine in speeds:
            if engine != best:
                _runners.pop((spec.key, engine, threads), None)
    figures = ", ".join(f"{engine} {speed:.0f}"
                        for engine, speed in speeds.items())
    reason = f"measured here, images/s with {threads} thread(s): {figures}"
    log.info("%s runs on %s: %s", spec.label, best, reason)
    return EngineChoice(best, reason)


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
    requested, engine = engine, choose_engine(
        spec, engine, threads=threads).engine
    if engine == "onnx-int8":
        return _int8_runner(spec, threads)
    if engine == "onnx":
        existing = _runners.get((spec.key, "onnx", threads))
        if existing is not None:
            return existing
        try:
            return _onnx_runner(spec, threads)
        except EmbedderUnavailable as err:
            if requested != "auto":
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
            f"{engine} {measure_model_throughput(DEFAULT_EMBEDDER, engine, batch_size=size, seconds=2):6.1f} img/s"  # noqa: E501
            for engine in available_engines()))
