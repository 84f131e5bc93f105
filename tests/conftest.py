"""Keep the test run away from the user's caches.

Embedding and HTTP caches go to a temporary folder for the whole session, so
tests neither read vectors a user computed nor leave files behind.
"""
import os
import shutil
import tempfile

_CACHE_ROOT = tempfile.mkdtemp(prefix="imageanalytics-tests-")
os.environ["ORANGE_IMAGEANALYTICS_CACHE_DIR"] = os.path.join(_CACHE_ROOT, "embeddings")
os.environ["ORANGE_IMAGEANALYTICS_HTTP_CACHE"] = os.path.join(_CACHE_ROOT, "http")
os.environ["ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE"] = os.path.join(_CACHE_ROOT, "thumbnails")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)
