"""What the local and the remote embedding pipelines share.

Both pipelines read each image, hash its bytes and look the vector up in the
cache in worker threads (:func:`prepare_source`), and keep the state of one
``embed`` call in the calling thread (:class:`RunState`): one outcome per
image, the progress, cancellation, and the images being embedded, each file
content embedded once however many times it is listed.  What happens to an
image that must be embedded (a batch for the model, a request to the
server) is each pipeline's own.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from orangecontrib.imageanalytics import images
from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
from orangecontrib.imageanalytics.embedders.errors import EmbeddingCancelled
from orangecontrib.imageanalytics.embedders.inputs import content_hash

__all__ = ["EmbedOutcome", "Prepared", "RunState", "prepare_source"]

log = logging.getLogger(__name__)

# least time between two progress reports (seconds)
PROGRESS_INTERVAL = 0.1


@dataclass
class EmbedOutcome:
    """What became of one image: its vector, or the reason there is none."""
    vector: np.ndarray | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.vector is not None


@dataclass
class Prepared:
    """A worker's result for one image."""
    index: int
    key: str | None = None
    vector: np.ndarray | None = None   # found in the cache
    payload: Any = None                # what to embed (pixels, a JPEG)
    error: str | None = None


def prepare_source(index: int, source: str | None, stop: threading.Event, *,
                   key_of: Callable[[str], str],
                   cache: EmbeddingCache | None,
                   make: Callable[[bytes], Any],
                   dimension: int | None = None) -> Prepared:
    """Read, hash, look up, and (on a miss) prepare one image.

    Parameters
    ----------
    index
        The image's place in the run.
    source
        Its path or URL.
    stop
        Set when the run ends; the image is then left alone.
    key_of
        Maps the content hash to the cache key.
    cache
        Where to look the vector up; ``None`` for no cache.
    make
        Turns the file's bytes into what is embedded (``payload``).
    dimension
        When given, a cached vector of another size counts as a miss.

    Returns
    -------
    Prepared
        With ``vector`` (a cache hit), ``payload`` (to embed) or ``error``;
        a bad file never raises.
    """
    result = Prepared(index)
    if stop.is_set():
        result.error = "cancelled"
        return result
    if not source or not isinstance(source, str):
        result.error = "no image path or URL"
        return result
    try:
        data = images.read_source(source)
        result.key = key_of(content_hash(data))
        if cache is not None:
            vector = cache.get_many([result.key]).get(result.key)
            if vector is not None and (dimension is None
                                       or vector.size == dimension):
                result.vector = vector
                return result
        if stop.is_set():
            result.error = "cancelled"
            return result
        result.payload = make(data)
    except images.ImageLoadError as exc:
        result.error = exc.reason
    except MemoryError:
        result.error = "not enough memory to decode the image"
    except Exception as exc:  # a bad file must never stop the run
        log.debug("Cannot embed %s", source, exc_info=True)
        result.error = f"cannot read image ({type(exc).__name__}: {exc})"
    return result


class RunState:
    """Bookkeeping of one ``embed`` call, in the calling thread."""

    def __init__(self, sources: list, progress, should_stop) -> None:
        self.sources = sources
        self.total = len(sources)
        self.outcomes: list[EmbedOutcome | None] = [None] * self.total
        self.done = 0
        self.progress = progress
        self.should_stop = should_stop
        self.stop = threading.Event()
        self.last_report = 0.0
        # images being embedded, unique by cache key
        self.waiting: dict[str, list[int]] = {}   # key -> indices
        self.computed: dict[str, np.ndarray] = {}  # in this run

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            self.stop.set()
            raise EmbeddingCancelled("embedding was cancelled")

    def report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self.last_report >= PROGRESS_INTERVAL:
            self.last_report = now
            self.progress(self.done, self.total)

    def finish(self, index: int, outcome: EmbedOutcome) -> None:
        self.outcomes[index] = outcome
        self.done += 1

    def accept(self, prepared: Prepared) -> bool:
        """Take a worker's result.

        Returns true when the image must be embedded: it is the first with
        its key, and the caller sends ``prepared.payload`` on its way.
        Errors, cache hits and repeats of a file are settled here.
        """
        index, key = prepared.index, prepared.key
        if prepared.error is not None:
            self.finish(index, EmbedOutcome(None, prepared.error))
        elif prepared.vector is not None:
            self.finish(index, EmbedOutcome(prepared.vector))
        elif key in self.computed:   # the same file twice
            self.finish(index, EmbedOutcome(self.computed[key]))
        elif key in self.waiting:
            self.waiting[key].append(index)
        else:
            self.waiting[key] = [index]
            return True
        return False

    def settle(self, key: str, vector: np.ndarray | None,
               error: str | None) -> None:
        """Give every image waiting for ``key`` its vector, or the error."""
        if vector is not None:
            self.computed[key] = vector
            outcome = EmbedOutcome(vector)
        else:
            outcome = EmbedOutcome(None, error)
        for index in self.waiting.pop(key):
            self.finish(index, outcome)
