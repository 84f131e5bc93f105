"""Every embedder in the registry, checked against COMPAT.md."""
import importlib.resources
import importlib.util
import re

import numpy as np
import pytest

from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_EMBEDDER,
    EMBEDDERS,
    LEGACY_ORDER,
    LOCAL_COPIES,
    PUBLIC_SERVER_URL,
    EmbedderSpec,
    embedder_keys,
    get_embedder,
)

# input sizes of the older add-on's embedders (COMPAT.md)
INPUT_SIZES = {
    "inception-v3": 299, "squeezenet": 227, "vgg16": 224, "vgg19": 224,
    "painters": 256, "deeploc": 64, "openface": 256,
    # new in this add-on
    "efficientnet-lite0": 224,
}
LOCAL = {"squeezenet", "efficientnet-lite0"}

SPECS = pytest.mark.parametrize("spec", list(EMBEDDERS.values()),
                                ids=list(EMBEDDERS))


def test_registry_holds_the_known_embedders():
    assert set(EMBEDDERS) == set(INPUT_SIZES)
    assert set(embedder_keys()) == set(EMBEDDERS) | set(LOCAL_COPIES)
    # a local copy is listed right after the server embedder it copies
    keys = embedder_keys()
    for key, spec in LOCAL_COPIES.items():
        assert keys.index(key) == keys.index(spec.server_key) + 1
    assert DEFAULT_EMBEDDER == "squeezenet"
    # cb_embedder_current_id of old workflows indexes this order
    assert LEGACY_ORDER == ("inception-v3", "squeezenet", "vgg16", "vgg19",
                            "painters", "deeploc", "openface")


@SPECS
def test_spec(spec: EmbedderSpec):
    assert get_embedder(spec.key) is spec
    assert spec.key == spec.key.strip().lower() and " " not in spec.key
    assert spec.input_size == INPUT_SIZES[spec.key]
    assert spec.input_shape == (spec.input_size, spec.input_size)
    assert spec.label.strip() and spec.description.strip()
    assert spec.trained_on.strip()
    assert isinstance(spec.dimension, int) and spec.dimension > 0
    assert spec.channel_order in ("RGB", "BGR")
    assert len(spec.mean) == len(spec.std) == 3
    assert all(s > 0 for s in spec.std) and spec.scale > 0
    # normalised pixels of 0..255 input stay in a sane range
    low = (0 - np.array(spec.mean)) / np.array(spec.std)
    high = (255 * spec.scale - np.array(spec.mean)) / np.array(spec.std)
    assert np.all(low < 0) and np.all(high > 0)
    assert spec.local == (spec.key in LOCAL)
    where = "local" if spec.local else "server"
    assert spec.display_name == f"{spec.label} ({where})"
    assert spec.preprocessing_version >= 1
    with pytest.raises(AttributeError):
        spec.key = "other"                      # frozen


@pytest.mark.parametrize("spec", [s for s in EMBEDDERS.values() if s.local],
                         ids=lambda s: s.key)
def test_local_embedders_have_weights_and_a_model(spec: EmbedderSpec):
    source = spec.weights
    assert source is not None and source.package
    if importlib.util.find_spec(source.package) is None:
        pytest.skip(f"{source.package} is not installed")
    assert (importlib.resources.files(source.package)
            / source.filename).is_file()
    import torch

    from orangecontrib.imageanalytics.embedders.engines import (
        build_torch_model,
    )
    with torch.inference_mode():
        out = build_torch_model(spec)(torch.zeros(1, 3, *spec.input_shape))
    assert out.shape == (1, spec.dimension)


@pytest.mark.parametrize(
    "spec", [s for s in EMBEDDERS.values() if s.weights and s.weights.url],
    ids=lambda s: s.key)
def test_downloadable_weights_name_their_hash(spec: EmbedderSpec):
    source = spec.weights
    # the whole SHA-256, whose first 8 digits torchvision puts in the name
    assert re.fullmatch(r"[0-9a-f]{64}", source.sha256)
    assert f"-{source.sha256[:8]}." in source.filename
    assert source.url and source.url.endswith(source.filename)


@pytest.mark.parametrize("key", ["nope", "SqueezeNet", "", None, 1])
def test_unknown_key_names_valid_keys(key):
    with pytest.raises(ValueError) as info:
        get_embedder(key)
    for valid in embedder_keys():
        assert valid in str(info.value)


def test_local_copies_run_the_server_networks_here():
    assert set(LOCAL_COPIES) == {"inception-v3-local", "vgg16-local",
                                 "vgg19-local"}
    for key, copy in LOCAL_COPIES.items():
        original = EMBEDDERS[copy.server_key]
        assert key == f"{original.key}-local" and get_embedder(key) is copy
        assert copy.local and not original.local
        assert copy.display_name == f"{original.label} (local)"
        assert original.display_name == f"{original.label} (server)"
        # same network, weights and preprocessing: only where it runs differs
        for field in ("label", "input_size", "dimension", "channel_order",
                      "scale", "mean", "std", "weights",
                      "preprocessing_version"):
            assert getattr(copy, field) == getattr(original, field), field
        assert "this computer" in copy.description
        # the server serves EMBEDDERS; copies are not served under new names
        assert key not in EMBEDDERS


def test_public_server_is_orange_s():
    assert PUBLIC_SERVER_URL.startswith("https://")
    import inspect

    from Orange.misc import server_embedder
    # Orange's own client documents the host it talks to
    host = PUBLIC_SERVER_URL.removeprefix("https://")
    assert host in inspect.getsource(server_embedder)
