"""Dynamic batching, with a fake model that records its batches."""
import asyncio
import threading

import numpy as np
import pytest

from orangecontrib.imageanalytics.embedders.registry import get_embedder
from orangecontrib.imageanalytics.server.batcher import (
    AdmissionCounter,
    Batcher,
    BatcherStopped,
    ModelFailed,
)
from orangecontrib.imageanalytics.server.served import (
    Pending,
    ServedModel,
    batch_buckets,
)


class FakeModel(ServedModel):
    """Vector of image i is [i, i]; an item "bad" fails inside the model
    step; an item "boom" makes the forward pass raise."""

    def __init__(self, max_batch=8, gate=None):
        super().__init__(get_embedder("squeezenet"), device="cpu",
                         max_batch=max_batch, max_pixels=1)
        self.dimension = 2
        self.batches = []
        self.gate = gate

    def launch(self, items):
        if self.gate is not None:
            self.gate.wait(5)
        if "boom" in items:
            raise RuntimeError("boom")
        self.batches.append(len(items))
        errors = {i: "bad" for i, item in enumerate(items) if item == "bad"}
        vectors = np.array([[item, item] if isinstance(item, int) else [0, 0]
                            for item in items], dtype=np.float32)
        return Pending(vectors, errors)

    def forward_fn(self, batch_size):
        return lambda: None


def _run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_jobs_share_batches_and_big_jobs_split():
    gate = threading.Event()
    model = FakeModel(max_batch=8, gate=gate)
    batcher = Batcher(model, max_batch=8, max_wait_ms=50)
    batcher.start()

    async def main():
        jobs = [batcher.embed([10 * j + i for i in range(3)])
                for j in range(4)]
        jobs.append(batcher.embed(list(range(100, 120))))
        tasks = [asyncio.ensure_future(job) for job in jobs]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks)

    try:
        results = _run(main())
    finally:
        batcher.stop()
    for j in range(4):
        vectors, errors = results[j]
        np.testing.assert_array_equal(vectors[:, 0], [10 * j + i
                                                      for i in range(3)])
        assert errors == {}
    np.testing.assert_array_equal(results[4][0][:, 1], np.arange(100, 120))
    assert sum(model.batches) == 32
    assert max(model.batches) == 8 and len(model.batches) == 4


def test_errors_inside_the_model_step_are_per_image():
    model = FakeModel()
    batcher = Batcher(model, max_batch=8, max_wait_ms=1)
    batcher.start()
    try:
        vectors, errors = _run(batcher.embed([1, "bad", 3]))
    finally:
        batcher.stop()
    assert errors == {1: "bad"}
    np.testing.assert_array_equal(vectors[:, 0], [1, 0, 3])


def test_forward_failure_fails_only_its_jobs():
    model = FakeModel()
    batcher = Batcher(model, max_batch=8, max_wait_ms=1)
    batcher.start()
    try:
        with pytest.raises(ModelFailed, match="boom"):
            _run(batcher.embed([1, "boom"]))
        vectors, _ = _run(batcher.embed([5]))
        assert vectors[0, 0] == 5
    finally:
        batcher.stop()


def test_cancelled_jobs_are_dropped():
    gate = threading.Event()
    model = FakeModel(max_batch=2, gate=gate)
    batcher = Batcher(model, max_batch=2, max_wait_ms=1)
    batcher.start()

    async def main():
        first = asyncio.ensure_future(batcher.embed([1, 2]))
        dropped = asyncio.ensure_future(batcher.embed([3, 4, 5, 6]))
        await asyncio.sleep(0.05)
        dropped.cancel()
        gate.set()
        return await first

    try:
        vectors, _ = _run(main())
    finally:
        batcher.stop()
    assert vectors[:, 0].tolist() == [1, 2]
    assert sum(model.batches) <= 4


def test_stop_fails_queued_jobs():
    gate = threading.Event()
    batcher = Batcher(FakeModel(max_batch=1, gate=gate), max_batch=1,
                      max_wait_ms=1)
    batcher.start()

    async def main():
        jobs = [asyncio.ensure_future(batcher.embed([i])) for i in range(3)]
        await asyncio.sleep(0.05)
        threading.Timer(0.1, gate.set).start()
        await asyncio.get_running_loop().run_in_executor(None, batcher.stop)
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = _run(main())
    assert any(isinstance(r, BatcherStopped) for r in results)
    with pytest.raises(BatcherStopped):
        _run(batcher.embed([1]))


def test_admission_counter():
    counter = AdmissionCounter(4)
    assert counter.try_acquire(3)
    assert not counter.try_acquire(2)
    assert counter.try_acquire(1)
    counter.release(4)
    # a request larger than the limit is admitted when nothing else runs
    assert counter.try_acquire(10)
    assert not counter.try_acquire(1)


def test_batch_buckets():
    assert batch_buckets(256) == [1, 2, 4, 8, 16, 32, 64, 96, 128, 160, 192,
                                  224, 256]
    assert batch_buckets(20) == [1, 2, 4, 8, 16, 20]
    assert batch_buckets(1) == [1]


class WrongRowsModel(FakeModel):
    """A model whose forward pass returns one row too few for a batch that
    holds the item "short": launching succeeds, collecting cannot fit."""

    def launch(self, items):
        pending = super().launch(items)
        if "short" in items:
            vectors, errors = pending.result()
            return Pending(vectors[:-1], errors)
        return pending


def test_bad_result_fails_its_jobs_and_the_thread_survives():
    model = WrongRowsModel(max_batch=4)
    batcher = Batcher(model, max_batch=4, max_wait_ms=1)
    batcher.start()

    async def main():
        with pytest.raises(ModelFailed):
            await asyncio.wait_for(batcher.embed([1, "short", 2]), 5)
        # the inference thread still runs: later jobs are answered
        return await asyncio.wait_for(batcher.embed([7, 8]), 5)

    try:
        vectors, errors = _run(main())
    finally:
        batcher.stop()
    np.testing.assert_array_equal(vectors[:, 0], [7, 8])
    assert errors == {}
