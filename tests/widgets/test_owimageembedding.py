"""Tests for the Image Embedding widget and its task function."""
# pylint: disable=missing-docstring,protected-access
from __future__ import annotations

import ast
import http.server
import io
import os
import re
import socket
import tempfile
import threading
import time
import unittest
from unittest import mock

import numpy as np
from AnyQt.QtCore import Qt
from AnyQt.QtGui import QTextDocument
from embedding_fixtures import (
    SKIP_REASON,
    FakeFactory,
    image_table,
    make_images,
)
from Orange.data import Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest
from PIL import Image
from widget_helpers import WidgetHelpersTest

from orangecontrib.imageanalytics.embedders import registry
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
    EmbeddingError,
    ServerUnreachable,
)
from orangecontrib.imageanalytics.embedders.registry import (
    EMBEDDERS,
    LEGACY_ORDER,
    LOCAL_COPIES,
    PUBLIC_SERVER_URL,
    embedder_keys,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.weights import WEIGHTS_DIR_ENV
from orangecontrib.imageanalytics.embedding_task import Downloaded
from orangecontrib.imageanalytics.widgets.owimageembedding import (
    OWImageEmbedding,
)
from orangecontrib.imageanalytics.widgets.utils.tooltips import TOOLTIP_WIDTH

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Node properties of Image Embedding in a workflow saved by the older add-on
# (SqueezeNet, the first image column, auto apply on), as stored in the .ows
LEGACY_PROPERTIES = (
    "{'_auto_apply': True, 'cb_embedder_current_id': 1, "
    "'cb_image_attr_current_id': 0, 'controlAreaVisible': True, "
    "'savedWidgetGeometry': None, '__version__': 1}")


class Corpus(Table):
    """Stands in for the Text add-on's Corpus: a Table subclass."""


class LocalFakeFactory(FakeFactory):
    """Fake for local embedders, the real engine for server embedders."""

    def __call__(self, model, server_url=None):
        if get_embedder(model).local:
            return super().__call__(model, server_url)
        self.calls.append((model, server_url))
        from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
        return ImageEmbedder(model=model, server_url=server_url, cache=False)


class RecordingFactory:
    """The real ImageEmbedder, noting when and how ``embed_sources`` ended."""

    def __init__(self):
        self.ended_at: float | None = None
        self.ended_with: BaseException | None = None

    def __call__(self, model, server_url=None):
        from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
        engine = ImageEmbedder(model=model, server_url=server_url)
        factory = self

        class Recorded:
            def embed_sources(self, *args, **kwargs):
                try:
                    return engine.embed_sources(*args, **kwargs)
                except BaseException as error:
                    factory.ended_with = error
                    raise
                finally:
                    factory.ended_at = time.monotonic()

        return Recorded()


def tooltip_text(tooltip: str) -> str:
    """What a (rich-text) tooltip shows, line by line."""
    document = QTextDocument()
    document.setHtml(tooltip)
    return document.toPlainText()


def refused_url() -> str:
    """Address of a port on 127.0.0.1 where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class GarbageHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with 200 and a body that is not JSON."""

    def _garbage(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<html>surprise, no JSON here</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _garbage

    def log_message(self, *_):
        pass


class GarbageServer:
    def __enter__(self) -> str:
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), GarbageHandler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *_):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class ImageFolderMixin:
    folder: str

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._tmp = tempfile.TemporaryDirectory()
        cls.folder = os.path.join(cls._tmp.name, "photos")
        make_images(cls.folder)
        # the persistent cache goes to a temporary folder, not the user's
        cls._env = mock.patch.dict(os.environ, {
            "ORANGE_IMAGEANALYTICS_CACHE_DIR":
                os.path.join(cls._tmp.name, "cache")})
        cls._env.start()

    @classmethod
    def tearDownClass(cls):
        cls._env.stop()
        cls._tmp.cleanup()
        super().tearDownClass()


# --- the widget ---------------------------------------------------------------

