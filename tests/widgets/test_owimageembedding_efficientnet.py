"""Image Embedding offers EfficientNet-Lite0 as a local embedder and embeds
with it (the real engine, no stand-in)."""
import importlib.util
import os
import tempfile
import unittest

import numpy as np
from Orange.data import Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest
from PIL import Image

from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.widgets.owimageembedding import (
    OWImageEmbedding,
)

SPEC = get_embedder("efficientnet-lite0")


@unittest.skipIf(importlib.util.find_spec(SPEC.weights.package) is None,
                 "EfficientNet-Lite0 weights are not installed")
class TestEfficientNetInTheWidget(WidgetTest):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(0)
        names = []
        for i in range(3):
            pixels = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
            names.append(f"photo{i}.png")
            Image.fromarray(pixels).save(os.path.join(self._tmp.name,
                                                      names[-1]))
        image = StringVariable("image")
        image.attributes.update(type="image", origin=self._tmp.name)
        self.data = Table.from_list(Domain([], metas=[image]),
                                    [[n] for n in names])
        self.widget = self.create_widget(OWImageEmbedding)

    def tearDown(self):
        self._tmp.cleanup()
        super().tearDown()

    def test_offered_as_local_and_embeds(self):
        widget = self.widget
        texts = [widget.embedder_box.embedder_combo.itemText(i)
                 for i in range(widget.embedder_box.embedder_combo.count())]
        self.assertIn("EfficientNet-Lite0 (local)", texts)
        index = widget.embedder_box.embedder_model.indexOf(SPEC.key)
        widget.embedder_box.embedder_combo.setCurrentIndex(index)
        widget.embedder_box.embedder_combo.activated.emit(index)
        self.assertEqual(widget.embedder, SPEC.key)
        self.assertFalse(widget.embedder_box.server_box.isVisibleTo(widget))
        self.send_signal(widget.Inputs.images, self.data)
        self.wait_until_finished(timeout=60000)
        output = self.get_output(widget.Outputs.embeddings)
        self.assertIsNotNone(output)
        self.assertEqual(len(output), 3)
        self.assertEqual(len(output.domain.attributes), SPEC.dimension)
        self.assertTrue(np.all(np.isfinite(output.X)))
