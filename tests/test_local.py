import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeRunner
from PIL import Image

from orangecontrib.imageanalytics import images
from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
    EmbeddingError,
)
from orangecontrib.imageanalytics.embedders.local import (
    EmbedOutcome,
    LocalEmbedder,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder

SPEC = get_embedder("squeezenet")
# the photos that the benchmark collections are made from, next to the
# repository; tests that need them are skipped elsewhere
SEED_PHOTOS = Path(os.environ.get(
    "IMAGEANALYTICS_SEED_PHOTOS",
    Path(__file__).resolve().parents[2] / "shared" / "data" / "seed-photos"))


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    """Smooth gradients, a few shapes and a little noise, like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6)]
        img[..., c] = 127 + 80 * np.sin(fx * x / width * 6.28 + phase) \
            * np.cos(fy * y / height * 6.28)
    for _ in range(6):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.25) * min(width, height)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r ** 2
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def make_images(folder: Path, n: int, size=(96, 72)) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:03d}.jpg"
        photo_like(*size, seed=i).save(path, quality=90)
        paths.append(str(path))
    return paths


@pytest.fixture
def fake_cache(tmp_path):
    with EmbeddingCache(str(tmp_path / "cache.sqlite")) as cache:
        yield cache


def real_runner():
    from orangecontrib.imageanalytics.embedders import engines
    try:
        return engines.get_runner(SPEC)
    except EmbedderUnavailable as exc:   # pragma: no cover
        pytest.skip(str(exc))


def test_good_and_broken_images(tmp_path, fake_cache):
    good = make_images(tmp_path, 5)
    (tmp_path / "truncated.jpg").write_bytes(Path(good[0]).read_bytes()[:300])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, I am not an image")
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")
    sources = good + [str(tmp_path / name) for name in (
        "truncated.jpg", "empty.png", "text.jpg", "missing.jpg")] \
        + ["", None, str(tmp_path / "tiny.png")]
    runner = FakeRunner()
    reports = []
    outcomes = LocalEmbedder(SPEC, cache=fake_cache, runner=runner,
                             batch_size=3).embed(
        sources, progress=lambda done, total: reports.append((done, total)))
    assert len(outcomes) == len(sources)
    assert all(isinstance(o, EmbedOutcome) for o in outcomes)
    ok = [o.vector is not None for o in outcomes]
    assert ok == [True] * 5 + [False] * 6 + [True]
    for outcome in outcomes:
        if outcome.ok:
            assert outcome.vector.shape == (SPEC.dimension,)
            assert outcome.error is None
        else:
            assert isinstance(outcome.error, str) and outcome.error
    errors = [o.error for o in outcomes[5:11]]
    assert "empty" in errors[1]
    assert "not found" in errors[3]
    assert errors[4] == errors[5]
    assert reports[-1] == (len(sources), len(sources))
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert runner.n_images == 6


def test_duplicates_embedded_once(tmp_path):
    paths = make_images(tmp_path, 2)
    runner = FakeRunner()
    outcomes = LocalEmbedder(SPEC, runner=runner).embed(
        [paths[0], paths[1], paths[0], paths[0]])
    assert runner.n_images == 2
    np.testing.assert_array_equal(outcomes[0].vector, outcomes[3].vector)


def test_cache_hit_skips_decoding(tmp_path, fake_cache, monkeypatch):
    paths = make_images(tmp_path / "a", 6)
    runner = FakeRunner()
    embedder = LocalEmbedder(SPEC, cache=fake_cache, runner=runner,
                             batch_size=4)
    first = embedder.embed(paths)
    assert runner.n_images == 6 and len(fake_cache) == 6

    decoded = []
    original = images.decode_image

    def counting_decode(*args, **kwargs):
        decoded.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(images, "decode_image", counting_decode)
    # a copy under another name has the same content, hence the same key
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(Path(paths[2]).read_bytes())
    second = embedder.embed(paths + [str(copy)])
    assert decoded == [] and runner.n_images == 6
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.vector, b.vector)
    np.testing.assert_array_equal(second[-1].vector, first[2].vector)

    # the exact path has its own vectors: it must decode again
    LocalEmbedder(SPEC, cache=fake_cache, runner=runner, exact=True) \
        .embed(paths[:1])
    assert len(decoded) == 1


def test_cancel_within_a_second(tmp_path):
    sources = make_images(tmp_path, 40, size=(48, 36))
    runner = FakeRunner(delay=0.3)
    embedder = LocalEmbedder(SPEC, runner=runner, batch_size=2)
    stop_at = time.monotonic() + 0.5

    with pytest.raises(EmbeddingCancelled):
        embedder.embed(sources,
                       should_stop=lambda: time.monotonic() >= stop_at)
    assert time.monotonic() - stop_at < 1.0
    assert 0 < runner.n_images < len(sources)


def test_cancel_before_start(tmp_path):
    paths = make_images(tmp_path, 2)
    runner = FakeRunner()
    with pytest.raises(EmbeddingCancelled):
        LocalEmbedder(SPEC, runner=runner).embed(paths,
                                                 should_stop=lambda: True)
    assert runner.n_images == 0


def test_model_failure_is_an_embedding_error(tmp_path):
    def broken(batch):
        raise RuntimeError("boom")

    with pytest.raises(EmbeddingError, match="boom"):
        LocalEmbedder(SPEC, runner=broken).embed(make_images(tmp_path, 2))


def test_empty_and_server_spec():
    assert LocalEmbedder(SPEC, runner=FakeRunner()).embed([]) == []
    with pytest.raises(EmbedderUnavailable):
        LocalEmbedder("vgg16")


def test_batches_equal_single_images(tmp_path):
    paths = make_images(tmp_path, 5, size=(320, 240))
    runner = real_runner()
    batched = LocalEmbedder(SPEC, runner=runner, batch_size=4).embed(paths)
    single = LocalEmbedder(SPEC, runner=runner, batch_size=1).embed(paths)
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a.vector, b.vector, rtol=1e-4, atol=1e-3)


def _cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _fast_vs_exact(paths):
    runner = real_runner()
    fast = LocalEmbedder(SPEC, runner=runner).embed(paths)
    exact = LocalEmbedder(SPEC, runner=runner, exact=True).embed(paths)
    return [_cosine(f.vector, e.vector) for f, e in zip(fast, exact)]


def test_fast_path_close_to_exact_generated(tmp_path):
    path = tmp_path / "big.jpg"
    photo_like(1600, 1200, seed=7).save(path, quality=92)
    assert min(_fast_vs_exact([str(path)])) >= 0.99


@pytest.mark.skipif(not SEED_PHOTOS.is_dir(), reason="seed photos not present")
def test_fast_path_close_to_exact_photos(tmp_path):
    paths = sorted(str(p) for p in SEED_PHOTOS.glob("*.jpg"))
    assert paths
    # also as camera-sized files, where draft decoding scales by 1/4 or 1/8
    for path in paths[:2]:
        with Image.open(path) as im:
            big = tmp_path / Path(path).name
            im.resize((2400, 1800), Image.Resampling.BICUBIC).save(
                big, quality=90)
        paths.append(str(big))
    cosines = _fast_vs_exact(paths)
    assert min(cosines) >= 0.99, cosines


# --- a killed run keeps its finished vectors ---------------------------------

_WORKER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
    from orangecontrib.imageanalytics.embedders.local import LocalEmbedder

    cache_path, count_path, out_path, delay = sys.argv[1:5]
    sources = sys.argv[5:]

    def runner(batch):
        with open(count_path, "a") as f:
            f.write(f"{len(batch)}\\n")
        time.sleep(float(delay))
        flat = batch.reshape(len(batch), -1)[:, :227 * 227 * 3 // 1000 * 1000]
        return flat.reshape(len(batch), 1000, -1).mean(axis=2).astype("f4")

    cache = EmbeddingCache(cache_path)
    outcomes = LocalEmbedder("squeezenet", cache=cache, runner=runner,
                             batch_size=4).embed(sources)
    np.save(out_path, np.vstack([o.vector for o in outcomes]))
""")


