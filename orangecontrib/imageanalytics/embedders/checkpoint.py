"""Read a PyTorch state dict into NumPy arrays without importing torch.

``torch.load(weights_only=True)`` does the same, but only after importing
torch, and torch is an optional extra that EfficientNet-Lite0 must run
without.  Where it is installed, importing it costs more than the whole
first vector.  Measured on a shared 2-core machine (2026-12-02, torch 2.13):
``python -X importtime -c "import torch"`` took 1.5-2.2 s at load 2.3 and
4.8-6.5 s at load 3.5, where ``torch.load`` of the EfficientNet-Lite0 file
took 0.33 s more and this reader 0.11 s; the whole first-vector process of
EfficientNet-Lite0 (``bench_local.py --first-vector PHOTO --repeat 5``)
took 0.7-0.9 s at load 2.3.

A state dict saved by ``torch.save`` holds nothing but tensors, so this
reader rebuilds them as NumPy arrays directly.  Both of torch's formats are
read: the zip archive (torch ≥ 1.6) and the older single stream (magic
number, protocol, system info, the pickled dict, then the raw storages).

The unpickler accepts only the few globals that a state dict of tensors
needs, so a tampered file cannot run code when it is loaded.
"""
from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import ClassVar

import numpy as np

__all__ = ["CheckpointError", "load_state_dict"]

# torch/serialization.py: written first in the legacy format
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """The file is not a state dict of tensors that this reader knows."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage named in the pickle; its bytes arrive later."""

    def __init__(self, dtype: np.dtype, key: str, numel: int):
        self.dtype = dtype
        self.key = key
        self.numel = numel
        self.array: np.ndarray | None = None


class _Tensor:
    """What ``_rebuild_tensor_v2`` would build, resolved once storages are
    read."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise CheckpointError(f"storage {self.storage.key} is missing")
        if not self.size:
            return np.array(flat[self.offset])
        extent = 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset + extent > len(flat) or min(self.stride) < 0:
            raise CheckpointError("a tensor lies outside its storage")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size,
            strides=tuple(s * item for s in self.stride), writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor without a storage")
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    _GLOBALS: ClassVar[dict[tuple[str, str], object]] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
    }

    def __init__(self, file, storages: dict[str, _Storage], loader=None):
        super().__init__(file)
        self._storages = storages
        self._loader = loader

    def find_class(self, module: str, name: str):
        try:
            return self._GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"unexpected object {module}.{name} in the checkpoint"
            ) from None

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or saved_id[0] != "storage":
            raise CheckpointError("unexpected persistent object")
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError("unknown storage type")
        key = str(key)
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(
                storage_type.dtype, key, int(numel))
            if self._loader is not None:
                self._loader(storage)
        return storage


def _resolve(obj):
    if isinstance(obj, _Tensor):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {str(k): _resolve(v) for k, v in obj.items()}
    raise CheckpointError(f"unexpected {type(obj).__name__} in the state dict")


def _load_legacy(data: bytes) -> dict[str, np.ndarray]:
    stream = io.BytesIO(data)
    plain = _Unpickler(stream, {})
    if plain.load() != _LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint")
    if _Unpickler(stream, {}).load() != _LEGACY_PROTOCOL:
        raise CheckpointError("unknown checkpoint protocol")
    sys_info = _Unpickler(stream, {}).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
        raise CheckpointError("only little-endian checkpoints are read")
    storages: dict[str, _Storage] = {}
    state = _Unpickler(stream, storages).load()
    keys = _Unpickler(stream, {}).load()
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise CheckpointError(f"storage {key} is not used")
        header = stream.read(8)
        numel = int.from_bytes(header, "little", signed=True)
        if len(header) != 8 or numel != storage.numel:
            raise CheckpointError(f"storage {key} has the wrong size")
        raw = stream.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise CheckpointError("the checkpoint is truncated")
        storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return _resolve(state)


def _load_zip(data: bytes) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")
                   or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError("not a PyTorch checkpoint")
        prefix = pickles[0][:-len("data.pkl")]

        def load_storage(storage: _Storage) -> None:
            try:
                raw = archive.read(f"{prefix}data/{storage.key}")
            except KeyError:
                raise CheckpointError(
                    f"storage {storage.key} is missing") from None
            storage.array = np.frombuffer(raw, dtype=storage.dtype)
            if len(storage.array) != storage.numel:
                raise CheckpointError(
                    f"storage {storage.key} has the wrong size")

        with archive.open(pickles[0]) as f:
            state = _Unpickler(f, {}, load_storage).load()
    return _resolve(state)


def load_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """Tensors of a state dict saved with ``torch.save``, as NumPy arrays.

    Parameters
    ----------
    data
        The file's bytes.

    Returns
    -------
    dict
        Parameter name to a contiguous NumPy array of the tensor's dtype and
        shape.

    Raises
    ------
    CheckpointError
        If the bytes are not a state dict of tensors, or hold any other
        object.
    """
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _load_zip(data)
        return _load_legacy(data)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            IndexError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"the checkpoint cannot be read: {err}") from err