class TestOWImageEmbedding(ImageFolderMixin, WidgetTest):
    def setUp(self):
        self.widget = self.create_widget(OWImageEmbedding)
        self.factory = FakeFactory()
        self.widget.embedder_factory = self.factory
        self.data = image_table(self.folder)

    def tearDown(self):
        self.widget.embedder_factory = None
        super().tearDown()

    def finish(self, widget=None, timeout=20000):
        self.wait_until_finished(widget=widget, timeout=timeout)

    def test_labels_are_capitalised(self):
        combo = self.widget.embedder_box.embedder_combo
        texts = [combo.itemText(i) for i in range(combo.count())]
        self.assertIn("OpenFace (server)", texts)
        for text in texts:
            self.assertTrue(text[0].isupper(), text)
        # the key that workflows and scripts use stays
        self.assertEqual(get_embedder("openface").label, "OpenFace")

    def test_new_widget_defaults(self):
        widget = self.widget
        self.assertEqual(widget.embedder, "squeezenet")
        self.assertEqual(widget.embedder_box.embedder_combo.currentText(),
                         "SqueezeNet (local)")
        self.assertEqual(widget.embedder_box.description_label.text(),
                         EMBEDDERS["squeezenet"].description)
        self.assertFalse(widget.embedder_box.server_box.isVisibleTo(widget))
        self.assertEqual(OWImageEmbedding.Inputs.images.id, "images")
        self.assertEqual(OWImageEmbedding.Outputs.embeddings.id, "embeddings")
        self.assertTrue(OWImageEmbedding.Outputs.embeddings.default)

    def test_no_data(self):
        self.send_signal(self.widget.Inputs.images, None)
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))
        self.assertIsNone(self.get_output(self.widget.Outputs.skipped_images))
        self.assertFalse(self.widget.Error.active)
        self.assertEqual(self.widget.status_label.text(), "No data.")
        self.assertEqual(self.factory.calls, [])

    def test_no_image_column(self):
        iris = Table("iris")
        self.send_signal(self.widget.Inputs.images, iris)
        self.assertTrue(self.widget.Error.no_image_column.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))
        self.assertEqual(self.factory.calls, [])
        self.send_signal(self.widget.Inputs.images, self.data)
        self.finish()
        self.assertFalse(self.widget.Error.no_image_column.is_shown())
        self.assertIsNotNone(self.get_output(self.widget.Outputs.embeddings))
        self.send_signal(self.widget.Inputs.images, None)
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))

    def test_outputs_and_skip_reasons(self):
        widget = self.widget
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        embedded = self.get_output(widget.Outputs.embeddings)
        skipped = self.get_output(widget.Outputs.skipped_images)
        self.assertEqual(len(embedded), 4)
        self.assertEqual(len(skipped), 4)
        self.assertEqual(list(skipped.get_column(SKIP_REASON)),
                         ["not an image", "file not found", "file not found",
                          "no image path"])
        self.assertEqual(widget.status_label.text(), "4 embedded, 4 skipped")
        message = str(widget.Warning.images_skipped)
        self.assertIn("4 images", message)
        self.assertIn("2 × file not found", message)
        self.assertIn("1 × not an image", message)
        self.assertLess(message.index("file not found"),
                        message.index("not an image"))

        self.send_signal(widget.Inputs.images,
                         image_table(self.folder, bad=False))
        self.finish()
        self.assertFalse(widget.Warning.images_skipped.is_shown())
        self.assertIsNone(self.get_output(widget.Outputs.skipped_images))
        self.assertEqual(widget.status_label.text(), "4 embedded, 0 skipped")

    def test_new_data_clears_outputs_at_once(self):
        """Embeddings of the previous table are not shown for the new one
        while it is being embedded."""
        widget = self.widget
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        self.assertIsNotNone(self.get_output(widget.Outputs.embeddings))
        self.assertIsNotNone(self.get_output(widget.Outputs.skipped_images))
        self.factory.delay = 0.05
        self.send_signal(widget.Inputs.images,
                         image_table(self.folder, bad=False))
        self.assertTrue(widget.cancel_button.isEnabled())
        # what was sent so far, without waiting for the run to end
        sent = widget.signalManager.outputs
        self.assertIsNone(sent.get((widget, "Embeddings")))
        self.assertIsNone(sent.get((widget, "Skipped Images")))
        self.finish()
        self.assertEqual(len(self.get_output(widget.Outputs.embeddings)), 4)

    def test_result_of_a_changed_choice_is_not_a_fallback(self):
        """With auto apply off, a run that finishes after the user picked
        another embedder is not reported as a local fallback."""
        widget = self.widget
        widget.auto_apply = False
        self.factory.delay = 0.05
        self.send_signal(widget.Inputs.images, self.data)
        index = list(widget.embedder_box.embedder_model).index("vgg16")
        widget.embedder_box.embedder_combo.setCurrentIndex(index)
        widget.embedder_box.embedder_combo.activated.emit(index)
        self.assertEqual(widget.embedder, "vgg16")
        self.finish()
        self.assertEqual(self.factory.calls[-1][0], "squeezenet")
        self.assertFalse(widget.Information.local_this_time.is_shown())

    def test_image_column_is_context_setting(self):
        widget = self.widget
        other = StringVariable("other path")
        data = self.data.add_column(other, self.data.get_column("image"),
                                    to_metas=True)
        self.send_signal(widget.Inputs.images, data)
        self.finish()
        self.assertIs(widget.image_attr, data.domain["image"])
        self.assertEqual(list(widget.image_attr_model),
                         [data.domain["image"], data.domain["image name"],
                          other])
        widget.image_attr = other
        widget.controls.image_attr.activated.emit(2)
        self.finish()
        self.assertEqual(self.factory.calls[-1], ("squeezenet", None))
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        self.assertEqual(widget.image_attr.name, "image")
        self.send_signal(widget.Inputs.images, data)
        self.finish()
        self.assertIs(widget.image_attr, other)

    def test_every_embedder_choice(self):
        """Local embedders embed; server ones without a server offer local."""
        widget = self.widget
        factory = LocalFakeFactory()
        widget.embedder_factory = factory
        widget.own_server = True
        widget.server_url = refused_url()
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        previous_local = True
        for index, key in enumerate(embedder_keys()):
            spec = get_embedder(key)
            if key in LOCAL_COPIES:
                continue    # TestLocalCopies: their weights are not here
            with self.subTest(embedder=key):
                self.assertEqual(widget.embedder_box.embedder_model[index], key)
                n_calls = len(factory.calls)
                widget.embedder_box.embedder_combo.setCurrentIndex(index)
                widget.embedder_box.embedder_combo.activated.emit(index)
                self.assertEqual(widget.embedder, key)
                self.assertEqual(widget.embedder_box.description_label.text(),
                                 spec.description)
                self.assertEqual(widget.embedder_box.server_box.isVisibleTo(widget),
                                 not spec.local)
                # from a local embedder to a server, the images wait for
                # the user's word; from one server embedder to another on
                # the same server, they do not
                asks = not spec.local and previous_local
                previous_local = spec.local
                self.assertEqual(widget.embedder_box.confirm_box.isVisibleTo(widget), asks)
                if asks:
                    self.finish()
                    self.assertEqual(len(factory.calls), n_calls)
                    widget.embedder_box.send_button.click()
                self.finish(timeout=60000)
                self.assertEqual(factory.calls[-1][0], key)
                embedded = self.get_output(widget.Outputs.embeddings)
                if spec.local:
                    self.assertEqual(len(embedded), 4)
                    self.assertFalse(widget.Error.active)
                    self.assertFalse(
                        widget.fallback_button.isVisibleTo(widget))
                    continue
                self.assertIsNone(embedded)
                self.assertTrue(widget.Error.server_unreachable.is_shown())
                self.assertIn(widget.server_url,
                              str(widget.Error.server_unreachable))
                self.assertTrue(widget.fallback_button.isVisibleTo(widget))
                widget.fallback_button.click()
                self.finish()
                self.assertEqual(factory.calls[-1][0], "squeezenet")
                self.assertEqual(
                    len(self.get_output(widget.Outputs.embeddings)), 4)
                self.assertFalse(widget.Error.server_unreachable.is_shown())
                self.assertTrue(widget.Information.local_this_time.is_shown())
                # the user's choice is unchanged and is what gets saved
                self.assertEqual(widget.embedder, key)
                self.assertEqual(
                    widget.settingsHandler.pack_data(widget)["embedder"], key)

    def test_server_down(self):
        widget = self.widget
        url = refused_url()
        widget.embedder_factory = None
        widget.own_server = True
        widget.server_url = url
        widget.embedder = "inception-v3"
        self.send_signal(widget.Inputs.images,
                         image_table(self.folder, bad=False))
        self.finish(timeout=60000)
        self.assertTrue(widget.Error.server_unreachable.is_shown())
        self.assertIn(url, str(widget.Error.server_unreachable))
        self.assertFalse(widget.Error.failed.is_shown())
        self.assertIsNone(self.get_output(widget.Outputs.embeddings))
        self.assertTrue(widget.fallback_button.isVisibleTo(widget))
        self.assertEqual(widget.embedder, "inception-v3")

    def test_server_answers_garbage(self):
        widget = self.widget
        widget.embedder_factory = None
        widget.embedder = "vgg16"
        with GarbageServer() as url:
            widget.own_server = True
            widget.server_url = url
            self.send_signal(widget.Inputs.images,
                             image_table(self.folder, bad=False))
            self.finish(timeout=60000)
        # garbage is the server's fault, not an unexpected error in the
        # widget: either the server is reported as unusable, or every image
        # is skipped with a reason
        self.assertFalse(widget.Error.failed.is_shown())
        self.assertIsNone(self.get_output(widget.Outputs.embeddings))
        self.assertTrue(widget.fallback_button.isVisibleTo(widget))
        if not widget.Error.server_unreachable.is_shown() \
                and not widget.Error.server_failed.is_shown():
            skipped = self.get_output(widget.Outputs.skipped_images)
            self.assertEqual(len(skipped), 4)
            self.assertTrue(all(skipped.get_column(SKIP_REASON)))
            self.assertTrue(widget.Warning.images_skipped.is_shown())

    def test_cancel(self):
        widget = self.widget
        self.factory.delay = 0.02
        data = Table.concatenate([self.data] * 40)
        self.send_signal(widget.Inputs.images, data)
        deadline = time.monotonic() + 10
        while widget.progressBarValue < 5 and time.monotonic() < deadline:
            self.process_events()
        self.assertTrue(widget.cancel_button.isEnabled())
        cancelled_at = time.monotonic()
        widget.cancel_button.click()
        self.assertFalse(widget.cancel_button.isEnabled())
        self.assertTrue(widget.Information.cancelled.is_shown())
        self.assertIsNone(self.get_output(widget.Outputs.embeddings))
        while self.factory.stopped_at is None \
                and time.monotonic() < cancelled_at + 5:
            time.sleep(0.01)
        self.assertIsNotNone(self.factory.stopped_at)
        self.assertLess(self.factory.stopped_at - cancelled_at, 1)
        self.assertFalse(widget.Error.active)
        # the widget can embed again after a cancel
        self.factory.delay = 0
        widget.commit.now()
        self.finish()
        self.assertEqual(len(self.get_output(widget.Outputs.embeddings)),
                         160)
        self.assertFalse(widget.Information.cancelled.is_shown())

    def test_cancel_real_engine(self):
        """The real local engine stops within a second of Cancel."""
        folder = os.path.join(self._tmp.name, "many")
        os.makedirs(folder)
        rng = np.random.default_rng(42)
        for i in range(200):
            pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))
        image = StringVariable("image")
        image.attributes.update(type="image", origin=folder)
        data = Table.from_numpy(
            Domain([], metas=[image]), np.empty((200, 0)),
            metas=np.array([[f"{i}.png"] for i in range(200)], dtype=object))
        factory = RecordingFactory()
        widget = self.widget
        widget.embedder_factory = factory
        self.send_signal(widget.Inputs.images, data)
        deadline = time.monotonic() + 60
        while widget.progressBarValue < 5 and time.monotonic() < deadline:
            self.process_events()
        self.assertGreater(widget.progressBarValue, 0)
        cancelled_at = time.monotonic()
        widget.cancel_button.click()
        while factory.ended_at is None \
                and time.monotonic() < cancelled_at + 5:
            time.sleep(0.01)
        self.assertIsInstance(factory.ended_with, EmbeddingCancelled)
        self.assertLess(factory.ended_at - cancelled_at, 1)
        self.assertTrue(widget.Information.cancelled.is_shown())
        self.assertIsNone(self.get_output(widget.Outputs.embeddings))

    def test_unexpected_error(self):
        self.factory.error = RuntimeError("disk on fire")
        self.send_signal(self.widget.Inputs.images, self.data)
        self.finish()
        self.assertTrue(self.widget.Error.failed.is_shown())
        self.assertIn("RuntimeError: disk on fire",
                      str(self.widget.Error.failed))
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))
        self.factory.error = None
        self.widget.commit.now()
        self.finish()
        self.assertFalse(self.widget.Error.failed.is_shown())

    def test_server_error_offers_local(self):
        widget = self.widget
        self.factory.error = EmbeddingError("the server refused the API key")
        widget.embedder = "deeploc"
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        self.assertIn("refused the API key", str(widget.Error.server_failed))
        self.assertFalse(widget.Error.failed.is_shown())
        self.assertTrue(widget.fallback_button.isVisibleTo(widget))
        widget.fallback_button.click()
        self.finish()
        self.assertEqual(self.factory.calls[-1], ("squeezenet", None))
        self.assertFalse(widget.Error.server_failed.is_shown())

    def test_local_engine_error_is_not_a_server_error(self):
        self.factory.error = EmbeddingError("model file damaged")
        self.send_signal(self.widget.Inputs.images, self.data)
        self.finish()
        self.assertIn("model file damaged", str(self.widget.Error.failed))
        self.assertFalse(self.widget.fallback_button.isVisibleTo(self.widget))

    def test_embedder_unavailable(self):
        self.factory.error = EmbedderUnavailable(
            "weights file vgg16-397923af.pth is missing")
        self.send_signal(self.widget.Inputs.images, self.data)
        self.finish()
        self.assertIn("vgg16-397923af.pth",
                      str(self.widget.Error.embedder_unavailable))
        self.assertFalse(self.widget.Error.failed.is_shown())

    def test_server_unreachable_from_engine(self):
        widget = self.widget
        self.factory.error = ServerUnreachable("connection refused")
        widget.embedder = "painters"
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        self.assertIn("connection refused",
                      str(widget.Error.server_unreachable))
        self.factory.error = None
        widget.fallback_button.click()
        self.finish()
        self.assertEqual(self.factory.calls[-1], ("squeezenet", None))
        self.assertEqual(widget.embedder, "painters")
        self.assertFalse(widget.fallback_button.isVisibleTo(widget))
        # the next regular run uses the chosen embedder again
        widget.commit.now()
        self.finish()
        self.assertEqual(self.factory.calls[-1][0], "painters")
        self.assertFalse(widget.Information.local_this_time.is_shown())

    def test_server_address(self):
        widget = self.widget
        widget.own_server = True
        with mock.patch.dict(os.environ,
                             {"ORANGE_EMBEDDING_API_URL": "http://env:9"}):
            widget.server_url = ""
            self.assertEqual(widget.effective_server_url(), "http://env:9")
            widget.server_url = " http://mine:1 "
            self.assertEqual(widget.effective_server_url(), "http://mine:1")
        with mock.patch.dict(os.environ, {"ORANGE_EMBEDDING_API_URL": ""}):
            widget.server_url = ""
            self.assertEqual(widget.effective_server_url(),
                             "http://127.0.0.1:8000")
        widget.server_url = "http://mine:1"
        combo = widget.embedder_box.embedder_combo
        combo.setCurrentIndex(
            widget.embedder_box.embedder_model.indexOf("inception-v3"))
        combo.activated.emit(combo.currentIndex())
        self.assertTrue(widget.embedder_box.server_box.isVisibleTo(widget))
        self.assertIn("http://mine:1", widget.embedder_box.server_note.text())
        self.assertIn("keeps no copy", widget.embedder_box.server_note.text())
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        self.assertEqual(self.factory.calls, [])
        widget.embedder_box.send_button.click()
        self.finish()
        self.assertEqual(self.factory.calls[-1],
                         ("inception-v3", "http://mine:1"))

    def test_unknown_saved_embedder(self):
        widget = self.create_widget(OWImageEmbedding,
                                    stored_settings={"embedder": "alexnet"})
        self.assertEqual(widget.embedder, "squeezenet")
        self.assertTrue(widget.Warning.unknown_embedder.is_shown())
        self.assertIn("alexnet", str(widget.Warning.unknown_embedder))

    def report(self):
        """The items and the paragraphs of the widget's report."""
        self.widget.report_html = ""
        self.widget.send_report()
        html = self.widget.report_html
        items = dict(re.findall(r"<b>(.*?):</b> (.*?)</br>", html))
        return items, html

    def test_report(self):
        widget = self.widget
        self.send_signal(widget.Inputs.images, self.data)
        self.finish()
        items, html = self.report()
        self.assertEqual(items, {"Embedder": "SqueezeNet (local)",
                                 "Image column": "image"})
        self.assertRegex(html, r"Result.*4 embedded, 4 skipped")
        # a server embedder: where the images went
        widget.embedder = "vgg19"
        items, _ = self.report()
        self.assertEqual(items, {"Embedder": "VGG-19 (server)",
                                 "Server": PUBLIC_SERVER_URL,
                                 "Image column": "image"})
        widget.own_server, widget.server_url = True, "http://gpu.lab:8000"
        self.assertEqual(self.report()[0]["Server"], "http://gpu.lab:8000")
        # no data: no column
        self.send_signal(widget.Inputs.images, None)
        items, html = self.report()
        self.assertNotIn("Image column", items)
        self.assertRegex(html, r"Result.*No data\.")

    def test_corpus_like_subclass_real_squeezenet(self):
        """End to end through the real local engine: SqueezeNet."""
        widget = self.widget
        widget.embedder_factory = None
        data = image_table(self.folder, Corpus)
        self.send_signal(widget.Inputs.images, data)
        self.finish(timeout=120000)
        self.assertFalse(widget.Error.active, str(widget.Error.active))
        embedded = self.get_output(widget.Outputs.embeddings)
        skipped = self.get_output(widget.Outputs.skipped_images)
        self.assertIsInstance(embedded, Corpus)
        self.assertIsInstance(skipped, Corpus)
        self.assertEqual(len(embedded), 4)
        self.assertEqual(len(skipped), 4)
        dimension = EMBEDDERS["squeezenet"].dimension
        features = embedded.domain.attributes
        self.assertEqual([v.name for v in features],
                         [f"n{i}" for i in range(dimension)])
        self.assertTrue(all(v.attributes.get("hidden") for v in features))
        self.assertEqual(embedded.domain.class_var, data.domain.class_var)
        self.assertEqual(embedded.domain.metas, data.domain.metas)
        np.testing.assert_array_equal(embedded.ids, data.ids[:4])
        self.assertTrue(np.all(np.isfinite(embedded.X)))
        # different photos, different vectors
        self.assertFalse(np.allclose(embedded.X[0], embedded.X[2]))
        reasons = skipped.get_column(SKIP_REASON)
        self.assertTrue(all(reasons))
        self.assertEqual(list(skipped.get_column("image")),
                         ["cats/broken.jpg", "cats/missing.jpg",
                          "city/gone.png", ""])
        self.assertTrue(widget.Warning.images_skipped.is_shown())
        self.assertEqual(widget.status_label.text(), "4 embedded, 4 skipped")


