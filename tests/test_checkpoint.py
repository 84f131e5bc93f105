"""Reading torch checkpoints without torch, against torch.load."""
import io
import pickle

import numpy as np
import pytest
import torch

from orangecontrib.imageanalytics.embedders.checkpoint import (
    CheckpointError,
    load_state_dict,
)


def saved(state, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer, **kwargs)
    return buffer.getvalue()


def example_state() -> dict:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=torch.Generator()
                                   .manual_seed(0)),
        "transposed": base.t(),                    # strided view
        "slice": base[1:3, 2:],                    # offset into a storage
        "shared": base,                            # same storage as above
        "steps": torch.tensor(7),                  # 0-d int64
        "half": torch.ones(3, dtype=torch.float16),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_reads_what_torch_saves(legacy):
    state = example_state()
    data = saved(state, _use_new_zipfile_serialization=not legacy)
    arrays = load_state_dict(data)
    assert set(arrays) == set(state)
    for name, tensor in state.items():
        assert arrays[name].dtype == tensor.numpy().dtype, name
        np.testing.assert_array_equal(arrays[name], tensor.numpy())


def test_refuses_other_objects():
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    for data in (pickle.dumps({"x": Evil()}),
                 saved({"x": torch.zeros(1), "y": Evil()},
                       _use_new_zipfile_serialization=True)):
        with pytest.raises(CheckpointError):
            load_state_dict(data)


def test_refuses_truncated_and_foreign_files():
    data = saved(example_state(), _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError):
        load_state_dict(data[:-10])
    with pytest.raises(CheckpointError):
        load_state_dict(b"\x89PNG not a checkpoint")
    with pytest.raises(CheckpointError):
        load_state_dict(pickle.dumps(1234))
