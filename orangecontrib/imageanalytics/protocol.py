"""The batch protocol's wire format, shared by the server and the client
(:mod:`orangecontrib.imageanalytics.server` and
:mod:`orangecontrib.imageanalytics.embedders.remote`).

Request: ``POST /v2/embed/{model}`` with ``Content-Type:
application/x-orange-image-batch`` and this body (integers little-endian)::

    b"OIB1"                     magic
    uint32 count                number of images, N
    uint32 length[N]            byte length of each image
    bytes  image[0] ... image[N-1]   the encoded images (JPEG, PNG, ...)

Reply, with ``Content-Type: application/x-orange-embeddings``::

    b"OEB1"                     magic
    uint32 header_length        H
    bytes  header[H]            UTF-8 JSON, padded with spaces so that the
                                vectors start at a multiple of 8 bytes
    vectors                     N × dimension little-endian float32 (or
                                float16 with ``?dtype=float16``), row i for
                                image i; rows of failed images are zeros

The header holds ``{"model": key, "count": N, "dimension": D, "dtype":
"float32", "errors": {"3": "reason", ...}}``: image indices (as strings)
that could not be embedded, with a reason a person understands.

No multipart parsing is involved, so images are never spooled to disk and
parsing costs one pass over the lengths.  Errors that concern the whole
request (unknown model, overload, authorisation, size) are JSON bodies
``{"error": message, "code": code}`` with an HTTP error status.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "BATCH_PATH",
    "DTYPES",
    "ORANGE_PATH",
    "PROTOCOL_VERSION",
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "ProtocolError",
    "decode_embeddings",
    "decode_image_batch",
    "encode_embeddings",
    "encode_image_batch",
]

#: Version of this protocol, advertised by ``GET /models``.
PROTOCOL_VERSION = 2
#: Path of the batch protocol; ``{model}`` is the embedder key.
BATCH_PATH = "/v2/embed/{model}"
#: Path of Orange's single-image protocol.
ORANGE_PATH = "/image/{model}"
REQUEST_TYPE = "application/x-orange-image-batch"
RESPONSE_TYPE = "application/x-orange-embeddings"
#: Vector encodings a client may ask for with ``?dtype=``.
DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}

_REQUEST_MAGIC = b"OIB1"
_RESPONSE_MAGIC = b"OEB1"
_U32 = struct.Struct("<I")

Buffer = bytes | bytearray | memoryview


class ProtocolError(ValueError):
    """A body does not follow the batch protocol; the message says how."""


def encode_image_batch(images: Sequence[Buffer]) -> bytes:
    """Pack encoded images into one batch-protocol request body."""
    lengths = np.fromiter((len(image) for image in images), dtype="<u4",
                          count=len(images))
    return b"".join([_REQUEST_MAGIC, _U32.pack(len(images)),
                     lengths.tobytes(), *images])


def decode_image_batch(body: Buffer, *, max_images: int) -> list[memoryview]:
    """Split a batch-protocol request body into the encoded images.

    Returns views into ``body`` (no copies).

    Raises
    ------
    ProtocolError
        If the body is not a batch, holds more than ``max_images`` images, or
        its lengths do not add up.
    """
    view = memoryview(body)
    if len(view) < 8 or view[:4] != _REQUEST_MAGIC:
        raise ProtocolError(
            "not an image batch: the body must start with b'OIB1' "
            "and the number of images")
    count = _U32.unpack_from(view, 4)[0]
    if count == 0:
        raise ProtocolError("the batch holds no images")
    if count > max_images:
        raise ProtocolError(
            f"the batch holds {count} images; at most {max_images} are "
            "accepted per request")
    start = 8 + 4 * count
    if len(view) < start:
        raise ProtocolError("the batch ends inside its table of lengths")
    lengths = np.frombuffer(view, dtype="<u4", count=count, offset=8)
    ends = start + np.cumsum(lengths, dtype=np.int64)
    if ends[-1] != len(view):
        raise ProtocolError(
            f"the image lengths add up to {int(ends[-1]) - start} bytes but "
            f"the batch carries {len(view) - start}")
    starts = np.concatenate(([start], ends[:-1]))
    return [view[int(a):int(b)] for a, b in zip(starts, ends)]


def encode_embeddings(vectors: np.ndarray, errors: Mapping[int, str], *,
                      model: str, dtype: str = "float32") -> bytes:
    """Pack vectors (``N×D``) and per-image errors into a reply body."""
    try:
        wire = DTYPES[dtype]
    except KeyError:
        raise ProtocolError(
            f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}"
        ) from None
    vectors = np.asarray(vectors)
    header = json.dumps({
        "model": model, "count": int(vectors.shape[0]),
        "dimension": int(vectors.shape[1]), "dtype": dtype,
        "errors": {str(index): reason for index, reason in errors.items()},
    }, separators=(",", ":")).encode("utf-8")
    header += b" " * (-(8 + len(header)) % 8)
    payload = np.ascontiguousarray(vectors, dtype=wire).tobytes()
    return b"".join([_RESPONSE_MAGIC, _U32.pack(len(header)), header, payload])


def decode_embeddings(body: Buffer) -> tuple[np.ndarray, dict[int, str], dict]:
    """Unpack a reply body.

    Returns
    -------
    vectors
        ``float32`` ``N×D`` (a copy, writable).
    errors
        Index of each failed image -> reason.
    header
        The whole JSON header.

    Raises
    ------
    ProtocolError
        If the body is not a well-formed reply.
    """
    view = memoryview(body)
    if len(view) < 8 or view[:4] != _RESPONSE_MAGIC:
        raise ProtocolError("not an embeddings reply")
    length = _U32.unpack_from(view, 4)[0]
    try:
        header = json.loads(bytes(view[8:8 + length]))
        count, dimension = int(header["count"]), int(header["dimension"])
        wire = DTYPES[header["dtype"]]
        errors = {int(key): str(value)
                  for key, value in header.get("errors", {}).items()}
    except (ValueError, KeyError, TypeError) as error:
        raise ProtocolError(f"malformed reply header: {error}") from None
    offset = 8 + length
    if len(view) - offset != count * dimension * wire.itemsize:
        raise ProtocolError(
            f"reply carries {len(view) - offset} bytes of vectors, expected "
            f"{count} × {dimension} {header['dtype']}")
    vectors = np.frombuffer(view, dtype=wire, count=count * dimension,
                            offset=offset).reshape(count, dimension)
    return vectors.astype(np.float32), errors, header