class TestServerChoice(ImageFolderMixin, WidgetTest):
    """Where the images of server embedders go."""

    def setUp(self):
        self.widget = self.create_widget(OWImageEmbedding)
        self.factory = FakeFactory()
        self.widget.embedder_factory = self.factory

    def choose(self, key):
        widget = self.widget
        index = widget.embedder_box.embedder_model.indexOf(key)
        widget.embedder_box.embedder_combo.setCurrentIndex(index)
        widget.embedder_box.embedder_combo.activated.emit(index)

    def test_public_server_by_default_and_labelled(self):
        widget = self.widget
        self.assertFalse(widget.own_server)
        self.choose("inception-v3")
        self.assertTrue(widget.embedder_box.server_box.isVisibleTo(widget))
        self.assertEqual(widget.effective_server_url(), PUBLIC_SERVER_URL)
        note = widget.embedder_box.server_note.text()
        for words in ("leave this computer", "internet", PUBLIC_SERVER_URL,
                      "(local)"):
            self.assertIn(words, note)
        # no promise about what a server run by others keeps
        self.assertNotIn("store", note)
        buttons = widget.embedder_box.server_choice.buttons
        self.assertIn("api.garaza.io", buttons[0].text())
        self.assertTrue(buttons[0].isChecked())
        self.assertFalse(widget.embedder_box.server_edit.isEnabled())
        # the fake engine stands in for the client: nothing leaves (and the
        # test session's network guard would fail this test if it did)
        self.send_signal(widget.Inputs.images, image_table(self.folder))
        self.wait_until_finished()
        self.assertEqual(self.factory.calls, [])
        widget.embedder_box.send_button.click()
        self.wait_until_finished()
        self.assertEqual(self.factory.calls[-1],
                         ("inception-v3", PUBLIC_SERVER_URL))
        self.assertIsNotNone(self.get_output(widget.Outputs.embeddings))
        widget.send_report()

    def test_environment_names_the_public_server(self):
        with mock.patch.dict(os.environ,
                             {"ORANGE_EMBEDDING_API_URL": "http://env:9"}):
            self.assertEqual(self.widget.effective_server_url(),
                             "http://env:9")
            self.choose("vgg16")
            self.assertNotIn("leave this computer",
                             self.widget.embedder_box.server_note.text())
            self.assertIn("http://env:9", self.widget.embedder_box.server_note.text())

    def test_own_server_is_used_and_saved(self):
        widget = self.widget
        self.choose("vgg19")
        widget.embedder_box.server_choice.buttons[1].click()
        self.assertTrue(widget.own_server)
        self.assertTrue(widget.embedder_box.server_edit.isEnabled())
        # typed by the user, then Enter
        from AnyQt.QtCore import Qt
        from AnyQt.QtTest import QTest
        QTest.keyClicks(widget.embedder_box.server_edit, "http://gpu.lab:8000")
        QTest.keyClick(widget.embedder_box.server_edit, Qt.Key_Return)
        self.assertIn("http://gpu.lab:8000", widget.embedder_box.server_note.text())
        self.assertNotIn("internet", widget.embedder_box.server_note.text())
        self.send_signal(widget.Inputs.images, image_table(self.folder))
        self.wait_until_finished()
        self.assertEqual(self.factory.calls, [])
        self.assertEqual(widget.embedder_box.send_button.text(),
                         "Send 7 images to gpu.lab:8000")
        widget.embedder_box.send_button.click()
        self.wait_until_finished()
        self.assertEqual(self.factory.calls[-1],
                         ("vgg19", "http://gpu.lab:8000"))
        packed = widget.settingsHandler.pack_data(widget)
        self.assertTrue(packed["own_server"])
        self.assertEqual(packed["server_url"], "http://gpu.lab:8000")
        again = self.create_widget(OWImageEmbedding, stored_settings=packed)
        self.assertEqual(again.effective_server_url(), "http://gpu.lab:8000")
        self.assertEqual(again.embedder, "vgg19")
        # back to the public server
        widget.embedder_box.server_choice.buttons[0].click()
        self.assertEqual(widget.effective_server_url(), PUBLIC_SERVER_URL)