def _run_worker(tmp_path, name, cache_path, sources, delay, wait=True):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    count = tmp_path / f"{name}.count"
    out = tmp_path / f"{name}.npy"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cache_path), str(count), str(out),
         str(delay), *sources])
    if wait:
        assert proc.wait(60) == 0
    return proc, count, out


def _n_computed(count_path: Path) -> int:
    if not count_path.exists():
        return 0
    return sum(int(line) for line in count_path.read_text().split())


def _rows(cache_path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{cache_path}?mode=ro", uri=True,
                               timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_kill_9_and_resume(tmp_path):
    sources = make_images(tmp_path / "img", 48, size=(64, 48))
    cache_path = tmp_path / "cache" / "embeddings.sqlite"
    proc, _, _ = _run_worker(tmp_path, "killed", cache_path, sources,
                                  delay=0.15, wait=False)
    deadline = time.monotonic() + 30
    while _rows(cache_path) < 8 and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    finished = _rows(cache_path)
    assert 8 <= finished < len(sources)

    _, count2, out2 = _run_worker(tmp_path, "resumed", cache_path, sources,
                                  delay=0)
    # exactly the images that were not committed are computed again
    assert _n_computed(count2) == len(sources) - finished

    _, _, clean = _run_worker(tmp_path, "clean", tmp_path / "fresh.sqlite",
                              sources, delay=0)
    np.testing.assert_array_equal(np.load(out2), np.load(clean))
