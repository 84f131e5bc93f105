"""The server application in-process, with small generated weights."""
import io
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

with warnings.catch_warnings():
    # Starlette asks for the httpx2 package; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from server_helpers import (
    NARROW_HIDDEN,
    cosine,
    inception_entry,
    jpeg_bytes,
    missing_entry,
    model_input_jpeg,
    narrow_vgg_entry,
    photo,
    write_onnx_model,
    write_torchscript_model,
)

from orangecontrib.imageanalytics import protocol
from orangecontrib.imageanalytics.embedders.engines import get_runner
from orangecontrib.imageanalytics.embedders.inputs import prepare_input
from orangecontrib.imageanalytics.embedders.models.inception_v3 import (
    inception_v3_from_state_dict,
)
from orangecontrib.imageanalytics.embedders.preprocess import to_model_input
from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.server.app import create_app
from orangecontrib.imageanalytics.server.config import (
    ConfigError,
    ModelEntry,
    ServerConfig,
    load_models_file,
    resolve_entries,
)

MAX_BODY = 300_000


def _models_file(folder):
    import hashlib
    write_onnx_model(folder / "tiny.onnx")
    write_torchscript_model(folder / "tiny.pt")
    sha = hashlib.sha256((folder / "tiny.onnx").read_bytes()).hexdigest()
    path = folder / "models.toml"
    path.write_text(f"""
[models.tiny-onnx]
file = "tiny.onnx"
sha256 = "{sha}"
input_size = 32
scale = {1 / 255!r}
mean = [0, 0, 0]
std = [1, 1, 1]
output = "pool"          # an inner tensor, not a graph output
dimension = 3

[models.tiny-ts]
file = "tiny.pt"
input_size = 32
output = 1
""")
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return folder, {
        "inception": inception_entry(folder),
        "vgg": narrow_vgg_entry(folder),
        "models_file": _models_file(folder),
    }


@pytest.fixture(scope="module")
def client(weights):
    folder, made = weights
    entries = (
        ModelEntry(get_embedder("squeezenet"), "squeezenet"),
        made["inception"], made["vgg"], missing_entry("vgg19", folder),
        ModelEntry(get_embedder("painters"), ""),
        *load_models_file(made["models_file"]),
    )
    config = ServerConfig(device="cpu", entries=entries, weights_dir=folder,
                          max_body_bytes=MAX_BODY, max_images_per_request=16,
                          max_queue=64, request_timeout=5.0)
    with TestClient(create_app(config)) as test_client:
        yield test_client


def _batch(client, model, images, **params):
    return client.post(f"/v2/embed/{model}", params=params,
                       content=protocol.encode_image_batch(images),
                       headers={"Content-Type": protocol.REQUEST_TYPE})


def test_health(client):
    reply = client.get("/health")
    assert reply.status_code == 200
    content = reply.json()
    assert content["status"] == "ok"
    assert content["models"]["squeezenet"] == "ready"
    assert content["models"]["vgg19"] == "unavailable"


def test_models_lists_availability_and_protocols(client):
    content = client.get("/models").json()
    assert content["protocol_version"] == protocol.PROTOCOL_VERSION
    batch = content["protocols"]["batch"]
    assert batch["path"] == "/v2/embed/{model}"
    assert batch["max_images"] == 16
    models = {model["key"]: model for model in content["models"]}
    assert models["squeezenet"]["available"]
    assert models["squeezenet"]["input_size"] == 227
    assert models["squeezenet"]["dimension"] == 1000
    assert models["inception-v3"]["dimension"] == 2048
    assert models["vgg16"]["dimension"] == NARROW_HIDDEN
    assert models["tiny-onnx"]["available"] and models["tiny-ts"]["available"]
    assert not models["vgg19"]["available"]
    assert "vgg19-dcbb9e9d.pth" in models["vgg19"]["reason"]
    assert "download.pytorch.org" in models["vgg19"]["reason"]
    assert "models file" in models["painters"]["reason"]