class TestSendConfirmation(ImageFolderMixin, WidgetTest):
    """Images wait for the user's word before they go to a server the user
    picked; saved workflows run as they were saved."""

    def setUp(self):
        self.widget = self.create_widget(OWImageEmbedding)
        self.factory = FakeFactory()
        self.widget.embedder_factory = self.factory
        self.data = image_table(self.folder)

    def choose(self, key, widget=None):
        widget = widget or self.widget
        index = widget.embedder_box.embedder_model.indexOf(key)
        widget.embedder_box.embedder_combo.setCurrentIndex(index)
        widget.embedder_box.embedder_combo.activated.emit(index)

    def server_calls(self):
        return [call for call in self.factory.calls
                if not get_embedder(call[0]).local]

    def test_nothing_leaves_before_the_user_confirms(self):
        widget = self.widget
        self.send_signal(widget.Inputs.images, self.data)
        self.wait_until_finished()
        self.assertFalse(widget.embedder_box.confirm_box.isVisibleTo(widget))
        self.choose("inception-v3")
        self.wait_until_finished()
        self.assertEqual(self.server_calls(), [])
        self.assertTrue(widget.embedder_box.confirm_box.isVisibleTo(widget))
        # 7 of the 8 rows name an image
        self.assertEqual(widget.embedder_box.send_button.text(),
                         "Send 7 images to api.garaza.io")
        self.assertEqual(widget.embedder_box.keep_button.text(),
                         "Keep them here: use SqueezeNet (local)")
        self.assertIn("Nothing is sent", widget.embedder_box.confirm_note.text())
        # the outputs of the previous embedder are withdrawn meanwhile
        self.assertIsNone(self.get_output(widget.Outputs.embeddings))
        self.assertIn("Waiting", widget.status_label.text())
        # new data waits too
        self.send_signal(widget.Inputs.images,
                         image_table(self.folder, bad=False))
        self.wait_until_finished()
        self.assertEqual(self.server_calls(), [])
        self.assertEqual(widget.embedder_box.send_button.text(),
                         "Send 4 images to api.garaza.io")

        widget.embedder_box.send_button.click()
        self.wait_until_finished()
        self.assertEqual(self.server_calls(),
                         [("inception-v3", PUBLIC_SERVER_URL)])
        self.assertFalse(widget.embedder_box.confirm_box.isVisibleTo(widget))
        self.assertEqual(len(self.get_output(widget.Outputs.embeddings)), 4)
        # once confirmed: new data and other embedders on the same server go
        self.send_signal(widget.Inputs.images, self.data)
        self.choose("painters")
        self.wait_until_finished()
        self.assertEqual(self.server_calls()[-2:],
                         [("inception-v3", PUBLIC_SERVER_URL),
                          ("painters", PUBLIC_SERVER_URL)])
        self.assertFalse(widget.embedder_box.confirm_box.isVisibleTo(widget))
        # a local embedder, then a server one again: asked again
        self.choose("squeezenet")
        self.choose("vgg16")
        self.wait_until_finished()
        self.assertEqual(self.server_calls()[-1][0], "painters")
        self.assertTrue(widget.embedder_box.confirm_box.isVisibleTo(widget))

    def test_keep_them_here(self):
        widget = self.widget
        self.send_signal(widget.Inputs.images, self.data)
        self.wait_until_finished()
        self.choose("vgg19")
        widget.embedder_box.keep_button.click()
        self.wait_until_finished()
        self.assertEqual(widget.embedder, "squeezenet")
        self.assertEqual(widget.embedder_box.embedder_combo.currentText(),
                         "SqueezeNet (local)")
        self.assertFalse(widget.embedder_box.confirm_box.isVisibleTo(widget))
        self.assertEqual(self.server_calls(), [])
        self.assertEqual(self.factory.calls[-1], ("squeezenet", None))
        self.assertEqual(len(self.get_output(widget.Outputs.embeddings)), 4)
        packed = widget.settingsHandler.pack_data(widget)
        self.assertEqual(packed["embedder"], "squeezenet")

    def test_another_server_asks_again(self):
        widget = self.widget
        self.send_signal(widget.Inputs.images, self.data)
        self.choose("vgg16")
        widget.embedder_box.send_button.click()
        self.wait_until_finished()
        self.assertEqual(self.server_calls(), [("vgg16", PUBLIC_SERVER_URL)])
        widget.embedder_box.server_choice.buttons[1].click()
        self.wait_until_finished()
        self.assertTrue(widget.embedder_box.confirm_box.isVisibleTo(widget))
        self.assertEqual(widget.embedder_box.send_button.text(),
                         "Send 7 images to 127.0.0.1:8000")
        self.assertEqual(len(self.server_calls()), 1)
        # back to the server the user agreed to: no question
        widget.embedder_box.server_choice.buttons[0].click()
        self.wait_until_finished()
        self.assertFalse(widget.embedder_box.confirm_box.isVisibleTo(widget))
        self.assertEqual(self.server_calls()[-1], ("vgg16", PUBLIC_SERVER_URL))
        self.assertEqual(len(self.server_calls()), 2)

    def test_without_auto_apply_apply_does_not_send(self):
        widget = self.widget
        widget.auto_apply = False
        self.send_signal(widget.Inputs.images, self.data)
        self.wait_until_finished()
        self.choose("deeploc")
        self.assertTrue(widget.embedder_box.confirm_box.isVisibleTo(widget))
        widget.commit.now()
        self.wait_until_finished()
        self.assertEqual(self.server_calls(), [])
        widget.embedder_box.send_button.click()
        self.wait_until_finished()
        self.assertEqual(self.server_calls(), [("deeploc", PUBLIC_SERVER_URL)])

    def test_saved_workflows_run_as_saved(self):
        settings = ({"embedder": "vgg16", "__version__": 3},
                    # the older add-on: Inception v3 on Orange's server
                    {"cb_embedder_current_id": 0, "_auto_apply": True,
                     "cb_image_attr_current_id": 0, "__version__": 1})
        for stored, key in zip(settings, ("vgg16", "inception-v3")):
            with self.subTest(embedder=key):
                widget = self.create_widget(OWImageEmbedding,
                                            stored_settings=stored)
                widget.embedder_factory = self.factory
                self.assertFalse(widget.embedder_box.confirm_box.isVisibleTo(widget))
                self.send_signal(widget.Inputs.images, self.data,
                                 widget=widget)
                self.wait_until_finished(widget=widget)
                self.assertEqual(self.factory.calls[-1],
                                 (key, PUBLIC_SERVER_URL))
                self.assertIsNotNone(
                    self.get_output(widget.Outputs.embeddings, widget=widget))


