"""Tests for the Image Embedding widget's Qt-free core: its policies and its
two tasks, called as a script would."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import unittest
from unittest import mock

import numpy as np
from embedding_fixtures import (
    SKIP_REASON,
    FakeFactory,
    image_table,
    make_images,
)
from Orange.data import (
    ContinuousVariable,
    DiscreteVariable,
    Domain,
    StringVariable,
    Table,
)

from orangecontrib.imageanalytics.embedders import registry
from orangecontrib.imageanalytics.embedders.errors import EmbeddingCancelled
from orangecontrib.imageanalytics.embedders.registry import (
    LEGACY_ORDER,
    LOCAL_COPIES,
    PUBLIC_SERVER_URL,
)
from orangecontrib.imageanalytics.embedders.weights import WEIGHTS_DIR_ENV
from orangecontrib.imageanalytics.embedding_task import (
    Result,
    count_images,
    download,
    host,
    image_columns,
    legacy_embedder_key,
    migrate_settings,
    run,
    server_address,
    server_note,
    weights_missing,
)


class Corpus(Table):
    """Stands in for the Text add-on's Corpus: a Table subclass."""


def make_state(stop: bool = False) -> mock.Mock:
    state = mock.Mock()
    state.is_interruption_requested.return_value = stop
    return state


class TestRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.folder = os.path.join(cls._tmp.name, "photos")
        make_images(cls.folder)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def setUp(self):
        self.state = make_state()

    def test_result(self):
        data = image_table(self.folder, Corpus)
        factory = FakeFactory()
        result = run(data, data.domain["image"], "squeezenet", "http://x",
                     self.state, embedder_factory=factory)
        self.assertIsInstance(result, Result)
        self.assertEqual(result.n_embedded, 4)
        self.assertEqual(result.n_skipped, 4)
        self.assertEqual(result.embedder, "squeezenet")
        # the reasons come from the engine's outcomes, most common first
        self.assertEqual(result.skip_reasons,
                         [("file not found", 2), ("not an image", 1),
                          ("no image path", 1)])
        # local embedders get no server address; the engine is closed
        self.assertEqual(factory.calls, [("squeezenet", None)])
        self.assertEqual(factory.closed, 1)
        values = [c.args[0] for c in
                  self.state.set_progress_value.call_args_list]
        self.assertEqual(values[-1], 100)
        # the tables a script gets from ImageEmbedder.embed_table
        embedded, skipped = result.embedded, result.skipped
        self.assertIsInstance(embedded, Corpus)
        self.assertIsInstance(skipped, Corpus)
        self.assertEqual([v.name for v in embedded.domain.attributes],
                         ["n0", "n1", "n2"])
        self.assertTrue(all(v.attributes["hidden"]
                            for v in embedded.domain.attributes))
        self.assertEqual(embedded.domain.metas, data.domain.metas)
        np.testing.assert_array_equal(embedded.ids, data.ids[:4])
        np.testing.assert_array_equal(skipped.ids, data.ids[4:])
        self.assertEqual(list(skipped.get_column(SKIP_REASON)),
                         ["not an image", "file not found", "file not found",
                          "no image path"])

    def test_nothing_skipped_or_nothing_embedded(self):
        data = image_table(self.folder, bad=False)
        result = run(data, data.domain["image"], "squeezenet", None,
                     self.state, embedder_factory=FakeFactory())
        self.assertIsNone(result.skipped)
        self.assertEqual(result.skip_reasons, [])
        bad = image_table(self.folder)[4:]
        result = run(bad, bad.domain["image"], "squeezenet", None,
                     self.state, embedder_factory=FakeFactory())
        self.assertIsNone(result.embedded)
        self.assertEqual((result.n_embedded, result.n_skipped), (0, 4))

    def test_same_tables_as_the_scripting_api(self):
        """With the real engine, the widget's task gives what a script
        gets from ImageEmbedder."""
        from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
        data = image_table(self.folder, Corpus)
        with tempfile.TemporaryDirectory() as cache, \
                mock.patch.dict(os.environ,
                                {"ORANGE_IMAGEANALYTICS_CACHE_DIR": cache}):
            result = run(data, data.domain["image"], "squeezenet", None,
                         self.state)
            embedded, skipped, n_skipped = ImageEmbedder(
                model="squeezenet", cache=False).embed_table(data, "image")
        self.assertEqual(result.n_skipped, n_skipped)
        self.assertEqual(result.embedded.domain, embedded.domain)
        np.testing.assert_allclose(result.embedded.X, embedded.X,
                                   rtol=1e-5, atol=1e-5)
        self.assertEqual(result.skipped.domain, skipped.domain)
        self.assertEqual(
            dict(result.skip_reasons),
            dict(zip(*np.unique(skipped.get_column(SKIP_REASON),
                                return_counts=True))))

    def test_server_embedder_gets_address(self):
        data = image_table(self.folder, bad=False)
        factory = FakeFactory()
        result = run(data, data.domain["image"], "vgg16", "http://x:1",
                     self.state, embedder_factory=factory)
        self.assertEqual(factory.calls, [("vgg16", "http://x:1")])
        self.assertEqual(result.skip_reasons, [])
        self.assertEqual(result.n_skipped, 0)

    def test_interruption(self):
        data = image_table(self.folder)
        factory = FakeFactory()
        with self.assertRaises(EmbeddingCancelled):
            run(data, data.domain["image"], "squeezenet", None,
                make_state(stop=True), embedder_factory=factory)
        self.assertEqual(factory.closed, 1)

    def test_unknown_embedder(self):
        data = image_table(self.folder)
        with self.assertRaisesRegex(ValueError, "squeezenet"):
            run(data, data.domain["image"], "alexnet", None, self.state,
                embedder_factory=FakeFactory())


