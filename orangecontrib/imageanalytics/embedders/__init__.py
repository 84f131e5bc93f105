"""Embedders: turn images into feature vectors, locally or on a server."""
from orangecontrib.imageanalytics.embedders.errors import (
    EmbeddingCancelled, EmbeddingError, EmbedderUnavailable, ServerUnreachable,
)
from orangecontrib.imageanalytics.embedders.registry import (
    EMBEDDERS, EmbedderSpec, get_embedder,
)

__all__ = [
    "EMBEDDERS", "EmbedderSpec", "get_embedder", "EmbeddingCancelled",
    "EmbeddingError", "EmbedderUnavailable", "ServerUnreachable",
]
