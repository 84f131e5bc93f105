"""Keep the test run away from the user's caches and off the network.

Embedding, HTTP, thumbnail and weights folders go to a temporary folder for
the whole session, so tests neither read vectors or weights a user has nor
leave files behind.  Connections leave this computer for no test: see
``network_guard.py``; a test that tries fails.
"""
import os
import shutil
import tempfile

import pytest
from network_guard import attempts, install

_CACHE_ROOT = tempfile.mkdtemp(prefix="imageanalytics-tests-")
os.environ["ORANGE_IMAGEANALYTICS_CACHE_DIR"] = os.path.join(_CACHE_ROOT, "embeddings")
os.environ["ORANGE_IMAGEANALYTICS_HTTP_CACHE"] = os.path.join(_CACHE_ROOT, "http")
os.environ["ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE"] = os.path.join(_CACHE_ROOT, "thumbnails")
os.environ["ORANGE_EMBEDDING_WEIGHTS_DIR"] = os.path.join(_CACHE_ROOT, "weights")
# clients default to servers elsewhere; tests name theirs
os.environ.pop("ORANGE_EMBEDDING_API_URL", None)

install()


@pytest.fixture(autouse=True)
def _no_network():
    attempts.clear()
    yield
    if attempts:
        blocked = list(attempts)
        attempts.clear()
        pytest.fail(f"the test tried to reach the network: {blocked}")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)