class TestPolicies(unittest.TestCase):
    def test_image_columns(self):
        plain = StringVariable("name")
        image = StringVariable("img")
        image.attributes["type"] = "image"
        cat = DiscreteVariable("cat", values=("a", "b"))
        number = ContinuousVariable("number")
        domain = Domain([ContinuousVariable("x")],
                        metas=[plain, cat, number, image])
        table = Table.from_numpy(
            domain, np.zeros((1, 1)),
            metas=np.array([["a", 0, 1, "b"]], dtype=object))
        self.assertEqual(image_columns(table), [image, plain, cat])
        self.assertEqual(image_columns(None), [])

    def test_count_images(self):
        name = StringVariable("image")
        cat = DiscreteVariable("cat", values=("a.jpg", "b.jpg"))
        table = Table.from_numpy(
            Domain([], metas=[name, cat]), np.empty((4, 0)),
            metas=np.array([["a.jpg", 0], ["", np.nan], ["  ", 1],
                            ["c.png", np.nan]], dtype=object))
        self.assertEqual(count_images(table, name), 2)
        self.assertEqual(count_images(table, cat), 2)
        self.assertEqual(count_images(None, name), 0)
        self.assertEqual(count_images(table, None), 0)

    def test_server_address(self):
        with mock.patch.dict(os.environ, {"ORANGE_EMBEDDING_API_URL": ""}):
            self.assertEqual(server_address(False, "http://mine:1"),
                             PUBLIC_SERVER_URL)
            self.assertEqual(server_address(True, " http://mine:1 "),
                             "http://mine:1")
            self.assertEqual(server_address(True, ""),
                             "http://127.0.0.1:8000")
        with mock.patch.dict(os.environ,
                             {"ORANGE_EMBEDDING_API_URL": "http://env:9"}):
            # the variable names the public server, as in Orange's clients,
            # and the default of the user's own
            self.assertEqual(server_address(False, ""), "http://env:9")
            self.assertEqual(server_address(True, ""), "http://env:9")
            self.assertEqual(server_address(True, "http://mine:1"),
                             "http://mine:1")

    def test_server_note_and_host(self):
        note = server_note(PUBLIC_SERVER_URL, False)
        for words in ("leave this computer", "internet", PUBLIC_SERVER_URL,
                      "(local)"):
            self.assertIn(words, note)
        # no promise about what a server run by others keeps
        self.assertNotIn("store", note)
        note = server_note("http://gpu.lab:8000", True)
        self.assertIn("http://gpu.lab:8000", note)
        self.assertIn("keeps no copy", note)
        self.assertNotIn("internet", note)
        self.assertEqual(host(PUBLIC_SERVER_URL), "api.garaza.io")
        self.assertEqual(host("http://gpu.lab:8000/embed/"), "gpu.lab:8000")

    def test_weights_missing(self):
        with tempfile.TemporaryDirectory() as folder, \
                mock.patch.dict(os.environ, {WEIGHTS_DIR_ENV: folder}):
            self.assertFalse(weights_missing("squeezenet"))
            self.assertFalse(weights_missing("vgg16"))
            self.assertTrue(weights_missing("vgg16-local"))
            open(os.path.join(folder, "vgg16-397923af.pth"), "wb").close()
            self.assertFalse(weights_missing("vgg16-local"))

    def test_legacy_embedder_key(self):
        for index, key in enumerate(LEGACY_ORDER):
            self.assertEqual(legacy_embedder_key(index), key)
        # -1: a combo with nothing selected, not the last embedder
        for value in (-1, 42, None, 1.5j):
            self.assertEqual(legacy_embedder_key(value), "squeezenet")
        # a key already (and an unknown one, reported when the widget loads)
        self.assertEqual(legacy_embedder_key("vgg19"), "vgg19")
        self.assertEqual(legacy_embedder_key("alexnet"), "alexnet")

    def test_migrate_settings(self):
        settings = {"_auto_apply": False, "cb_embedder_current_id": 2,
                    "cb_image_attr_current_id": 1}
        migrate_settings(settings, 1)
        self.assertEqual(settings, {"auto_apply": False, "embedder": "vgg16",
                                    "legacy_image_attr_index": 1})
        settings = {"embedder": "vgg19"}
        migrate_settings(settings, 2)
        self.assertEqual(settings, {"embedder": "vgg19", "own_server": True})
        settings = {"embedder": "vgg19", "own_server": False}
        migrate_settings(settings, 3)
        self.assertEqual(settings, {"embedder": "vgg19", "own_server": False})


class TestDownloadTask(unittest.TestCase):
    def test_progress_and_result(self):
        from file_server import serve_file
        payload = np.random.default_rng(1).bytes(2_000_000)
        state = make_state()
        spec = LOCAL_COPIES["inception-v3-local"]
        with tempfile.TemporaryDirectory() as folder, \
                mock.patch.dict(os.environ, {WEIGHTS_DIR_ENV: folder}), \
                serve_file(payload) as (url, _):
            patched = dataclasses.replace(spec, weights=dataclasses.replace(
                spec.weights, url=f"{url}/w.pth",
                sha256=hashlib.sha256(payload).hexdigest()))
            with mock.patch.dict(registry.LOCAL_COPIES,
                                 {spec.key: patched}):
                result = download(spec.key, state)
            self.assertEqual(result.embedder, spec.key)
            with open(result.path, "rb") as f:
                self.assertEqual(f.read(), payload)
        values = [c.args[0] for c in state.set_progress_value.call_args_list]
        self.assertEqual(values[-1], 100)
        self.assertEqual(values, sorted(set(values)))   # whole percents
        self.assertIn("2 of 2 MB", state.set_status.call_args.args[0])


if __name__ == "__main__":
    unittest.main()
