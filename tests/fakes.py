"""Test doubles shared by the embedding tests."""
import threading
import time

import numpy as np

from orangecontrib.imageanalytics.embedders.registry import get_embedder


class FakeRunner:
    """A deterministic stand-in for the model, independent of batching.

    Every output depends on the whole image (block means), so different
    images give different vectors, and it is cheap.
    """
    dimension = get_embedder("squeezenet").dimension

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.batches = []
        self.lock = threading.Lock()

    @property
    def n_images(self) -> int:
        return sum(self.batches)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.batches.append(len(batch))
        if self.delay:
            time.sleep(self.delay)
        flat = batch.reshape(len(batch), -1)
        n = flat.shape[1] // self.dimension * self.dimension
        return flat[:, :n].reshape(len(batch), self.dimension, -1) \
            .mean(axis=2, dtype=np.float64).astype(np.float32)
