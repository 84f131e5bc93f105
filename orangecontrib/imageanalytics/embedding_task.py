"""What the Image Embedding widget does, without Qt.

The widget only wires this module: which columns may hold images, where
server embedders send them, whether a local copy still waits for its
weights, and the two tasks it runs in a worker thread, :func:`run` (embed a
table) and :func:`download` (fetch a local copy's weights).  Both take a
``state`` with Orange's ``TaskState`` methods, so a script can call them with
any object that has those.

>>> from orangecontrib.imageanalytics.embedding_task import run
>>> result = run(table, table.domain["image"], "squeezenet", None,
...              state)                                     # doctest: +SKIP
>>> result.embedded, result.skip_reasons                    # doctest: +SKIP
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from orangecontrib.imageanalytics.counts_text import SkipReasons, count_reasons
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.registry import (
    DEFAULT_EMBEDDER,
    LEGACY_ORDER,
    LOCAL_COPIES,
    PUBLIC_SERVER_URL,
    SERVER_URL_ENV,
    default_server_url,
    get_embedder,
)
from orangecontrib.imageanalytics.embedders.weights import weights_path
from orangecontrib.imageanalytics.table_images import (
    column_texts,
    image_column,
    image_columns,
    image_sources,
)

if TYPE_CHECKING:
    from Orange.data import Table, Variable

__all__ = [
    "Downloaded",
    "EmbedderFactory",
    "Result",
    "count_images",
    "download",
    "host",
    "image_columns",
    "legacy_embedder_key",
    "migrate_settings",
    "public_server_url",
    "run",
    "server_address",
    "server_note",
    "weights_missing",
]

#: ``(model=..., server_url=...) -> engine``; the engine has ``embed_sources``
#: (and may have ``close``) as
#: :class:`~orangecontrib.imageanalytics.image_embedder.ImageEmbedder`.
EmbedderFactory = Callable[..., Any]


class State(Protocol):
    """What the tasks need of Orange's ``TaskState``."""
    def set_progress_value(self, value: float) -> None: ...
    def set_status(self, text: str) -> None: ...
    def is_interruption_requested(self) -> bool: ...


# --- policies -----------------------------------------------------------------

def count_images(data: Table | None, column: Variable | None) -> int:
    """How many rows of ``data`` name an image in ``column``: the images an
    embedder is given (empty cells are skipped without being sent)."""
    if data is None or column is None:
        return 0
    return sum(text is not None for text in column_texts(data, column))


def public_server_url() -> str:
    """Orange's public embedding server, unless ``$ORANGE_EMBEDDING_API_URL``
    names another (as in Orange's own embedding client)."""
    return os.environ.get(SERVER_URL_ENV, "").strip() or PUBLIC_SERVER_URL


def server_address(own_server: bool, server_url: str) -> str:
    """Where server embedders send the images.

    Orange's public server (:func:`public_server_url`) unless the user runs
    their own; an empty address of their own means
    :func:`~orangecontrib.imageanalytics.embedders.registry.default_server_url`.
    """
    if own_server:
        return server_url.strip() or default_server_url()
    return public_server_url()


def server_note(url: str, own_server: bool) -> str:
    """What the user is told about where server embedders send images."""
    if not own_server and url == PUBLIC_SERVER_URL:
        return (f"Your images leave this computer: they are sent over the "
                f"internet to Orange's public server at {url} to be "
                "embedded. To keep them here, choose an embedder marked "
                "(local).")
    # the server at that address is the user's choice; this add-on's own
    # server keeps vectors, never the images
    return (f"Images are sent to {url} to be embedded (this add-on's "
            "embedding server keeps no copy of them).")


def host(url: str) -> str:
    """The host (and port) of ``url``, as a person names a server."""
    return url.split("//", 1)[-1].split("/", 1)[0]


def weights_missing(key: str) -> bool:
    """Whether ``key`` is a local copy whose weights file is not here yet.

    Only looks whether the file exists (cheap enough for the GUI thread);
    its hash is checked when the model loads, in the worker.
    """
    spec = get_embedder(key)
    if spec.key not in LOCAL_COPIES:
        return False
    try:
        return not weights_path(spec).is_file()
    except (EmbedderUnavailable, OSError):
        return True


def legacy_embedder_key(value: Any) -> Any:
    """Key of the embedder that an old workflow chose by index (or key)."""
    if isinstance(value, str):
        return value  # a key already; unknown keys are reported on load
    try:
        index = int(value)
    except (TypeError, ValueError):
        return DEFAULT_EMBEDDER
    # -1 is a combo with nothing selected, not the last embedder
    if not 0 <= index < len(LEGACY_ORDER):
        return DEFAULT_EMBEDDER
    return LEGACY_ORDER[index]


