import logging
import queue
import threading

import numpy as np
import pytest

from htsat_live.model import WINDOW_SAMPLES, load_model
from htsat_live.stream.inference import worker as worker_module
from htsat_live.stream.inference.worker import InferenceWorker, Job
from htsat_live.stream.windows import Window


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint):
    return load_model(tiny_checkpoint)


def make_job(stream, index: int, samples: int = WINDOW_SAMPLES, seed: int = 0) -> Job:
    wave = np.random.default_rng(seed + 1000 * index).uniform(-0.5, 0.5, samples).astype(np.float32)
    window = Window(index=index, start=index * 40000, stop=index * 40000 + samples, next_start=(index + 1) * 40000)
    return Job(stream, window, wave, ready_wall=0.0)


class LineList(logging.Handler):
    """The messages of the records it is handed."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def worker_lines():
    """The worker's warnings, from a handler on its own logger: what other tests did to logging before (a
    command's stderr handler, another library's configuration) cannot hide them."""
    handler = LineList()
    worker_module.log.addHandler(handler)
    yield handler.lines
    worker_module.log.removeHandler(handler)


def collector():
    results = queue.Queue()
    return results, results.put


def take(results: queue.Queue, n: int) -> list:
    return [results.get(timeout=60) for _ in range(n)]


def test_windows_of_several_streams_share_one_batch_and_match_single_predictions(tiny_model):
    worker = InferenceWorker(tiny_model, max_batch=8, max_pending=4)
    got_a, deliver_a = collector()
    got_b, deliver_b = collector()
    worker.add_stream("a", deliver_a)
    worker.add_stream("b", deliver_b)
    jobs_a = [make_job("a", 0, samples=64000), make_job("a", 1)]
    jobs_b = [make_job("b", 0, seed=7), make_job("b", 1, seed=7)]
    for job in jobs_a + jobs_b:
        worker.submit(job)
    worker.start()
    try:
        results = take(got_a, 2) + take(got_b, 2)
    finally:
        worker.stop()
    assert worker.batches == 1
    assert [r.batch_size for r in results] == [4, 4, 4, 4]
    assert [r.job for r in results] == jobs_a + jobs_b  # per-stream order kept
    for result in results:
        alone = tiny_model.predict(result.job.wave, short="pad")
        np.testing.assert_allclose(result.framewise, alone["framewise"][0], atol=1e-5)
        np.testing.assert_allclose(result.clipwise, alone["clipwise"][0], atol=1e-5)
    assert results[0].valid_frames == tiny_model.frames_for(64000) < 1024
    assert results[1].valid_frames == 1024


def test_a_stream_that_falls_behind_skips_to_its_newest_windows(tiny_model):
    worker = InferenceWorker(tiny_model, max_pending=2)
    got, deliver = collector()
    worker.add_stream("s", deliver)
    for index in range(5):
        worker.submit(make_job("s", index))
    assert worker.pending("s") == 2
    worker.start()
    try:
        results = take(got, 2)
        assert worker.drain(timeout=60)
    finally:
        worker.stop()
    assert [r.job.window.index for r in results] == [3, 4]
    counters = worker.counters("s")
    assert (counters.submitted, counters.skipped, counters.processed, counters.failed) == (5, 3, 2, 0)


def test_a_failing_window_is_counted_and_the_others_and_later_ones_go_on(tiny_model):
    worker = InferenceWorker(tiny_model, max_pending=4)
    got, deliver = collector()
    worker.add_stream("s", deliver)
    bad = make_job("s", 1)
    bad.wave[100] = np.nan  # the model refuses it (ValueError)
    for job in (make_job("s", 0), bad, make_job("s", 2)):
        worker.submit(job)
    worker.start()
    try:
        results = take(got, 3)
        worker.submit(make_job("s", 3))
        later = take(got, 1)[0]
    finally:
        worker.stop()
    assert [r.error is None for r in results] == [True, False, True]
    assert "NaN" in results[1].error and results[1].framewise is None
    assert later.error is None and later.job.window.index == 3
    counters = worker.counters("s")
    assert (counters.failed, counters.processed) == (1, 3)
    assert "window 1" in counters.last_error


def test_submit_can_wait_for_room_instead_of_skipping(tiny_model):
    worker = InferenceWorker(tiny_model, max_pending=1)
    got, deliver = collector()
    worker.add_stream("s", deliver)
    worker.submit(make_job("s", 0))
    assert worker.submit(make_job("s", 1), wait=True, timeout=0.05) is False  # not started: no room
    waiter = threading.Thread(target=lambda: worker.submit(make_job("s", 1), wait=True))
    waiter.start()
    worker.start()
    try:
        waiter.join(timeout=60)
        results = take(got, 2)
    finally:
        worker.stop()
    assert [r.job.window.index for r in results] == [0, 1]
    assert worker.counters("s").skipped == 0


def test_a_failing_deliver_callback_does_not_stop_the_worker(tiny_model):
    worker = InferenceWorker(tiny_model)
    got, deliver = collector()
    calls = []

    def flaky(result):
        calls.append(result.job.window.index)
        if len(calls) == 1:
            raise RuntimeError("subscriber bug")
        deliver(result)

    worker.add_stream("s", flaky)
    worker.start()
    try:
        worker.submit(make_job("s", 0))
        assert worker.drain(timeout=60)
        worker.submit(make_job("s", 1))
        result = take(got, 1)[0]
    finally:
        worker.stop()
    assert calls == [0, 1]
    assert result.job.window.index == 1


def failing_jobs(stream, first: int, count: int) -> list[Job]:
    jobs = [make_job(stream, index) for index in range(first, first + count)]
    for job in jobs:
        job.wave[100] = np.nan  # the model refuses each (ValueError), as every window fails while inference is down
    return jobs


def test_a_run_of_failed_windows_is_said_in_a_few_lines_not_one_per_window(tiny_model, worker_lines):
    worker = InferenceWorker(tiny_model, max_pending=50, failure_summary_seconds=3600)
    got, deliver = collector()
    worker.add_stream("s", deliver)
    for job in failing_jobs("s", 0, 20):
        worker.submit(job)
    worker.start()
    try:
        take(got, 20)
        worker.submit(make_job("s", 20))
        ran = take(got, 1)[0]
    finally:
        worker.stop()
    assert ran.error is None and worker.counters("s").failed == 20
    lines = worker_lines
    assert len(lines) == 2, lines
    assert lines[0].startswith("window 0 of 's' failed: ValueError:") and "NaN" in lines[0]
    assert lines[1] == "inference back after 20 failed windows"


def test_a_long_run_of_failed_windows_is_summed_up_every_interval_and_at_the_stop(tiny_model, worker_lines):
    worker = InferenceWorker(tiny_model, max_pending=50, failure_summary_seconds=0.0)  # a summary at each failure
    got, deliver = collector()
    worker.add_stream("s", deliver)
    worker.start()
    try:
        worker.submit(failing_jobs("s", 0, 1)[0])
        take(got, 1)
        worker.submit(failing_jobs("s", 1, 1)[0])
        take(got, 1)
    finally:
        worker.stop()
    worker.failures.summary_seconds = 3600.0  # a third failure between lines: said once more at the stop
    worker.start()
    try:
        worker.submit(failing_jobs("s", 2, 1)[0])
        take(got, 1)
    finally:
        worker.stop()
    lines = worker_lines
    assert len(lines) == 3, lines
    assert lines[0].startswith("window 0 of 's' failed")
    assert lines[1].startswith("inference failing: 2 windows failed so far (last: window 1 of 's' failed: ValueError")
    assert lines[2].startswith("inference failing: 3 windows failed so far (last: window 2 of 's' failed")
