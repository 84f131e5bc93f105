"""The widget help pages are rendered, current and found by the canvas."""
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import time
import unittest

from AnyQt.QtCore import QUrl
from AnyQt.QtWidgets import QApplication
from Orange.canvas.config import Config
from Orange.widgets.tests.base import GuiTest
from orangecanvas.help import HelpManager
from orangecanvas.help.provider import HtmlIndexProvider
from orangecanvas.registry import WidgetRegistry
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

    def test_every_local_link_leads_to_a_page(self):
        help_dir = os.path.dirname(widgets.WIDGET_HELP_PATH[0][0])
        pages = [name for name in os.listdir(help_dir) if name.endswith(".html")]
        self.assertIn("server.html", pages)
        for page in pages:
            with open(os.path.join(help_dir, page), encoding="utf-8") as f:
                text = f.read()
            for href in re.findall(r'(?:href|src)="([^"#]+)', text):
                if "://" in href or href.startswith("mailto:"):
                    continue
                self.assertTrue(os.path.isfile(os.path.join(help_dir, href)),
                                f"{page} links {href}")

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


class TestF1OpensHelp(GuiTest):
    def test_canvas_help_manager_finds_every_page(self):
        """What F1 asks (help://search?id=<qualified name>) resolves to the
        widget's own page, through the canvas's help manager."""
        registry = WidgetRegistry()
        Config.widget_discovery(registry).run(Config.widgets_entry_points())
        ours = [d for d in registry.widgets()
                if d.qualified_name.startswith("orangecontrib.imageanalytics.")]
        self.assertEqual({d.name for d in ours}, widget_names())
        manager = HelpManager()
        manager.set_registry(registry)
        provider = manager.get_provider(ours[0].project_name)
        self.assertIsNotNone(provider)
        deadline = time.monotonic() + 10
        while not provider.items and time.monotonic() < deadline:
            QApplication.processEvents()  # the index loads asynchronously
            time.sleep(0.01)
        for desc in ours:
            url = manager.get_help(QUrl("help://search?id=" + desc.qualified_name))
            self.assertTrue(url.isLocalFile(), desc.name)
            path = url.toLocalFile()
            self.assertTrue(os.path.isfile(path), path)
            with open(path, encoding="utf-8") as f:
                self.assertIn(f"<title>{desc.name}</title>", f.read())


if __name__ == "__main__":
    unittest.main()