class TestWholeMessages(ImageFolderMixin, WidgetTest):
    """Messages are shown whole in the widget; tooltips wrap."""

    def setUp(self):
        self.widget = self.create_widget(OWImageEmbedding)
        self.factory = FakeFactory()
        self.widget.embedder_factory = self.factory

    def assert_wrapped(self, tooltip, text):
        """The tooltip shows all of ``text`` in lines a screen holds."""
        shown = tooltip_text(tooltip)
        self.assertEqual(shown.split(), text.split())
        self.assertLessEqual(max(map(len, shown.splitlines())),
                             TOOLTIP_WIDTH)

    def test_server_failure_shown_whole(self):
        widget = self.widget
        self.factory.error = EmbeddingError(
            "The server answered 503 Service Unavailable for every image. "
            "It may be restarting or overloaded; try again in a minute, or "
            "ask the people who run it.")
        widget.embedder = "deeploc"
        self.send_signal(widget.Inputs.images,
                         image_table(self.folder, bad=False))
        self.wait_until_finished()
        message = str(widget.Error.server_failed)
        # the status bar shows only the first of its lines
        first, rest = message.split("\n", 1)
        self.assertIn("Embed locally this time", rest)
        label = widget.message_label
        self.assertTrue(label.isVisibleTo(widget))
        self.assertTrue(label.wordWrap())
        self.assertEqual(label.text(), message)
        self.assert_wrapped(widget.message_bar.toolTip(), message)
        # the widget stays narrower than the message is long
        self.assertLess(label.sizeHint().width(),
                        label.fontMetrics().horizontalAdvance(first))
        # gone with the error
        self.factory.error = None
        widget.commit.now()
        self.wait_until_finished()
        self.assertFalse(label.isVisibleTo(widget))

    def test_tooltips_wrap(self):
        widget = self.widget
        model = widget.embedder_box.embedder_model
        for row, key in enumerate(model):
            tooltip = model.data(model.index(row), Qt.ToolTipRole)
            self.assert_wrapped(tooltip, get_embedder(key).description)
        self.assert_wrapped(widget.fallback_button.toolTip(),
                            "Embed with SqueezeNet (local) once, keeping the "
                            "chosen embedder for later runs")


