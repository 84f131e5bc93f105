"""The widget help pages are rendered, current and found by the canvas."""
import importlib
import os
import pkgutil
import subprocess
import sys
import unittest

from orangecanvas.help.provider import HtmlIndexProvider
from orangewidget.widget import OWBaseWidget

from orangecontrib.imageanalytics import widgets

ROOT = os.path.join(os.path.dirname(__file__), "..")


def widget_names():
    """The names of every widget the package defines."""
    names = set()
    for module in pkgutil.iter_modules(widgets.__path__):
        if not module.name.startswith("ow"):
            continue
        mod = importlib.import_module(f"{widgets.__name__}.{module.name}")
        names |= {cls.name for cls in vars(mod).values()
                  if isinstance(cls, type) and issubclass(cls, OWBaseWidget)
                  and cls.__module__ == mod.__name__}
    return names


class TestHelpPages(unittest.TestCase):
    def test_rendered_pages_are_current(self):
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "scripts", "build_help.py"),
             "--check"], capture_output=True, text=True, check=False)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_index_links_every_widget_by_name(self):
        index, _ = widgets.WIDGET_HELP_PATH[0]
        parser = HtmlIndexProvider._XHTMLParser(convert_charrefs=True)
        with open(index, encoding="utf-8") as f:
            parser.feed(f.read())
        # the same query the canvas's html-index provider uses
        items = {a.text.lower(): a.attrib["href"] for a in
                 parser.builder.close().findall(".//*[@id='widgets']//li/a")}
        names = widget_names()
        self.assertLessEqual({"Import Images", "Image Embedding"}, names)
        for name in names:
            name = name.lower()
            self.assertIn(name, items)
            page = os.path.join(os.path.dirname(index), items[name])
            self.assertTrue(os.path.isfile(page), page)


if __name__ == "__main__":
    unittest.main()
