"""Importing the add-on's modules must not load torch or ONNX Runtime.

torch alone takes about a second to import; the canvas imports the widget
modules at start-up and the command line imports the engines on every run,
so the heavy libraries are imported only when a model is actually built.
"""
import os
import subprocess
import sys

MODULES = (
    "orangecontrib.imageanalytics.embedders.engines",
    "orangecontrib.imageanalytics.embedders.squeezenet",
    "orangecontrib.imageanalytics.embedders.local",
    "orangecontrib.imageanalytics.image_embedder",
    "orangecontrib.imageanalytics.widgets.owimageembedding",
    "orangecontrib.imageanalytics.widgets.owimageimport",
)

_CHECK = """
import importlib, sys
heavy = ("torch", "onnxruntime")
for name in sys.argv[1:]:
    importlib.import_module(name)
    loaded = [module for module in heavy if module in sys.modules]
    assert not loaded, f"importing {name} imported {', '.join(loaded)}"
"""


def test_imports_do_not_load_torch_or_onnxruntime():
    # one process for all modules: each is checked right after its import
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK, *MODULES], check=False,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
