"""The examples of doc/scripting.md run as they are written."""
import os
import re

import pytest

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "doc", "scripting.md")


def code_blocks():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks()
    assert len(blocks) >= 6
    namespace = {}
    ran = 0
    for block in blocks:
        if "WidgetPreview" in block:
            continue  # opens a window and waits for it to close
        exec(compile(block, DOC, "exec"), namespace)  # noqa: S102
        ran += 1
    assert ran == len(blocks) - 1
    # what the examples promise
    assert len(namespace["table"]) == 50
    assert namespace["embedded"].X.shape == (50, 1000)
    assert namespace["vectors"][1] is None and len(namespace["vectors"][0]) == 1000
    assert namespace["report"].summary() == "50 saved, 0 already there"
    assert sorted(os.listdir(tmp_path / "sorted")) == [
        "cartoon", "digit", "flower", "portrait", "temple"]
    assert len(os.listdir(tmp_path / "resized")) == 25
    assert namespace["thumb"].image is not None
    assert len(namespace["predicted"]) == 25
    from Orange.evaluation import CA
    assert CA(namespace["results"])[0] > 0.9
    assert "# above 0.9 on the example photos" in open(DOC, encoding="utf-8").read()


@pytest.mark.parametrize("block", [b for b in code_blocks() if "WidgetPreview" in b])
def test_widget_preview_example_names_real_inputs(block):
    from orangecontrib.imageanalytics.widgets.owimagegrid import OWImageGrid
    from orangecontrib.imageanalytics.widgets.owimageviewer import OWImageViewer

    assert "OWImageViewer" in block
    assert callable(OWImageViewer.set_data)
    text = open(DOC, encoding="utf-8").read()
    for name in re.findall(r"run\((set_\w+)=", text) + re.findall(r", (set_\w+)=", text):
        assert hasattr(OWImageGrid, name), name


def _preview_script(run_arguments: str) -> str:
    return (
        "from Orange.widgets.utils.widgetpreview import WidgetPreview\n"
        "from orangecontrib.imageanalytics.widgets.owimageviewer import "
        "OWImageViewer\n"
        f"WidgetPreview(OWImageViewer).run({run_arguments})\n"
        "print('after run')\n")


@pytest.mark.parametrize(("no_exit", "continues"), [(False, False),
                                                    (True, True)])
def test_widget_preview_run_ends_the_script_unless_no_exit(no_exit, continues):
    """What the page says of ``WidgetPreview.run``: closing the window ends
    the script, ``no_exit=True`` returns instead.  (``no_exec=True`` stands
    in for a window that is closed at once.)"""
    import subprocess
    import sys

    text = open(DOC, encoding="utf-8").read()
    assert "closing it ends the script" in text and "no_exit=True" in text
    args = "no_exec=True" + (", no_exit=True" if no_exit else "")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", _preview_script(args)],
                          env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("after run" in done.stdout) == continues


def test_what_changed_for_older_scripts_is_what_the_page_says():
    """The page's list of what changed for scripts of the older add-on:
    the default model, and the names that replace the four gone ones."""
    from orangecontrib.imageanalytics.embedders.registry import (
        embedder_keys,
        get_embedder,
    )
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    from orangecontrib.imageanalytics.import_images import ImportImages

    text = open(DOC, encoding="utf-8").read()
    section = text.split("## Scripts written for the older add-on")[1] \
        .split("\n## ")[0]

    embedder = ImageEmbedder(cache=False)
    assert "embeds with SqueezeNet, on this" in section
    assert embedder.model == "squeezenet" and embedder.is_local is True
    # the gone names are gone, their successors are there
    for gone in ("from_table", "is_local_embedder", "MODELS",
                 "prepare_output_data"):
        assert f"`{gone}" in section
        assert not hasattr(ImageEmbedder, gone), gone
    assert callable(embedder.embed_table)
    assert "squeezenet" in embedder_keys() and "inception-v3" in embedder_keys()
    spec = get_embedder("squeezenet")
    assert spec.label and spec.input_size and spec.dimension == 1000
    # the older ImportImages' arguments and its stop switch
    importer = ImportImages(report_progress=None, case_insensitive=True)
    assert importer.cancelled is False