class TestLocalCopies(ImageFolderMixin, WidgetTest):
    """Inception v3 / VGG on this computer: offered, downloaded, saved."""

    PAYLOAD = np.random.default_rng(5).bytes(1_000_000)

    def setUp(self):
        self.widget = self.create_widget(OWImageEmbedding)
        self.factory = FakeFactory()
        self.widget.embedder_factory = self.factory
        self.weights = tempfile.TemporaryDirectory()
        self.env = mock.patch.dict(os.environ,
                                   {WEIGHTS_DIR_ENV: self.weights.name})
        self.env.start()

    def tearDown(self):
        self.env.stop()
        self.weights.cleanup()
        super().tearDown()

    def choose(self, key):
        widget = self.widget
        index = widget.embedder_box.embedder_model.indexOf(key)
        widget.embedder_box.embedder_combo.setCurrentIndex(index)
        widget.embedder_box.embedder_combo.activated.emit(index)

    def served(self, url):
        """VGG16's local copy with its weights at ``url``, hashed as
        PAYLOAD."""
        import dataclasses
        import hashlib
        spec = LOCAL_COPIES["vgg16-local"]
        patched = dataclasses.replace(spec, weights=dataclasses.replace(
            spec.weights, url=url,
            sha256=hashlib.sha256(self.PAYLOAD).hexdigest()))
        return mock.patch.dict(registry.LOCAL_COPIES,
                               {"vgg16-local": patched})

    def test_local_copies_are_offered_beside_the_server_models(self):
        texts = [self.widget.embedder_box.embedder_combo.itemText(i)
                 for i in range(self.widget.embedder_box.embedder_combo.count())]
        for label in ("Inception v3", "VGG-16", "VGG-19"):
            server = texts.index(f"{label} (server)")
            self.assertEqual(texts[server + 1], f"{label} (local)")

    def test_missing_weights_ask_for_a_download(self):
        widget = self.widget
        self.send_signal(widget.Inputs.images, image_table(self.folder))
        self.wait_until_finished()
        self.choose("inception-v3-local")
        self.assertEqual(widget.embedder, "inception-v3-local")
        self.assertFalse(widget.embedder_box.server_box.isVisibleTo(widget))
        self.assertTrue(widget.embedder_box.download_box.isVisibleTo(widget))
        self.assertIn(self.weights.name, widget.embedder_box.download_button.toolTip())
        self.assertIn("download.pytorch.org", widget.embedder_box.download_note.text())
        self.assertTrue(widget.Error.weights_missing.is_shown())
        self.assertIn("inception_v3_google-0cc3c7bd.pth",
                      str(widget.Error.weights_missing))
        self.assertIsNone(self.get_output(widget.Outputs.embeddings))
        self.assertEqual(self.factory.calls[-1][0], "squeezenet")
        # a present file: no download offered, the local model runs
        open(os.path.join(self.weights.name,
                          "inception_v3_google-0cc3c7bd.pth"), "wb").close()
        widget.commit.now()
        self.wait_until_finished()
        self.assertFalse(widget.embedder_box.download_box.isVisibleTo(widget))
        self.assertFalse(widget.Error.weights_missing.is_shown())
        self.assertEqual(self.factory.calls[-1],
                         ("inception-v3-local", None))

    def test_download_then_embed(self):
        from file_server import serve_file
        widget = self.widget
        with serve_file(self.PAYLOAD) as (url, handler), \
                self.served(f"{url}/w.pth"):
            handler.drop_after, handler.drops = 100_000, 10
            self.send_signal(widget.Inputs.images, image_table(self.folder))
            self.wait_until_finished()
            self.choose("vgg16-local")
            self.assertTrue(widget.Error.weights_missing.is_shown())
            # the transfer keeps breaking off: a message, the part is kept
            widget.embedder_box.download_button.click()
            self.assertFalse(widget.embedder_box.download_button.isEnabled())
            self.wait_until_finished(timeout=20000)
            self.assertTrue(widget.Error.download_failed.is_shown())
            self.assertIn("download again to resume",
                          str(widget.Error.download_failed))
            self.assertTrue(widget.embedder_box.download_button.isEnabled())
            # the next try resumes and, once checked, embeds
            handler.drops = 0
            widget.embedder_box.download_button.click()
            self.wait_until_finished(timeout=20000)
            self.assertEqual(handler.ranges[-1], "bytes=400000-")
        path = os.path.join(self.weights.name, "vgg16-397923af.pth")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), self.PAYLOAD)
        # the embedding starts once the download's handler has returned
        self.process_events(until=lambda: self.factory.calls[-1][0]
                            == "vgg16-local", timeout=5000)
        self.wait_until_finished()
        self.assertFalse(widget.Error.active)
        self.assertFalse(widget.embedder_box.download_box.isVisibleTo(widget))
        self.assertEqual(self.factory.calls[-1], ("vgg16-local", None))
        self.assertIsNotNone(self.get_output(widget.Outputs.embeddings))

    def test_download_not_found(self):
        from file_server import serve_file
        widget = self.widget
        with serve_file(self.PAYLOAD) as (url, _), \
                self.served(f"{url}/gone.pth"):
            self.choose("vgg16-local")
            widget.download_weights()
            self.wait_until_finished(timeout=20000)
        self.assertTrue(widget.Error.download_failed.is_shown())
        self.assertIn("HTTP 404", str(widget.Error.download_failed))
        self.assertEqual(os.listdir(self.weights.name), [])

    def test_cancel_download(self):
        widget = self.widget
        release = threading.Event()

        def slow(key, state):
            release.wait(10)
            if state.is_interruption_requested():
                from orangecontrib.imageanalytics.embedders.download import (
                    DownloadCancelled,
                )
                raise DownloadCancelled("stopped")
            return Downloaded(key, "")

        self.choose("vgg19-local")
        with mock.patch("orangecontrib.imageanalytics.widgets."
                        "owimageembedding.download", slow):
            widget.download_weights()
            self.assertTrue(widget.cancel_button.isEnabled())
            widget.cancel_button.click()
            release.set()
        self.assertTrue(widget.Information.download_stopped.is_shown())
        self.assertTrue(widget.embedder_box.download_button.isEnabled())
        self.assertFalse(widget.cancel_button.isEnabled())

    def test_download_button_says_how_large(self):
        widget = self.widget
        for key, size in (("inception-v3-local", "109 MB"),
                          ("vgg16-local", "553 MB"),
                          ("vgg19-local", "575 MB")):
            self.choose(key)
            self.assertTrue(widget.embedder_box.download_box.isVisibleTo(widget))
            self.assertEqual(widget.embedder_box.download_button.text(),
                             f"Download ({size})")
        # a file whose size the registry does not know: no figure
        import dataclasses
        spec = LOCAL_COPIES["vgg16-local"]
        patched = dataclasses.replace(
            spec, weights=dataclasses.replace(spec.weights, size=None))
        with mock.patch.dict(registry.LOCAL_COPIES, {spec.key: patched}):
            self.choose("vgg16-local")
            self.assertEqual(widget.embedder_box.download_button.text(), "Download")

    def test_every_download_has_a_size(self):
        for spec in LOCAL_COPIES.values():
            with self.subTest(embedder=spec.key):
                self.assertGreater(spec.weights.size, 10**6)

    def test_failed_download_shown_whole_and_wrapped(self):
        from orangecontrib.imageanalytics.embedders.download import (
            DownloadError,
        )
        message = (
            "Cannot download https://download.pytorch.org/models/"
            "vgg16-397923af.pth: the name of the server cannot be looked up "
            "([Errno -2] Name or service not known). Check the internet "
            "connection, then press Download again to resume; or download "
            "the file yourself and save it as "
            f"{os.path.join(self.weights.name, 'vgg16-397923af.pth')}.")

        def fail(key, state):
            raise DownloadError(message)

        widget = self.widget
        self.choose("vgg16-local")
        with mock.patch("orangecontrib.imageanalytics.widgets."
                        "owimageembedding.download", fail):
            widget.embedder_box.download_button.click()
            self.wait_until_finished()
        self.assertEqual(str(widget.Error.download_failed), message)
        self.assertIn(message, widget.message_label.text())
        self.assertTrue(widget.message_label.wordWrap())
        shown = tooltip_text(widget.message_bar.toolTip())
        self.assertLessEqual(max(map(len, shown.splitlines())), TOOLTIP_WIDTH)
        self.assertIn("Name or service not known", " ".join(shown.split()))
        self.assertEqual("".join(shown.split()),
                         "".join(widget.message_label.text().split()))

    def test_download_tooltip_wraps(self):
        # the button's tooltip names the folder, which may be long
        folder = os.path.join(self.weights.name, *["a folder"] * 12)
        with mock.patch.dict(os.environ, {WEIGHTS_DIR_ENV: folder}):
            self.choose("vgg19-local")
            shown = tooltip_text(
                self.widget.embedder_box.download_button.toolTip())
        self.assertLessEqual(max(map(len, shown.splitlines())), TOOLTIP_WIDTH)
        self.assertEqual(" ".join(shown.split()),
                         f"Download vgg19-dcbb9e9d.pth into {folder}")

    def test_choice_is_saved(self):
        widget = self.widget
        self.choose("vgg19-local")
        packed = widget.settingsHandler.pack_data(widget)
        self.assertEqual(packed["embedder"], "vgg19-local")
        again = self.create_widget(OWImageEmbedding, stored_settings=packed)
        self.assertEqual(again.embedder, "vgg19-local")
        self.assertEqual(again.embedder_box.embedder_combo.currentText(), "VGG-19 (local)")
        self.assertFalse(again.Warning.unknown_embedder.is_shown())


