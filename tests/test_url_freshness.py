"""An image edited at the same URL: the embedding follows the new bytes.

The embedding cache is keyed by the SHA-256 of the bytes read through the
HTTP cache (see image_sources), so it is as fresh as that cache.
"""
import io

import numpy as np
import pytest
from fakes import FakeRunner
from PIL import Image
from thumbnail_fixtures import image_server

from orangecontrib.imageanalytics import image_sources
from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
from orangecontrib.imageanalytics.image_embedder import ImageEmbedder


def jpeg(seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def runner(monkeypatch, tmp_path):
    image_sources.set_http_cache_dir(str(tmp_path / "http"))
    fake = FakeRunner()
    monkeypatch.setattr(engines, "get_runner", lambda spec, **_: fake)
    yield fake
    image_sources.set_http_cache_dir(None)


def test_edited_image_at_the_same_url_is_embedded_anew(runner, tmp_path):
    embedder = ImageEmbedder(cache=EmbeddingCache(str(tmp_path / "vectors.sqlite")))
    files = {"/a.jpg": jpeg(1)}
    with image_server(files) as base:
        url = base + "/a.jpg"
        (first,) = embedder([url])
        (again,) = embedder([url])
        np.testing.assert_array_equal(again, first)
        assert runner.n_images == 1  # unchanged: the kept vector
        files["/a.jpg"] = jpeg(2)
        (edited,) = embedder([url])
    assert runner.n_images == 2
    assert not np.allclose(edited, first)
