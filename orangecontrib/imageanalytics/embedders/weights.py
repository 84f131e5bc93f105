"""The one loader for weight files that users download.

Every embedder whose weights are not shipped with a package (Inception v3,
VGG16, VGG19 and models added later) reads its file through
:func:`load_state_dict_checked`, which checks the file's SHA-256 against the
registry and, when the file is missing or damaged, raises
:class:`~orangecontrib.imageanalytics.embedders.errors.EmbedderUnavailable`
naming the exact file and where to get it.  :func:`download_weights` fetches
a file safely (:mod:`.download`): resumable, hash-checked, then renamed into
place, so a broken download never replaces a good file.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from orangecontrib.imageanalytics.embedders.download import (
    DownloadError,
    download_file,
    sha256_file,
)
from orangecontrib.imageanalytics.embedders.download import (
    hash_matches as _hash_matches,
)
from orangecontrib.imageanalytics.embedders.errors import EmbedderUnavailable
from orangecontrib.imageanalytics.embedders.registry import (
    EmbedderSpec,
    WeightsSource,
)

__all__ = [
    "WEIGHTS_DIR_ENV",
    "check_weights_file",
    "default_weights_dir",
    "download_weights",
    "load_state_dict_checked",
    "sha256_file",
    "weights_path",
]

#: Environment variable that overrides the default weights folder.
WEIGHTS_DIR_ENV = "ORANGE_EMBEDDING_WEIGHTS_DIR"

PathLike = str | os.PathLike


def default_weights_dir() -> Path:
    """Folder for downloaded weights: ``$ORANGE_EMBEDDING_WEIGHTS_DIR``, else
    a ``weights`` folder in the user's data folder."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir
    return Path(user_data_dir("Orange3-ImageAnalytics", appauthor=False)) \
        / "weights"


def _source(spec: EmbedderSpec) -> WeightsSource:
    if spec.weights is None:
        raise EmbedderUnavailable(
            f"{spec.label} has no weights file declared; "
            "add one in the server's models configuration.")
    if spec.weights.package:
        raise EmbedderUnavailable(
            f"The weights of {spec.label} come with the Python package "
            f"'{spec.weights.package}', not from a weights folder.")
    return spec.weights


def weights_path(spec: EmbedderSpec,
                 weights_dir: PathLike | None = None) -> Path:
    """Where the weights file of ``spec`` is expected.

    An absolute ``spec.weights.filename`` is used as it is; a relative one is
    taken inside ``weights_dir`` (default: :func:`default_weights_dir`).
    """
    filename = Path(_source(spec).filename).expanduser()
    if filename.is_absolute():
        return filename
    folder = Path(weights_dir).expanduser() if weights_dir is not None \
        else default_weights_dir()
    return folder / filename


def _where_to_get(spec: EmbedderSpec, path: Path) -> str:
    url = spec.weights.url if spec.weights else None
    if url:
        return (f"Press Download in the Image Embedding widget, or run "
                f"'python -m orangecontrib.imageanalytics download "
                f"{spec.server_key or spec.key}', or download {url} and save "
                f"it as {path}.")
    return f"Put the file at {path}."


def check_weights_file(spec: EmbedderSpec,
                       weights_dir: PathLike | None = None) -> Path:
    """Return the path of the weights file after checking it exists and
    matches the registry's SHA-256.

    Raises
    ------
    EmbedderUnavailable
        If the file is missing, unreadable or has a different hash; the
        message names the file and where to get it.
    """
    source = _source(spec)
    path = weights_path(spec, weights_dir)
    if not path.is_file():
        raise EmbedderUnavailable(
            f"The weights of {spec.label} are missing: {path} does not "
            f"exist. {_where_to_get(spec, path)}")
    try:
        digest = sha256_file(path)
    except OSError as error:
        raise EmbedderUnavailable(
            f"The weights of {spec.label} cannot be read from {path}: "
            f"{error.strerror or error}.") from error
    if not _hash_matches(digest, source.sha256):
        raise EmbedderUnavailable(
            f"The weights file {path} of {spec.label} is corrupt or a "
            f"different file: its SHA-256 is {digest}, expected "
            f"{source.sha256}{'...' if len(source.sha256) < 64 else ''}. "
            f"Delete it and get it again. {_where_to_get(spec, path)}")
    return path


def load_state_dict_checked(spec: EmbedderSpec,
                            weights_dir: PathLike | None = None) -> dict:
    """Load the torch state dict of ``spec`` after checking its SHA-256.

    The file is loaded with ``weights_only=True``: tensors and plain
    containers only, never arbitrary pickled objects.

    Parameters
    ----------
    spec
        The embedder; ``spec.weights`` names the file and its hash.
    weights_dir
        Folder for relative file names (default :func:`default_weights_dir`).

    Returns
    -------
    dict
        Parameter name -> tensor, on the CPU.

    Raises
    ------
    EmbedderUnavailable
        If the file is missing, corrupt or not a state dict.
    """
    import torch

    path = check_weights_file(spec, weights_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise EmbedderUnavailable(
            f"The weights file {path} of {spec.label} cannot be loaded as a "
            f"torch state dict: {error}") from error
    # some checkpoints wrap the parameters
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) \
            or not all(isinstance(value, torch.Tensor)
                       for value in state.values()):
        raise EmbedderUnavailable(
            f"The weights file {path} of {spec.label} is not a torch state "
            "dict (a mapping of parameter names to tensors).")
    return dict(state)


def download_weights(
        spec: EmbedderSpec, weights_dir: PathLike | None = None, *,
        url: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        timeout: float = 60.0, retries: int = 3) -> Path:
    """Download the weights file of ``spec`` into the weights folder.

    The file arrives in ``<name>.part`` beside its place; an interrupted
    download resumes from there (HTTP ``Range``), and only a complete file
    whose SHA-256 matches the registry is renamed into place, so a broken
    or wrong download never replaces anything.  A file that is already
    present and passes the check is kept and nothing is downloaded.

    Parameters
    ----------
    spec
        The embedder (a local copy and its server embedder share one file).
    weights_dir
        Target folder (default :func:`default_weights_dir`).
    url
        Download from here instead of ``spec.weights.url`` (a mirror).
    progress
        Called with ``(bytes_done, bytes_total or None)`` as data arrives.
    should_stop
        Polled as data arrives; when true the download stops with
        :class:`~.download.DownloadCancelled` and resumes on the next call.
    timeout
        Seconds to wait for the server at each step (connect, each read).
    retries
        Resumes at once after a transfer breaks off, before giving up.

    Returns
    -------
    Path
        The checked file.

    Raises
    ------
    EmbedderUnavailable
        If there is no URL, the download fails or the hash differs
        (:class:`~.download.DownloadError`, a subclass).
    """
    source = _source(spec)
    path = weights_path(spec, weights_dir)
    try:
        return check_weights_file(spec, weights_dir)
    except EmbedderUnavailable:
        pass
    url = url or source.url
    if not url:
        raise EmbedderUnavailable(
            f"{spec.label} has no download address; put its weights file "
            f"at {path}.")
    try:
        return download_file(url, path, sha256=source.sha256,
                             progress=progress, should_stop=should_stop,
                             timeout=timeout, retries=retries)
    except DownloadError as error:
        raise DownloadError(
            f"The weights of {spec.label} could not be downloaded. {error}"
        ) from error
