"""Embedders: turn images into feature vectors, locally or on a server."""
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
    EmbeddingError,
    ServerUnreachable,
)
from orangecontrib.imageanalytics.embedders.registry import (
    EMBEDDERS,
    EmbedderSpec,
    get_embedder,
)

__all__ = [
    "EMBEDDERS",
    "EmbedderSpec",
    "EmbedderUnavailable",
    "EmbeddingCancelled",
    "EmbeddingError",
    "ServerUnreachable",
    "get_embedder",
]
