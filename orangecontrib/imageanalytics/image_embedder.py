"""Public scripting API: turn images into vectors with a deep network.

>>> from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
>>> emb = ImageEmbedder(model="squeezenet")                   # doctest: +SKIP
>>> vectors = emb(["a.jpg", "b.png"])        # one vector or None per path
>>> embedded, skipped, n_skipped = emb(table, col="image")

Local embedders (SqueezeNet, EfficientNet-Lite0) run on this computer with
:class:`~.embedders.local.LocalEmbedder`; the others go to an embedding
server through :mod:`.embedders.remote`.  Vectors are kept in a persistent
cache, so embedding the same images again is almost free.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from orangecontrib.imageanalytics.embedders.cache import (
    EmbeddingCache,
    clear_cache,
    default_cache,
)
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.local import (
    EmbedOutcome,
    LocalEmbedder,
)
from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_EMBEDDER,
    get_embedder,
)
from orangecontrib.imageanalytics.table_images import (
    find_image_column,
    image_column,
    image_sources,
)

if TYPE_CHECKING:
    from Orange.data import Table

# Orange's data classes are imported where a table is handled: importing
# them takes over a second, which a script that embeds a list of paths
# (and the first vector of a new user) need not wait for.

__all__ = [
    "SKIP_REASON",
    "ImageEmbedder",
    "clear_cache",
    "find_image_column",
    "image_column",
    "image_sources",
    "with_reasons",
    "with_vectors",
]

#: Name of the meta column that holds the reason in the skipped table.
SKIP_REASON = "skip reason"

Progress = Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None


class ImageEmbedder:
    """Embed images with a pretrained deep network.

    Parameters
    ----------
    model
        Key of an embedder: "squeezenet", "efficientnet-lite0" (on this
        computer), "inception-v3", "vgg16", "vgg19", "painters", "deeploc",
        "openface" (on a server).
    server_url
        The embedding server for server embedders; by default
        ``$ORANGE_EMBEDDING_API_URL``, else Orange's public server
        (``https://api.garaza.io``), as in the older add-on and the widget:
        the images then leave this computer.  The first request of a
        process logs (INFO) where the images go.
    cache
        ``True`` for the persistent default cache, ``False`` for none, or an
        :class:`~.embedders.cache.EmbeddingCache`.
    exact
        Local embedders only: decode every pixel before resizing (slower;
        the default fast path stays within cosine 0.998 of it with
        SqueezeNet, 0.99 with EfficientNet-Lite0, as
        ``test_default_path_within_the_stated_cosine_of_exact`` in
        ``tests/test_cli.py`` checks).
    engine
        Local embedders only: "onnx" (ONNX Runtime, float32), "torch",
        "onnx-int8" (SqueezeNet's INT8 model, used only where it is checked
        to stay within cosine 0.99 of float32 on this processor, else
        float32 runs and a warning says why) or "auto": the fastest of these
        that is right here, measured once before the first job of 200
        images or more (float32 ONNX Runtime until then).

    Raises
    ------
    ValueError
        If ``model`` is unknown; the message lists the valid keys.
    EmbedderUnavailable
        If a server embedder is requested and no server client is available.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDER,
                 server_url: str | None = None, *,
                 cache: bool | EmbeddingCache = True,
                 exact: bool = False, engine: str = "auto"):
        self.spec = get_embedder(model)
        self.model = self.spec.key
        self.server_url = server_url
        self.exact = exact
        if cache is True:
            cache = default_cache()
        elif cache is False or cache is None:
            cache = None
        elif not isinstance(cache, EmbeddingCache):
            raise TypeError("cache must be True, False or an EmbeddingCache")
        self.cache: EmbeddingCache | None = cache
        if self.spec.local:
            self._backend = LocalEmbedder(self.spec, cache=cache, exact=exact,
                                          engine=engine)
        else:
            self._backend = self._remote_backend()

    def _remote_backend(self):
        try:
            # imported here: scripts that only embed locally do not need the
            # HTTP client stack
            from orangecontrib.imageanalytics.embedders.remote import (
                RemoteEmbedder,
            )
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith("embedders.remote"):
                raise EmbedderUnavailable(
                    f"{self.spec.label} runs on an embedding server, and this "
                    "installation has no client for it; use "
                    "model='squeezenet' to embed on this computer") from None
            raise
        return RemoteEmbedder(self.spec, self.server_url, cache=self.cache)

    @property
    def is_local(self) -> bool:
        """Whether images are embedded on this computer."""
        return self.spec.local

    def __repr__(self) -> str:
        where = "" if self.spec.local else f", server_url={self.server_url!r}"
        return f"ImageEmbedder(model={self.model!r}{where})"

    def close(self) -> None:
        """Release the backend's resources (connections)."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def clear_cache(self) -> None:
        """Remove all vectors from this embedder's cache."""
        (self.cache or default_cache()).clear()

    # --- embedding --------------------------------------------------------
    def __call__(self, data, col=None, callback: Callable | None = None):
        """Embed a list of paths/URLs or the image column of a table.

        Parameters
        ----------
        data : list of str or Table
            Paths or URLs, or a table with an image column.
        col : str or Variable, optional
            The table's image column; by default the first meta column
            marked ``type=image``.
        callback : callable, optional
            Called with the fraction done (0..1).

        Returns
        -------
        list of (np.ndarray or None)
            For a list: one vector per item, ``None`` where the image could
            not be embedded.
        (Table or None, Table or None, int)
            For a table: the embedded rows with columns ``n0 ...`` added,
            the skipped rows with their reason, and the number skipped.
        """
        progress = None
        if callback is not None:
            def progress(done: int, total: int) -> None:
                callback(done / total if total else 1.0)

        if _is_table(data):
            return self.embed_table(data, col, progress=progress)
        if isinstance(data, (str, os.PathLike)):
            data = [data]
        outcomes = self.embed_sources(data, progress=progress)
        return [outcome.vector for outcome in outcomes]

    def embed_sources(self, sources: Sequence, *, progress: Progress = None,
                      should_stop: ShouldStop = None) -> list[EmbedOutcome]:
        """Embed images given by paths or URLs.

        Returns one :class:`~.embedders.local.EmbedOutcome` per source, with
        a vector or the reason why there is none.  ``progress(done, total)``
        is called from this thread; when ``should_stop()`` turns true,
        :class:`~.embedders.errors.EmbeddingCancelled` is raised soon after.
        """
        sources = [os.fspath(s) if isinstance(s, os.PathLike) else s
                   for s in sources]
        return self._backend.embed(sources, progress=progress,
                                   should_stop=should_stop)

    def embed_table(self, table: Table, col=None, *,
                    progress: Progress = None, should_stop: ShouldStop = None
                    ) -> tuple[Table | None, Table | None, int]:
        """Embed the images of a table's image column.

        Returns
        -------
        embedded : Table or None
            The rows whose images were embedded, with hidden attribute
            columns ``n0 … n{d-1}`` added; class, metas, ids and the table's
            class are kept.  ``None`` if no image was embedded.
        skipped : Table or None
            The other rows with a meta column "skip reason"; ``None`` if
            there are none.
        n_skipped : int
            The number of skipped rows.
        """
        var = image_column(table, col)
        outcomes = self.embed_sources(image_sources(table, var),
                                      progress=progress,
                                      should_stop=should_stop)
        ok = np.array([o.vector is not None for o in outcomes], dtype=bool)
        ok_rows = np.flatnonzero(ok)
        bad_rows = np.flatnonzero(~ok)
        embedded = skipped = None
        if len(ok_rows):
            embedded = with_vectors(table, ok_rows,
                                    [outcomes[i].vector for i in ok_rows])
        if len(bad_rows):
            reasons = [outcomes[i].error or "unknown error" for i in bad_rows]
            skipped = with_reasons(table, bad_rows, reasons)
        return embedded, skipped, len(bad_rows)


