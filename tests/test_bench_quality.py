"""The quality benchmark's labelled set and scores (not its figures)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_quality.py"
_SPEC = importlib.util.spec_from_file_location("bench_quality", _PATH)
bench_quality = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_quality)


def test_set_is_built_from_packaged_pictures(tmp_path):
    pictures = bench_quality.source_pictures()
    # scikit-learn, a dependency, ships two photos
    assert len(pictures) >= 2
    paths, labels, names = bench_quality.build_set(str(tmp_path), 3, seed=0)
    assert len(names) == len(pictures) and len(paths) == 3 * len(names)
    assert np.array_equal(np.bincount(labels), [3] * len(names))
    # the same seed gives the same set
    (tmp_path / "again").mkdir()
    again, _, _ = bench_quality.build_set(str(tmp_path / "again"), 3, seed=0)
    assert all(Path(a).read_bytes() == Path(b).read_bytes()
               for a, b in zip(paths, again))


def test_augmentations_are_strong_but_keep_a_photo():
    rng = np.random.default_rng(0)
    _, picture = bench_quality.source_pictures()[0]
    views = [bench_quality.augment(picture, rng) for _ in range(4)]
    for view in views:
        assert view.mode == "RGB" and max(view.size) >= 200
    small = [np.asarray(v.resize((32, 32), Image.Resampling.BOX), float)
             for v in views]
    # no two views of the same picture are nearly the same pixels
    for i in range(len(small)):
        for j in range(i):
            assert np.abs(small[i] - small[j]).mean() > 5


def test_scores_separate_good_features_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    centres = rng.normal(0, 1, (4, 16))
    good = centres[labels] + rng.normal(0, 0.1, (40, 16))
    accuracy, _, retrieval = bench_quality.scores(good, labels, seed=0)
    assert accuracy == pytest.approx(1.0) and retrieval == 1.0
    noise = rng.normal(0, 1, (40, 16))
    accuracy, _, retrieval = bench_quality.scores(noise, labels, seed=0)
    assert accuracy < 0.6 and retrieval < 0.6
