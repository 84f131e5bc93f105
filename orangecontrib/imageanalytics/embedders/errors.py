"""Exceptions shared by the local engine, the remote client and the widgets."""


class EmbeddingError(Exception):
    """Embedding as a whole cannot go on (as opposed to one bad image)."""


class EmbeddingCancelled(EmbeddingError):
    """The caller asked to stop; work finished so far is kept in the cache."""


class EmbedderUnavailable(EmbeddingError):
    """The embedder cannot run here, e.g. its weights file is missing.

    The message says which file is missing and how to get it.
    """


class ServerUnreachable(EmbeddingError):
    """The embedding server cannot be reached or keeps failing."""