#: rows of vectors copied into a table at once (bounds the extra memory)
_FILL_BLOCK = 4096


def _is_table(data) -> bool:
    """Whether ``data`` is an Orange table, without importing Orange: a
    table exists only once its module has been imported."""
    module = sys.modules.get("Orange.data.table")
    return module is not None and isinstance(data, module.Table)


def with_vectors(table: Table, rows: np.ndarray,
                 vectors: np.ndarray | Sequence[np.ndarray]) -> Table:
    """Rows ``rows`` of ``table`` with ``vectors`` appended as hidden
    attribute columns ``n0 … n{d-1}``, keeping the table's class, metas,
    ids and subclass.

    ``vectors`` is an array with a row per row of ``rows``, or a sequence of
    one-dimensional vectors: those are copied into the table a block at a
    time, never stacked into an array of their own first (100,000
    SqueezeNet vectors would be another 400 MB at the peak).
    """
    import scipy.sparse as sp
    from Orange.data import ContinuousVariable, Domain
    from Orange.data.util import get_unique_names

    if len(vectors) != len(rows):
        raise ValueError(f"{len(vectors)} vectors for {len(rows)} rows")
    width = len(vectors[0]) if len(vectors) else 0
    domain = table.domain
    names = get_unique_names(domain, [f"n{i}" for i in range(width)])
    columns = []
    for name in names:
        var = ContinuousVariable(name)
        # hidden: views that list features do not drown in a thousand columns
        var.attributes["hidden"] = True
        columns.append(var)
    new_domain = Domain(domain.attributes + tuple(columns), domain.class_vars,
                        domain.metas)
    # from_table on the input's class keeps ids, attributes and the subclass;
    # the new columns come out unknown and are filled in below
    out = table.from_table(new_domain, table, row_indices=rows)
    start = len(domain.attributes)
    with out.unlocked(out.X):
        if sp.issparse(out.X):
            out.X = sp.hstack([out.X[:, :start], sp.csr_matrix(np.vstack(vectors))],
                              format="csr")
        else:
            for k in range(0, len(rows), _FILL_BLOCK):
                block = vectors[k:k + _FILL_BLOCK]
                out.X[k:k + len(block), start:] = \
                    block if isinstance(block, np.ndarray) else np.vstack(block)
    return out


def with_reasons(table: Table, rows: np.ndarray,
                 reasons: list[str]) -> Table:
    """Rows ``rows`` of ``table`` with a meta column :data:`SKIP_REASON`
    holding why each was skipped."""
    from Orange.data import Domain, StringVariable
    from Orange.data.util import get_unique_names

    domain = table.domain
    reason_var = StringVariable(get_unique_names(domain, SKIP_REASON))
    new_domain = Domain(domain.attributes, domain.class_vars,
                        domain.metas + (reason_var,))
    out = table.from_table(new_domain, table, row_indices=rows)
    if len(rows):   # an empty table's arrays may be shared and read-only
        with out.unlocked(out.metas):
            out.metas[:, -1] = reasons
    return out
