"""Keep the test run away from the user's caches and off the network.

Embedding, HTTP, thumbnail and weights folders go to a temporary folder for
the whole session, so tests neither read vectors or weights a user has nor
leave files behind.  Connections leave this computer for no test: see
``network_guard.py``; a test that tries fails.

Test classes are collected only from the module that defines them: a module
that imports Orange's ``WidgetTest`` would otherwise run the base class itself,
whose checks of ``self.widget`` can only skip. A widget test class without
``self.widget`` fails for the same reason; one that makes its widgets in each
test derives from ``widget_helpers.WidgetHelpersTest``.
"""
import os
import shutil
import tempfile
import unittest

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


def pytest_pycollect_makeitem(collector, name, obj):
    if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
            and isinstance(collector, pytest.Module)
            and obj.__module__ != collector.obj.__name__):
        return []  # imported, not defined here
    return None


# WidgetTest's words when its checks find no widget
_NO_WIDGET = (".widget is not set", ".widget was not set")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and call.when == "call" and isinstance(report.longrepr, tuple) \
            and any(words in report.longrepr[2] for words in _NO_WIDGET):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: WidgetTest's check found no self.widget; set it in "
            "setUp, or derive from widget_helpers.WidgetHelpersTest when the "
            "widgets are made in each test")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)