def migrate_settings(settings: dict, version: int | None) -> None:
    """Bring the widget's stored ``settings`` of ``version`` up to date."""
    # version 2 sent images to server_url, or with none to the local default
    # server: keep that; the older add-on's workflows (below) used Orange's
    # public server, now the default
    if version == 2:
        settings.setdefault("own_server", True)
    # version 1 (or none): the older add-on's index-based settings
    if not version or version < 2:
        index = settings.pop("cb_embedder_current_id", None)
        if "embedder" not in settings and index is not None:
            settings["embedder"] = legacy_embedder_key(index)
        index = settings.pop("cb_image_attr_current_id", None)
        if isinstance(index, int) and index >= 0:
            settings["legacy_image_attr_index"] = index
        if "_auto_apply" in settings:
            settings["auto_apply"] = bool(settings.pop("_auto_apply"))


# --- embedding ----------------------------------------------------------------

@dataclass
class Result:
    """What :func:`run` gives back."""
    embedded: Table | None
    skipped: Table | None
    n_embedded: int
    n_skipped: int
    embedder: str
    #: ``(reason, count)``, most common first
    skip_reasons: SkipReasons = field(default_factory=list)


def run(data: Table, image_attr: Variable, embedder_key: str,
        server_url: str | None, state: State, *,
        embedder_factory: EmbedderFactory | None = None) -> Result:
    """Embed the images of ``data``; the widget runs this in a worker thread.

    Parameters
    ----------
    data
        Input table (any subclass); the outputs keep its type and columns,
        as :meth:`ImageEmbedder.embed_table` gives them to a script.
    image_attr
        The column with image paths or URLs.
    embedder_key
        A key of :data:`~orangecontrib.imageanalytics.embedders.registry.EMBEDDERS`.
    server_url
        The embedding server's address; ignored by local embedders.
    state
        Progress is reported through it and the embedder stops soon after
        ``state.is_interruption_requested()`` turns true.
    embedder_factory
        Builds the engine from ``model`` and ``server_url``;
        :class:`~orangecontrib.imageanalytics.image_embedder.ImageEmbedder`
        when not given.

    Returns
    -------
    Result
        The tables and, from the engine's outcome for each image, why the
        skipped ones were skipped.

    Raises
    ------
    EmbeddingCancelled
        When interrupted.
    ServerUnreachable
        When a server embedder cannot reach its server.
    EmbedderUnavailable
        When the embedder cannot run here (e.g. a missing weights file).
    """
    # imported here because it loads the deep-learning stack, which the
    # canvas should not pay for when it only lists the widgets
    from orangecontrib.imageanalytics.image_embedder import (
        ImageEmbedder,
        with_reasons,
        with_vectors,
    )

    spec = get_embedder(embedder_key)
    var = image_column(data, image_attr)
    factory = embedder_factory or ImageEmbedder
    embedder = factory(model=spec.key,
                       server_url=None if spec.local else server_url)

    def progress(done: int, total: int) -> None:
        if total:
            state.set_progress_value(100 * done / total)
            state.set_status(f"Embedding: {done} of {total} images")

    state.set_status(f"Embedding with {spec.display_name}")
    try:
        outcomes = embedder.embed_sources(
            image_sources(data, var), progress=progress,
            should_stop=state.is_interruption_requested)
    finally:
        # the remote client keeps connections open until closed
        close = getattr(embedder, "close", None)
        if close is not None:
            close()
    ok = np.array([outcome.vector is not None for outcome in outcomes],
                  dtype=bool)
    ok_rows, bad_rows = np.flatnonzero(ok), np.flatnonzero(~ok)
    reasons = [outcomes[i].error or "unknown error" for i in bad_rows]
    # the same tables as ImageEmbedder.embed_table gives a script
    embedded = with_vectors(data, ok_rows, [outcomes[i].vector for i in ok_rows]) \
        if len(ok_rows) else None
    skipped = with_reasons(data, bad_rows, reasons) if reasons else None
    return Result(embedded=embedded, skipped=skipped,
                  n_embedded=len(ok_rows), n_skipped=len(bad_rows),
                  embedder=spec.key,
                  skip_reasons=count_reasons(reasons))


# --- weights ------------------------------------------------------------------

@dataclass
class Downloaded:
    """What :func:`download` gives back."""
    embedder: str
    path: str


def download(embedder_key: str, state: State) -> Downloaded:
    """Download the weights of a local copy; the widget runs this in a
    worker thread.

    Progress goes to ``state``; an interruption stops the download and keeps
    what arrived, so the next call resumes it.

    Raises
    ------
    DownloadError
        With a message for the user when the download fails.
    DownloadCancelled
        When interrupted.
    """
    from orangecontrib.imageanalytics.embedders.weights import (
        download_weights,
    )
    spec = get_embedder(embedder_key)
    shown = [-1]

    def progress(done: int, total: int | None) -> None:
        # called for every few kilobytes: report whole percents (or MB)
        step = int(100 * done / total) if total else done // 10**6
        if step == shown[0]:
            return
        shown[0] = step
        if total:
            state.set_progress_value(step)
        of = f" of {total / 1e6:.0f}" if total else ""
        state.set_status(f"Downloading {spec.label}: "
                         f"{done / 1e6:.0f}{of} MB")

    state.set_status(f"Downloading {spec.label}")
    path = download_weights(spec, progress=progress,
                            should_stop=state.is_interruption_requested)
    return Downloaded(spec.key, str(path))
