"""The embedding server serves EfficientNet-Lite0 with the local engine's
vectors, on both protocols."""
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from server_helpers import cosine, model_input_jpeg

from orangecontrib.imageanalytics import protocol
from orangecontrib.imageanalytics.embedders.engines import get_runner
from orangecontrib.imageanalytics.embedders.inputs import prepare_input
from orangecontrib.imageanalytics.embedders.preprocess import to_model_input
from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.server.app import create_app
from orangecontrib.imageanalytics.server.config import (
    ServerConfig,
    resolve_entries,
)

SPEC = get_embedder("efficientnet-lite0")
pytest.importorskip(SPEC.weights.package)


@pytest.fixture(scope="module", params=["auto", "torch"])
def client(request, tmp_path_factory):
    entries = tuple(e for e in resolve_entries(ServerConfig(device="cpu"))
                    if e.spec.key == SPEC.key)
    assert entries and entries[0].architecture == "efficientnet_lite0"
    config = ServerConfig(device="cpu", entries=entries,
                          weights_dir=tmp_path_factory.mktemp("weights"),
                          engine=request.param)
    with TestClient(create_app(config)) as test_client:
        yield test_client


def test_served_vectors_equal_the_local_engine(client):
    (model,) = client.get("/models").json()["models"]
    assert model["key"] == SPEC.key and model["available"]
    assert model["dimension"] == SPEC.dimension
    data = model_input_jpeg(SPEC.key, seed=3)
    reply = client.post(f"/image/{SPEC.key}", content=data,
                        headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 200
    vector = reply.json()["embedding"]
    assert len(vector) == SPEC.dimension
    local = get_runner(SPEC)(to_model_input(
        prepare_input(data, SPEC)[None], SPEC))[0]
    assert cosine(vector, local) >= 0.9999
    batch = client.post(f"/v2/embed/{SPEC.key}",
                        content=protocol.encode_image_batch([data, data]),
                        headers={"Content-Type": protocol.REQUEST_TYPE})
    assert batch.status_code == 200
