"""The cache folder lives at the bottom of the package."""
import os
import subprocess
import sys

from orangecontrib.imageanalytics import cache_dirs
from orangecontrib.imageanalytics.cache_dirs import CACHE_DIR_ENV, cache_folder


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "c"))
    assert cache_folder() == str(tmp_path / "c")
    monkeypatch.delenv(CACHE_DIR_ENV)
    folder = cache_folder()
    assert folder and "Orange3-ImageAnalytics" in folder


def test_old_import_path_still_works():
    from orangecontrib.imageanalytics.embedders import cache

    assert cache.cache_folder is cache_dirs.cache_folder
    assert cache.CACHE_DIR_ENV == CACHE_DIR_ENV


def test_reading_images_does_not_import_the_embedders(tmp_path):
    # a fresh interpreter: this one has imported the embedders already
    code = (
        "import os, sys\n"
        "from orangecontrib.imageanalytics import images, image_sources, thumbnails\n"
        "root = os.environ['" + CACHE_DIR_ENV + "']\n"
        "assert image_sources.http_cache_dir() == os.path.join(root, 'http')\n"
        "assert thumbnails.default_cache_folder() == os.path.join(root, 'thumbnails')\n"
        "loaded = [m for m in sys.modules\n"
        "          if m.startswith('orangecontrib.imageanalytics.embedders')]\n"
        "assert not loaded, loaded\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORANGE_IMAGEANALYTICS_HTTP_CACHE",
                        "ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE")}
    env[CACHE_DIR_ENV] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