def test_orange_protocol_matches_local_engine(client):
    data = model_input_jpeg("squeezenet", seed=1)
    reply = client.post(
        "/image/squeezenet?machine=123&session=456&retry=1", content=data,
        headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 200
    vector = reply.json()["embedding"]
    assert len(vector) == 1000
    spec = get_embedder("squeezenet")
    local = get_runner(spec)(to_model_input(
        prepare_input(data, spec)[None], spec))[0]
    assert cosine(vector, local) >= 0.9999


def test_inception_preprocessing_and_pooled_features(client, weights):
    folder, made = weights
    spec = made["inception"].spec
    data = model_input_jpeg("inception-v3", seed=2)
    vector = np.array(client.post("/image/inception-v3",
                                  content=data).json()["embedding"])
    assert vector.shape == (2048,)
    state = torch.load(folder / spec.weights.filename, weights_only=True)
    model = inception_v3_from_state_dict(state, fuse=False)
    with torch.inference_mode():
        expected = model(torch.from_numpy(to_model_input(
            prepare_input(data, spec)[None], spec)))[0].numpy()
    assert cosine(vector, expected) >= 0.999


def test_vgg_fc7(client):
    reply = client.post("/image/vgg16", content=model_input_jpeg("vgg16"))
    vector = np.array(reply.json()["embedding"])
    assert vector.shape == (NARROW_HIDDEN,) and (vector >= 0).all()


def test_models_from_a_models_file(client):
    rgb = np.array([10, 128, 250], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.tile(rgb, (32, 32, 1))).save(buffer, "PNG")
    onnx_vector = client.post("/image/tiny-onnx",
                              content=buffer.getvalue()).json()["embedding"]
    np.testing.assert_allclose(onnx_vector, rgb / 255, rtol=1e-5)
    ts_vector = client.post("/image/tiny-ts",
                            content=buffer.getvalue()).json()["embedding"]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(ts_vector, 3 * (rgb / 255 - mean) / std,
                               rtol=1e-5)


def test_batch_protocol(client):
    good = [model_input_jpeg("squeezenet", seed) for seed in range(3)]
    truncated = good[0][:len(good[0]) // 2]
    reply = _batch(client, "squeezenet",
                   [good[0], b"not an image", good[1], truncated, good[2]])
    assert reply.status_code == 200
    assert reply.headers["content-type"] == protocol.RESPONSE_TYPE
    vectors, errors, header = protocol.decode_embeddings(reply.content)
    assert vectors.shape == (5, 1000) and header["model"] == "squeezenet"
    assert set(errors) == {1, 3}
    assert errors[1] == "not an image"
    assert not vectors[1].any() and not vectors[3].any()
    single = client.post("/image/squeezenet", content=good[1]).json()
    assert cosine(vectors[2], single["embedding"]) > 0.99999
    half = _batch(client, "squeezenet", good, dtype="float16")
    vectors16, errors16, header16 = protocol.decode_embeddings(half.content)
    assert header16["dtype"] == "float16" and not errors16
    assert len(half.content) < len(reply.content) * 0.6 + 1000
    np.testing.assert_allclose(vectors16[1], vectors[2], rtol=2e-3, atol=1e-2)


@pytest.mark.parametrize("body, message", [
    (b"", "must start"),
    (b"JUNK" + bytes(8), "must start"),
    (protocol.encode_image_batch([b"abc", b"def"])[:-1], "add up"),
    (protocol.encode_image_batch([b"x"] * 17), "at most 16"),
    (protocol.encode_image_batch([]), "no images"),
])
def test_malformed_batches(client, body, message):
    reply = client.post("/v2/embed/squeezenet", content=body)
    assert reply.status_code == 400
    assert message in reply.json()["error"]


def test_bad_dtype(client):
    reply = _batch(client, "squeezenet", [b"x"], dtype="float64")
    assert reply.status_code == 400


def test_malformed_jpeg_is_skipped(client):
    data = model_input_jpeg("squeezenet")
    for body in (data[:300], b"\xff\xd8\xff\xe0" + bytes(100), b"text"):
        reply = client.post("/image/squeezenet", content=body)
        assert reply.status_code == 422
        # Orange's client skips the image on an empty embedding
        assert reply.json()["embedding"] == []
        assert reply.json()["error"]


def test_empty_body(client):
    reply = client.post("/image/squeezenet", content=b"")
    assert reply.status_code == 400
    assert reply.json()["embedding"] == []


def test_huge_body(client):
    big = bytes(MAX_BODY + 1)
    reply = client.post("/image/squeezenet", content=big)
    assert reply.status_code == 413 and reply.json()["embedding"] == []

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield bytes(MAX_BODY // 3)
    reply = client.post("/image/squeezenet", content=chunks())
    assert reply.status_code == 413
    reply = client.post("/v2/embed/squeezenet", content=big)
    assert reply.status_code == 413


def test_too_many_pixels():
    config = ServerConfig(device="cpu", models=("squeezenet",),
                          max_pixels=100_000)
    with TestClient(create_app(config)) as small:
        reply = small.post("/image/squeezenet",
                           content=jpeg_bytes(photo(size=(400, 300))))
        assert reply.status_code == 422
        assert "too large" in reply.json()["error"]


def test_unknown_model(client):
    reply = client.post("/image/resnet-1000", content=b"x")
    assert reply.status_code == 404
    content = reply.json()
    # no "embedding": Orange's client retries rather than caching a failure
    assert "embedding" not in content
    assert "squeezenet" in content["error"]
    assert _batch(client, "resnet-1000", [b"x"]).status_code == 404


def test_missing_weights_names_file_and_source(client):
    for reply in (client.post("/image/vgg19", content=b"x"),
                  _batch(client, "vgg19", [b"x"])):
        assert reply.status_code == 503
        content = reply.json()
        assert content["code"] == "model_unavailable"
        assert "embedding" not in content
        assert "vgg19-dcbb9e9d.pth" in content["error"]
        assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" \
            in content["error"]


def _assert_overloaded_while_full(client, counter):
    """With ``counter`` taken in full, both protocols answer 503 with
    Retry-After and no "embedding" (so Orange retries); once it is released
    the server embeds again."""
    taken = counter.limit
    assert counter.try_acquire(taken)
    data = model_input_jpeg("squeezenet")
    try:
        for reply in (client.post("/image/squeezenet", content=data),
                      _batch(client, "squeezenet", [data])):
            assert reply.status_code == 503
            assert int(reply.headers["Retry-After"]) >= 1
            assert reply.json()["code"] == "overloaded"
            assert "embedding" not in reply.json()
    finally:
        counter.release(taken)
    assert client.post("/image/squeezenet", content=data).status_code == 200


def test_overload_gives_503_with_retry_after(client):
    _assert_overloaded_while_full(
        client, client.app.state.server.admission["squeezenet"])


def test_slow_upload_times_out():
    config = ServerConfig(device="cpu", models=("squeezenet",),
                          request_timeout=0.3)

    def slow():
        yield b"\xff\xd8"
        time.sleep(1.0)
        yield b"\xff\xd9"
    with TestClient(create_app(config)) as quick:
        reply = quick.post("/image/squeezenet", content=slow())
    assert reply.status_code == 504
    assert reply.json()["code"] == "timeout"
    assert "embedding" not in reply.json()


def test_buffered_bodies_are_bounded_over_all_requests(client):
    """Bodies being read count against one byte budget for the whole
    server, whatever the number of requests: a full budget gives 503."""
    budget = client.app.state.server.buffered
    _assert_overloaded_while_full(client, budget)
    assert budget.count == 0


def test_slow_upload_holds_no_queue_slot():
    """A client that uploads slowly must not take a slot of the bounded
    queue while it uploads: others are served meanwhile."""
    import asyncio

    import httpx

    config = ServerConfig(device="cpu", models=("squeezenet",), max_queue=1,
                          request_timeout=10.0)
    app = create_app(config)
    data = model_input_jpeg("squeezenet")

    async def main():
        uploading = asyncio.Event()

        async def slow():
            yield data[:10]
            uploading.set()
            await asyncio.sleep(1.0)
            yield data[10:]

        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://test") as http:
                slow_reply = asyncio.ensure_future(
                    http.post("/image/squeezenet", content=slow()))
                await asyncio.wait_for(uploading.wait(), 5)
                await asyncio.sleep(0.05)
                quick = await asyncio.wait_for(
                    http.post("/image/squeezenet", content=data), 5)
                return quick, await asyncio.wait_for(slow_reply, 10)

    quick, slow_reply = asyncio.run(main())
    assert quick.status_code == 200, quick.text
    assert slow_reply.status_code == 200, slow_reply.text


def test_concurrent_requests_share_batches(client):
    from concurrent.futures import ThreadPoolExecutor
    batcher = client.app.state.server.batchers["squeezenet"]
    data = [model_input_jpeg("squeezenet", seed) for seed in range(4)]
    before_images, before_batches = batcher.images_done, batcher.batches_done
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(
            lambda i: client.post("/image/squeezenet", content=data[i % 4]),
            range(24)))
    assert all(len(reply.json()["embedding"]) == 1000 for reply in replies)
    assert batcher.images_done - before_images == 24
    assert batcher.batches_done - before_batches < 24


class TestApiKey:
    @pytest.fixture(scope="class")
    def keyed(self):
        config = ServerConfig(device="cpu", models=("squeezenet",),
                              api_key="s3cret")
        with TestClient(create_app(config)) as test_client:
            yield test_client

    def test_health_is_open(self, keyed):
        assert keyed.get("/health").status_code == 200

    @pytest.mark.parametrize("headers", [
        {}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cre"},
        {"Authorization": "s3cret"}])
    def test_missing_or_wrong_key(self, keyed, headers):
        for reply in (keyed.get("/models", headers=headers),
                      keyed.post("/image/squeezenet", content=b"x",
                                 headers=headers)):
            assert reply.status_code == 401
            assert reply.json()["code"] == "unauthorized"
            assert "embedding" not in reply.json()

    @pytest.mark.parametrize("headers", [
        {"Authorization": "Bearer s3cret"}, {"X-API-Key": "s3cret"},
        {"authorization": "bearer s3cret"}])
    def test_right_key(self, keyed, headers):
        assert keyed.get("/models", headers=headers).status_code == 200
        reply = keyed.post("/image/squeezenet",
                           content=model_input_jpeg("squeezenet"),
                           headers=headers)
        assert len(reply.json()["embedding"]) == 1000


class TestConfig:
    def test_models_file_and_selection(self, weights):
        _, made = weights
        config = ServerConfig(models=("tiny-onnx", "squeezenet"),
                              models_file=made["models_file"])
        entries = resolve_entries(config)
        assert [entry.spec.key for entry in entries] == \
            ["tiny-onnx", "squeezenet"]
        assert entries[0].architecture == "onnx"
        assert entries[0].spec.weights.filename == "tiny.onnx"

    def test_unknown_model_in_selection(self):
        with pytest.raises(ConfigError, match="unknown model"):
            resolve_entries(ServerConfig(models=("nope",)))
        with pytest.raises(ConfigError, match="unknown model"):
            create_app(ServerConfig(models=("nope",)))

    @pytest.mark.parametrize("text, message", [
        ('[models.x]\nfile = "x.bin"\ninput_size = 8\n', "format"),
        ('[models.x]\nformat = "onnx"\ninput_size = 8\n', "'file'"),
        ('[models.x]\nfile = "x.onnx"\n', "input_size"),
        ('[models.x]\nfile = "x.onnx"\ninput_size = 8\ncolour = 1\n',
         "unknown options"),
        ('[models.x]\nfile = "x.onnx"\ninput_size = 8\nmean = [1]\n',
         "three numbers"),
        ('[other]\n', "[models.KEY]"),
    ])
    def test_invalid_models_files(self, tmp_path, text, message):
        path = tmp_path / "models.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            load_models_file(path)

    def test_json_models_file_overrides_registry_entry(self, tmp_path):
        path = tmp_path / "models.json"
        path.write_text('{"models": {"painters": {"file": "p.onnx"}}}')
        entry, = load_models_file(path)
        assert entry.architecture == "onnx"
        assert entry.spec.input_size == 256 and entry.spec.label == "Painters"
