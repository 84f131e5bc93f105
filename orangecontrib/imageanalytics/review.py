"""Find the duplicates and the bad shots in a photo collection.

:func:`review_images` groups the rows that show the same picture, suggests
which photo of each group to keep, and flags photos that are blurry, too dark
or overexposed. It only reports: nothing is ever deleted, moved or written.

How, and why so:

* **same file** — identical bytes (SHA-256);
* **same picture** — re-encoded, resized, in another format, EXIF-rotated,
  slightly cropped or retouched: perceptual hashes (64-bit DCT hash) within a
  Hamming distance, found through blocked products of the hashes' ±1 vectors
  (:mod:`.review_neighbours`), then confirmed on small grey thumbs (a
  correlation that allows a slight crop and a pixel of shift,
  :class:`~.review_measures.Matcher`), which keeps apart two different photos
  whose hashes happen to be close;
* **near duplicate** — the next frame of a burst: the same candidates and
  those whose embedding vectors (given, or SqueezeNet's on this computer,
  centred on the collection's mean) have a high cosine, confirmed on the
  thumbs allowing a larger shift, so that two photos of the same place or of
  two cats, which embeddings put close, stay apart.

The keeper is the best version: most pixels, then the best compression (JPEG
quality from its tables; a lossless file that holds exactly a JPEG's pixels is
a converted copy), then the sharpest, then the oldest file. Sharpness and
exposure are measured on a copy of each photo of the same size
(:mod:`.review_measures`), so they do not depend on the camera's pixels.

Every image that cannot be read is in :attr:`Review.skipped` with its reason.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from orangecontrib.imageanalytics.images import (
    ImageLoadError,
    decode_image,
    read_source,
)
from orangecontrib.imageanalytics.review_measures import (
    Matcher,
    Measures,
    measure,
)
from orangecontrib.imageanalytics.review_neighbours import (
    Cancelled,
    close_pairs,
    hash_pairs,
)

if TYPE_CHECKING:
    from Orange.data import Table

__all__ = [
    "BLURRY",
    "DARK",
    "ISSUES",
    "KEEPER",
    "KINDS",
    "NEAR_DUPLICATE",
    "OVEREXPOSED",
    "SAME_FILE",
    "SAME_PICTURE",
    "Review",
    "ReviewCancelled",
    "SkippedImage",
    "Strictness",
    "describe_issue",
    "embedding_vectors",
    "review_images",
    "run",
]

# the kind of a group member
KEEPER = "keeper"
SAME_FILE = "same file"
SAME_PICTURE = "same picture"
NEAR_DUPLICATE = "near duplicate"
#: Kinds of the members that are not the keeper, closest first.
KINDS = (SAME_FILE, SAME_PICTURE, NEAR_DUPLICATE)

# quality issues
BLURRY = "blurry"
DARK = "dark"
OVEREXPOSED = "overexposed"
ISSUES = (BLURRY, DARK, OVEREXPOSED)


class Strictness(IntEnum):
    """What counts as a duplicate, from the narrowest to the widest."""

    SAME_FILE = 0       #: identical bytes only
    SAME_PICTURE = 1    #: also re-encoded, resized, converted, rotated copies
    NEAR_DUPLICATE = 2  #: also the next frames of a burst


# --- thresholds, chosen on benchmarks/bench_review.py's planted collection
# Hamming distance of perceptual hashes that makes a candidate pair (crops,
# rotations and bursts of the planted collection: up to 16)
_HASH_CANDIDATE = 16
# centred embedding cosine that makes a candidate pair
_NEAR_COSINE = 0.90
# candidate partners kept per photo, its most alike (by hash or vector): a
# burst or a subject shot a thousand times stays connected through them, and
# the pairs to confirm stay a few per photo, not all of a crowd's pairs
_PER_ROW = 8
# thumb match (Matcher) that confirms the same picture: score, at most a pixel
# of shift; and a near duplicate: score, any shift it tries
_SAME_SCORE = 0.93
_NEAR_SCORE = 0.83
# sharpness (see review_measures._sharpness) below which a photo is blurry
_BLURRY_BELOW = 0.42
# 95th percentile of luminance below which a photo is dark
_DARK_BELOW = 0.18
# share of burnt-out pixels and median luminance that make a photo overexposed
_CLIPPED_ABOVE = 0.15
_MEDIAN_ABOVE = 0.80
# keeper choice: versions this close to the best count as good as the best
_PIXELS_TOLERANCE = 0.9
# hashes this close (bits) before two files are decoded whole and compared
_SAME_PIXELS_HASH = 6
_QUALITY_TOLERANCE = 2.0
_SHARPNESS_TOLERANCE = 0.9
# a lossy format of unknown quality (WebP, HEIC) counts as this JPEG quality
_UNKNOWN_LOSSY_QUALITY = 80.0

_CHUNK = 16
_STOP_WAIT = 0.05

Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]


class ReviewCancelled(Exception):
    """Raised by :func:`review_images` when ``should_stop()`` turns true."""


class SkippedImage(NamedTuple):
    """A row whose image could not be reviewed, and why."""

    row: int
    source: str | None  #: the resolved path or URL (None: missing value)
    reason: str


@dataclass
class Review:
    """The outcome of :func:`review_images`.

    Attributes
    ----------
    groups : list of list of int
        Rows that show the same picture, two or more per group, the suggested
        keeper first, groups ordered by their first row.
    kinds : list of list of str
        Parallel to ``groups``: :data:`KEEPER` for the first member, then
        :data:`SAME_FILE`, :data:`SAME_PICTURE` or :data:`NEAR_DUPLICATE`:
        how the member relates to the keeper.
    issues : dict of int to list of str
        Rows with quality issues, among :data:`ISSUES`.
    issue_scores : dict of int to dict of str to float
        The measure behind each issue (see :func:`describe_issue`).
    skipped : list of SkippedImage
        Rows whose image could not be read, with the reason.
    n_rows : int
        Rows reviewed.
    strictness : Strictness
    measures : list of (Measures or None)
        Per row; kept so that a changed keeper gets the right kinds.
    """

    groups: list[list[int]] = field(default_factory=list)
    kinds: list[list[str]] = field(default_factory=list)
    issues: dict[int, list[str]] = field(default_factory=dict)
    issue_scores: dict[int, dict[str, float]] = field(default_factory=dict)
    skipped: list[SkippedImage] = field(default_factory=list)
    n_rows: int = 0
    strictness: Strictness = Strictness.SAME_PICTURE
    measures: list[Measures | None] = field(default_factory=list, repr=False)

    def group_of(self, row: int) -> int | None:
        """The index of the group that holds ``row``, or None."""
        for index, group in enumerate(self.groups):
            if row in group:
                return index
        return None

    def duplicate_rows(self) -> list[int]:
        """Rows in a group that are not its keeper, in row order."""
        return sorted(row for group in self.groups for row in group[1:])

    def unique_rows(self, *, without_issues: bool = False) -> list[int]:
        """Readable rows that are a keeper or in no group, in row order;
        ``without_issues`` leaves out the flagged ones."""
        out = set(range(self.n_rows)) - set(self.duplicate_rows())
        out -= {skip.row for skip in self.skipped}
        if without_issues:
            out -= set(self.issues)
        return sorted(out)

    def with_changes(self, *, keepers: Sequence[int] = (),
                     removed: Sequence[int] = ()) -> Review:
        """A copy where the rows in ``keepers`` are the keepers of their
        groups and the rows in ``removed`` are in no group (a group left with
        a single photo is dropped); kinds follow the new keepers."""
        keepers, removed = set(keepers), set(removed)
        groups, kinds = [], []
        for group, group_kinds in zip(self.groups, self.kinds):
            members = [row for row in group if row not in removed]
            if len(members) < 2:
                continue
            chosen = [row for row in members if row in keepers]
            if chosen:
                members.remove(chosen[0])
                members.insert(0, chosen[0])
            groups.append(members)
            if members[0] == group[0]:  # the same keeper: the same kinds
                kind_of = dict(zip(group, group_kinds))
                kinds.append([kind_of[row] for row in members])
            else:
                kinds.append(_member_kinds(members, self.measures, self.strictness))
        return Review(groups, kinds, dict(self.issues), dict(self.issue_scores),
                      list(self.skipped), self.n_rows, self.strictness, self.measures)


def describe_issue(issue: str, score: float) -> str:
    """The measure behind an issue as a person reads it."""
    if issue == BLURRY:
        return f"blurry (sharpness {score:.2f}, sharp photos ≥ {_BLURRY_BELOW:.2f})"
    if issue == DARK:
        return f"dark (its brightest parts at {100 * score:.0f} % of white)"
    if issue == OVEREXPOSED:
        return f"overexposed ({100 * score:.0f} % burnt out)"
    return issue


def embedding_vectors(table: Table) -> np.ndarray | None:
    """The embedding vectors of a table from Image Embedding: its numeric
    attributes marked hidden (``n0``, ``n1``, ...); None when it has none."""
    from Orange.data import ContinuousVariable
    columns = [i for i, var in enumerate(table.domain.attributes)
               if isinstance(var, ContinuousVariable) and var.attributes.get("hidden")]
    if not columns:
        return None
    x = table.X
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x[:, columns], dtype=np.float32)


# ----------------------------------------------------------------- review


def review_images(images, *, vectors: np.ndarray | None = None,
                  image_column=None,
                  strictness: Strictness | int = Strictness.NEAR_DUPLICATE,
                  progress: Progress | None = None,
                  should_stop: ShouldStop | None = None,
                  workers: int | None = None) -> Review:
    """Group the duplicates and flag the bad shots of a collection.

    Parameters
    ----------
    images : list of str or Table
        Paths or URLs, or a table with an image column (relative values are
        resolved against the column's ``origin``).
    vectors : array of shape (len(images), d), optional
        Embedding vectors for near duplicates; rows of zeros or NaN match
        nothing. Without them, and with ``strictness`` at
        :attr:`Strictness.NEAR_DUPLICATE`, SqueezeNet embeds the images on
        this computer.
    image_column : str or Variable, optional
        A table's image column; by default the first marked ``type=image``.
    strictness : Strictness
        What counts as a duplicate.
    progress : callable, optional
        ``progress(done, total)``.
    should_stop : callable, optional
        Polled often; :class:`ReviewCancelled` when it returns true.
    workers : int, optional
        Threads that read and measure images (default: up to 4).

    Returns
    -------
    Review

    Raises
    ------
    ValueError
        If a table has no image column, or ``vectors`` has the wrong length.
    ReviewCancelled
        If ``should_stop()`` returned true.
    """
    strictness = Strictness(strictness)
    sources = _sources(images, image_column)
    n = len(sources)
    if vectors is not None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != n:
            raise ValueError(f"vectors must have one row per image ({n}), "
                             f"not shape {vectors.shape}")
        vectors = np.where(np.isfinite(vectors), vectors, 0.0)
    stop = should_stop or (lambda: False)
    embed = strictness >= Strictness.NEAR_DUPLICATE and vectors is None
    total = 2 * n + 1 if embed else n + 1
    report = progress or (lambda done, total: None)
    report(0, total)

    if embed:
        # the embedder decodes in its own threads and its model releases the
        # GIL: it runs beside the measuring (a third less time on two cores)
        embedding = _Background(_embed, sources, stop)
        measures, skipped = _measure_all(
            sources, stop, lambda done: report(done + embedding.done, total), workers)
        vectors = embedding.result(stop, lambda: report(n + embedding.done, total))
    else:
        measures, skipped = _measure_all(
            sources, stop, lambda done: report(done, total), workers)
    if stop():
        raise ReviewCancelled
    try:
        groups = _group(measures, vectors, strictness, stop)
    except Cancelled:
        raise ReviewCancelled from None
    groups = [_keeper_first(group, measures, sources) for group in _unless(stop, groups)]
    groups.sort(key=min)
    kinds = [_member_kinds(group, measures, strictness) for group in _unless(stop, groups)]
    issues, scores = _flag(measures)
    report(total, total)
    return Review(groups, kinds, issues, scores, skipped, n, strictness, measures)


def _unless(stop: ShouldStop, items):
    """``items`` one by one; :class:`ReviewCancelled` once ``stop()`` is true."""
    for item in items:
        if stop():
            raise ReviewCancelled
        yield item


def _sources(images, image_column) -> list[str | None]:
    from orangecontrib.imageanalytics.image_embedder import _is_table
    if _is_table(images):
        from orangecontrib.imageanalytics.table_images import (
            image_column as find_column,
        )
        from orangecontrib.imageanalytics.table_images import image_sources
        return image_sources(images, find_column(images, image_column))
    from orangecontrib.imageanalytics.images import resolve_source
    return [resolve_source(os.fspath(x) if isinstance(x, os.PathLike) else x, None)
            for x in images]


def _measure_one(source: str | None) -> Measures | str:
    if source is None:
        return "missing value"
    try:
        return measure(source)
    except ImageLoadError as e:
        return e.reason
    except MemoryError:
        return "out of memory"
    except Exception as e:  # noqa: BLE001 - a bad image never stops a review
        return f"unexpected error: {e or type(e).__name__}"


def _measure_chunk(chunk: list[str | None], halted: Callable[[], bool]) -> list:
    out = []
    for source in chunk:
        if halted():
            break
        out.append(_measure_one(source))
    return out


def _measure_all(sources, should_stop, progress, workers
                 ) -> tuple[list[Measures | None], list[SkippedImage]]:
    chunks = [sources[i:i + _CHUNK] for i in range(0, len(sources), _CHUNK)]
    workers = workers or min(4, os.cpu_count() or 1)
    halt = threading.Event()
    results: list = []
    with ThreadPoolExecutor(max(1, workers), "image-review") as executor:
        futures = [executor.submit(_measure_chunk, chunk, halt.is_set)
                   for chunk in chunks]
        try:
            for chunk, future in zip(chunks, futures):
                while True:
                    if should_stop():
                        raise ReviewCancelled
                    try:
                        done = future.result(timeout=_STOP_WAIT)
                    except FutureTimeout:
                        continue
                    break
                if len(done) < len(chunk):
                    raise ReviewCancelled
                results.extend(done)
                progress(len(results))
        except BaseException:
            halt.set()
            for future in futures:
                future.cancel()
            raise
    measures: list[Measures | None] = []
    skipped = []
    for row, (source, result) in enumerate(zip(sources, results)):
        if isinstance(result, str):
            skipped.append(SkippedImage(row, source, result))
            measures.append(None)
        else:
            measures.append(result)
    return measures, skipped


def _embed(sources: list[str | None], should_stop, progress) -> np.ndarray | None:
    """SqueezeNet's vectors on this computer; rows that fail are zeros.

    The vectors only nominate candidate pairs (each is confirmed on the
    pictures), so the INT8 model, about twice as fast and within cosine 0.99
    of the exact one, is used where ONNX Runtime can run it.
    """
    from orangecontrib.imageanalytics.embedders.errors import (
        EmbedderUnavailable,
        EmbeddingCancelled,
    )
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    rows = [i for i, s in enumerate(sources) if s is not None]
    if not rows:
        return None
    outcomes = None
    for engine in ("onnx-int8", "auto"):
        embedder = ImageEmbedder("squeezenet", engine=engine)
        try:
            outcomes = embedder.embed_sources(
                [sources[i] for i in rows], should_stop=should_stop,
                progress=lambda done, _total: progress(done))
            break
        except EmbeddingCancelled:
            raise ReviewCancelled from None
        except EmbedderUnavailable:
            if engine == "auto":
                raise
        finally:
            embedder.close()
    dimension = next((len(o.vector) for o in outcomes if o.vector is not None), 0)
    if not dimension:
        return None
    vectors = np.zeros((len(sources), dimension), dtype=np.float32)
    for row, outcome in zip(rows, outcomes):
        if outcome.vector is not None:
            vectors[row] = outcome.vector
    return vectors


class _Background:
    """``function(sources, should_stop, progress)`` in a thread; its result or
    its exception come back from :meth:`result`."""

    def __init__(self, function, sources, should_stop):
        self.done = 0
        self._outcome: tuple | None = None
        self._thread = threading.Thread(
            target=self._run, args=(function, sources, should_stop),
            name="image-review-embed", daemon=True)
        self._thread.start()

    def _progress(self, done: int) -> None:
        self.done = done

    def _run(self, function, sources, should_stop) -> None:
        try:
            self._outcome = (function(sources, should_stop, self._progress), None)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self._outcome = (None, e)

    def result(self, should_stop, progress):
        while self._thread.is_alive():
            self._thread.join(_STOP_WAIT)
            progress()
            if should_stop():
                # the embedder polls the same should_stop and ends soon
                self._thread.join()
                raise ReviewCancelled
        value, error = self._outcome
        if error is not None:
            raise error
        return value


# ----------------------------------------------------------------- groups


def _relation(match) -> Strictness | None:
    """The narrowest strictness at which a thumb match makes a duplicate."""
    if match.score >= _SAME_SCORE and match.shift <= 1:
        return Strictness.SAME_PICTURE
    if match.score >= _NEAR_SCORE:
        return Strictness.NEAR_DUPLICATE
    return None


def _group(measures: list[Measures | None], vectors: np.ndarray | None,
           strictness: Strictness, should_stop) -> list[list[int]]:
    n = len(measures)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    readable = [i for i, m in enumerate(measures) if m is not None]
    by_hash: dict[str, int] = {}
    for i in readable:
        first = by_hash.setdefault(measures[i].sha256, i)
        if first != i:
            union(first, i)

    matcher = Matcher([m.thumb if m is not None else None for m in measures])

    def link(rows, ii, jj) -> None:
        # in row order: the matcher keeps the photos it prepared, and each
        # row's pairs follow one another
        for k, (a, b) in enumerate(zip(ii.tolist(), jj.tolist())):
            if k % 1024 == 0 and should_stop():
                raise Cancelled
            i, j = rows[a], rows[b]
            if find(i) != find(j):
                relation = _relation(matcher.match(i, j))
                if relation is not None and relation <= strictness:
                    union(i, j)

    if strictness >= Strictness.SAME_PICTURE and len(readable) > 1:
        hashes = np.array([measures[i].phash for i in readable], dtype=np.uint64)
        ii, jj, _ = hash_pairs(hashes, _HASH_CANDIDATE, per_row=_PER_ROW,
                               should_stop=should_stop)
        link(readable, ii, jj)

    if strictness >= Strictness.NEAR_DUPLICATE and vectors is not None:
        usable = [i for i in readable if np.any(vectors[i])]
        if len(usable) > 1:
            ii, jj, _ = vector_pairs(vectors[usable], should_stop=should_stop)
            link(usable, ii, jj)

    members: dict[int, list[int]] = {}
    for i in readable:
        members.setdefault(find(i), []).append(i)
    return [group for group in members.values() if len(group) > 1]


def vector_pairs(vectors: np.ndarray, should_stop=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate pairs of near duplicates among embedding ``vectors``:
    (i, j, cosine) with i < j, each photo's few most alike above the
    threshold (see :func:`~.review_neighbours.close_pairs`)."""
    return close_pairs(vectors, _NEAR_COSINE, centre=True, per_row=_PER_ROW,
                       should_stop=should_stop)


def _member_kinds(group: list[int], measures, strictness: Strictness) -> list[str]:
    matcher = Matcher([measures[row].thumb for row in group])
    keeper = measures[group[0]]
    kinds = [KEEPER]
    for index, row in enumerate(group[1:], start=1):
        if measures[row].sha256 == keeper.sha256:
            kinds.append(SAME_FILE)
        elif strictness <= Strictness.SAME_PICTURE \
                or _relation(matcher.match(0, index)) == Strictness.SAME_PICTURE:
            kinds.append(SAME_PICTURE)
        else:
            kinds.append(NEAR_DUPLICATE)
    return kinds


# ----------------------------------------------------------------- keeper


def _quality(m: Measures) -> float:
    if m.jpeg_quality is not None:
        return m.jpeg_quality
    return 100.0 if m.lossless else _UNKNOWN_LOSSY_QUALITY


def _same_pixels(a: str, b: str) -> bool:
    """Whether two files decode to exactly the same pixels."""
    try:
        pa = np.asarray(decode_image(read_source(a)))
        pb = np.asarray(decode_image(read_source(b)))
    except ImageLoadError:
        return False
    return pa.shape == pb.shape and np.array_equal(pa, pb)


def _converted_copies(rows: list[int], measures, sources) -> dict[int, int]:
    """Lossless files that hold exactly the pixels of a lossy one in the
    group, each with that lossy file: converted copies, whose original is
    the lossy file (their extra bytes hold no extra picture)."""
    copies = {}
    lossy = [r for r in rows if not measures[r].lossless]
    for row in rows:
        m = measures[row]
        if not m.lossless:
            continue
        for other in lossy:
            o = measures[other]
            # the same pixels make nearly the same hash (the reduced decodes
            # of two formats may differ a little): a full decode only then
            if (o.width, o.height) == (m.width, m.height) \
                    and bin(o.phash ^ m.phash).count("1") <= _SAME_PIXELS_HASH \
                    and _same_pixels(sources[row], sources[other]):
                copies[row] = other
                break
    return copies


def _keeper_first(group: list[int], measures, sources) -> list[int]:
    """The group with its best version first, the rest in row order."""
    rows = sorted(group)
    most = max(measures[r].pixels for r in rows)
    best = [r for r in rows if measures[r].pixels >= _PIXELS_TOLERANCE * most]
    copies = _converted_copies(best, measures, sources) if len(best) > 1 else {}
    quality = {r: _quality(measures[copies.get(r, r)]) for r in best}
    top = max(quality.values())
    best = [r for r in best if quality[r] >= top - _QUALITY_TOLERANCE]
    sharpest = max(measures[r].sharpness for r in best)
    best = [r for r in best if measures[r].sharpness >= _SHARPNESS_TOLERANCE * sharpest]

    def order(row: int):
        mtime = measures[row].mtime
        return (row in copies, np.inf if mtime is None else mtime, row)

    keeper = min(best, key=order)
    return [keeper] + [r for r in rows if r != keeper]


# ----------------------------------------------------------------- issues


def _flag(measures) -> tuple[dict[int, list[str]], dict[int, dict[str, float]]]:
    issues: dict[int, list[str]] = {}
    scores: dict[int, dict[str, float]] = {}
    for row, m in enumerate(measures):
        if m is None:
            continue
        found = {}
        if m.sharpness < _BLURRY_BELOW:
            found[BLURRY] = m.sharpness
        if m.brightness < _DARK_BELOW:
            found[DARK] = m.brightness
        if m.clipped >= _CLIPPED_ABOVE and m.median >= _MEDIAN_ABOVE:
            found[OVEREXPOSED] = m.clipped
        if found:
            issues[row] = list(found)
            scores[row] = found
    return issues, scores


# ----------------------------------------------------------------- widget


class _State(Protocol):
    def set_progress_value(self, value: float) -> None: ...
    def set_status(self, text: str) -> None: ...
    def is_interruption_requested(self) -> bool: ...


def run(data: Table, image_column, strictness: int, state: _State) -> Review:
    """Task function for the Review Images widget: reviews ``data``, using
    its embedding vectors when it has them.

    Raises
    ------
    ReviewCancelled
        When the widget asked the task to stop.
    """
    def progress(done: int, total: int) -> None:
        state.set_progress_value(100 * done / total if total else 100)

    state.set_status("Reviewing…")
    return review_images(data, vectors=embedding_vectors(data),
                         image_column=image_column, strictness=strictness,
                         progress=progress,
                         should_stop=state.is_interruption_requested)