class TestMigration(ImageFolderMixin, WidgetHelpersTest):
    def test_each_old_embedder_index(self):
        for index, key in enumerate(LEGACY_ORDER):
            with self.subTest(index=index):
                widget = self.create_widget(
                    OWImageEmbedding, stored_settings={
                        "_auto_apply": False,
                        "cb_embedder_current_id": index,
                        "cb_image_attr_current_id": 0,
                        "__version__": 1})
                self.assertEqual(widget.embedder, key)
                self.assertEqual(widget.embedder_box.embedder_combo.currentText(),
                                 EMBEDDERS[key].display_name)
                self.assertFalse(widget.auto_apply)
                self.assertFalse(widget.Warning.unknown_embedder.is_shown())
                packed = widget.settingsHandler.pack_data(widget)
                self.assertEqual(packed["embedder"], key)
                self.assertEqual(packed["__version__"], 3)
                # as the older add-on: server models on Orange's server
                self.assertFalse(packed["own_server"])
                self.assertNotIn("cb_embedder_current_id", packed)
        self.assertLessEqual(set(LEGACY_ORDER), set(EMBEDDERS))

    def test_out_of_range_index(self):
        widget = self.create_widget(
            OWImageEmbedding,
            stored_settings={"cb_embedder_current_id": 42, "__version__": 1})
        self.assertEqual(widget.embedder, "squeezenet")

    def test_old_workflow_properties(self):
        """The settings an old workflow stores: SqueezeNet, first column."""
        settings = ast.literal_eval(LEGACY_PROPERTIES)
        widget = self.create_widget(OWImageEmbedding,
                                    stored_settings=settings)
        widget.embedder_factory = FakeFactory()
        self.assertEqual(widget.embedder, "squeezenet")
        self.assertTrue(widget.auto_apply)
        data = image_table(self.folder)
        self.send_signal(widget.Inputs.images, data, widget=widget)
        self.wait_until_finished(widget=widget)
        self.assertIs(widget.image_attr, data.domain["image"])
        self.assertEqual(len(self.get_output(widget.Outputs.embeddings,
                                             widget=widget)), 4)

    def test_image_column_index_resolved_on_first_data(self):
        settings = ast.literal_eval(LEGACY_PROPERTIES)
        settings["cb_image_attr_current_id"] = 1
        widget = self.create_widget(OWImageEmbedding,
                                    stored_settings=settings)
        widget.embedder_factory = FakeFactory()
        self.assertEqual(widget.legacy_image_attr_index, 1)
        # an index that waits for data is saved with the workflow
        packed = widget.settingsHandler.pack_data(widget)
        self.assertEqual(packed["legacy_image_attr_index"], 1)

        data = image_table(self.folder)
        self.send_signal(widget.Inputs.images, data, widget=widget)
        self.wait_until_finished(widget=widget)
        # columns offered: image (type=image), then image name
        self.assertIs(widget.image_attr, data.domain["image name"])
        self.assertIsNone(widget.legacy_image_attr_index)
        packed = widget.settingsHandler.pack_data(widget)
        self.assertIsNone(packed["legacy_image_attr_index"])

        # applied once: later data gets the ordinary default or context
        other = image_table(self.folder).transform(Domain(
            [], metas=[data.domain["image"]]))
        self.send_signal(widget.Inputs.images, other, widget=widget)
        self.wait_until_finished(widget=widget)
        self.assertIs(widget.image_attr, data.domain["image"])
        self.send_signal(widget.Inputs.images, data, widget=widget)
        self.wait_until_finished(widget=widget)
        self.assertIs(widget.image_attr, data.domain["image name"])

    def test_index_beyond_columns_falls_back(self):
        settings = {"cb_image_attr_current_id": 5, "__version__": 1}
        widget = self.create_widget(OWImageEmbedding,
                                    stored_settings=settings)
        widget.embedder_factory = FakeFactory()
        data = image_table(self.folder)
        self.send_signal(widget.Inputs.images, data, widget=widget)
        self.wait_until_finished(widget=widget)
        self.assertIs(widget.image_attr, data.domain["image"])
        self.assertIsNone(widget.legacy_image_attr_index)

    def test_negative_index(self):
        # a combo with nothing selected stores -1: not the last embedder
        widget = self.create_widget(
            OWImageEmbedding,
            stored_settings={"cb_embedder_current_id": -1, "__version__": 1})
        self.assertEqual(widget.embedder, "squeezenet")

    def test_new_settings_are_not_migrated(self):
        widget = self.create_widget(
            OWImageEmbedding,
            stored_settings={"embedder": "vgg19", "auto_apply": False,
                             "__version__": 2})
        self.assertEqual(widget.embedder, "vgg19")
        # the server model it meant, not the local copy added later
        self.assertEqual(widget.embedder_box.embedder_combo.currentText(),
                         "VGG-19 (server)")
        self.assertFalse(widget.auto_apply)
        self.assertIsNone(widget.legacy_image_attr_index)
        # version 2 sent images to its server_url (or the local default)
        self.assertTrue(widget.own_server)
        self.assertEqual(widget.effective_server_url(),
                         "http://127.0.0.1:8000")


class TestOldWorkflowFile(WidgetHelpersTest):
    """A saved workflow of the older add-on loads with links and settings."""

    OWS = f"""<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="old" description="">
  <nodes>
    <node id="0" name="Image Embedding"
      qualified_name="orangecontrib.imageanalytics.widgets.owimageembedding.OWImageEmbedding"
      project_name="Orange3-ImageAnalytics" version="" title="Image Embedding"
      position="(300, 200)" />
    <node id="1" name="Data Table"
      qualified_name="Orange.widgets.data.owtable.OWTable"
      project_name="Orange3" version="" title="Data Table"
      position="(500, 200)" />
  </nodes>
  <links>
    <link id="0" source_node_id="0" sink_node_id="1"
      source_channel="Embeddings" sink_channel="Data" enabled="true"
      source_channel_id="embeddings" sink_channel_id="data" />
  </links>
  <annotations />
  <thumbnail />
  <node_properties>
    <properties node_id="0" format="literal">{LEGACY_PROPERTIES}</properties>
  </node_properties>
</scheme>
"""

    def test_load(self):
        # pylint: disable=import-outside-toplevel
        from Orange.canvas.config import Config
        from Orange.widgets.data import owtable
        from orangecanvas.registry import WidgetRegistry
        from orangewidget.workflow import widgetsscheme

        from orangecontrib.imageanalytics.widgets import owimageembedding

        discovery = Config.widget_discovery(WidgetRegistry())
        for module in (owimageembedding, owtable):
            discovery.process_widget_module(module)
        registry = discovery.registry

        scheme = widgetsscheme.WidgetsScheme()
        scheme.widget_manager.set_creation_policy(
            scheme.widget_manager.Immediate)
        scheme.signal_manager.pause()
        try:
            scheme.load_from(io.BytesIO(self.OWS.encode()), registry=registry)
            self.assertEqual(len(scheme.links), 1)
            link = scheme.links[0]
            self.assertEqual(link.source_channel.name, "Embeddings")
            widget = scheme.widget_for_node(scheme.nodes[0])
            self.assertIsInstance(widget, OWImageEmbedding)
            self.assertEqual(widget.embedder, "squeezenet")
            self.assertEqual(widget.legacy_image_attr_index, 0)
            self.assertTrue(widget.auto_apply)
        finally:
            scheme.clear()
            scheme.deleteLater()
            self.process_events()


class TestHelpPage(unittest.TestCase):
    def test_every_embedder_documented(self):
        path = os.path.join(REPO, "doc", "widgets", "imageembedding.md")
        if not os.path.exists(path):
            self.skipTest("documentation is not part of this installation")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for spec in EMBEDDERS.values():
            row = (f"| {spec.label} | {'local' if spec.local else 'server'} "
                   f"| {spec.trained_on} | {spec.input_size} × "
                   f"{spec.input_size} | {spec.dimension} |")
            self.assertIn(row, text)
        # the local copies and where server embedders send images
        for words in ("Inception v3 (local)", "Download", "api.garaza.io",
                      "leave your", "imageanalytics download",
                      "ORANGE_EMBEDDING_WEIGHTS_DIR", "nothing is sent",
                      "Keep them here: use SqueezeNet (local)",
                      "runs as it was saved", "in full"):
            self.assertIn(words, text)
        # the sizes of the downloads, as the Download button says them
        for spec in LOCAL_COPIES.values():
            self.assertIn(f"{spec.weights.size / 1e6:.0f} MB for {spec.label}",
                          " ".join(text.split()))
        # the screenshot it shows is there
        pictures = re.findall(r"!\[[^\]]*\]\((images/[^)]+)\)", text)
        self.assertTrue(pictures)
        for picture in pictures:
            self.assertTrue(os.path.exists(
                os.path.join(os.path.dirname(path), picture)), picture)


if __name__ == "__main__":
    unittest.main()
