import threading
import time

import numpy as np
import pytest

from htsat_live.stream.ring import Overrun, RingBuffer


def ramp(start: int, stop: int) -> np.ndarray:
    return np.arange(start, stop, dtype=np.float32)


def test_read_returns_samples_by_absolute_index_across_the_wrap():
    ring = RingBuffer(capacity=10, sample_rate=100)
    ring.write(ramp(0, 7))
    ring.write(ramp(7, 16))  # wraps: indices 6..15 are held
    assert ring.end == 16
    assert ring.oldest == 6
    np.testing.assert_array_equal(ring.read(6, 16), ramp(6, 16))
    np.testing.assert_array_equal(ring.read(9, 12), ramp(9, 12))


def test_read_of_overwritten_samples_raises_overrun_naming_the_oldest():
    ring = RingBuffer(capacity=10, sample_rate=100)
    ring.write(ramp(0, 25))
    with pytest.raises(Overrun) as info:
        ring.read(3, 20)
    assert info.value.oldest == 15


def test_read_beyond_the_newest_sample_is_an_error():
    ring = RingBuffer(capacity=10, sample_rate=100)
    ring.write(ramp(0, 5))
    with pytest.raises(ValueError, match="only 5 were written"):
        ring.read(0, 6)


def test_write_longer_than_capacity_keeps_the_newest_samples():
    ring = RingBuffer(capacity=8, sample_rate=100)
    ring.write(ramp(0, 30))
    assert ring.end == 30
    np.testing.assert_array_equal(ring.read(22, 30), ramp(22, 30))


def test_reader_that_falls_behind_counts_an_overrun_and_resumes_at_the_oldest_sample():
    ring = RingBuffer(capacity=10, sample_rate=100)
    reader = ring.reader(start=0)
    ring.write(ramp(0, 4))
    block = reader.read()
    assert block.start == 0
    np.testing.assert_array_equal(block.samples, ramp(0, 4))
    ring.write(ramp(4, 30))  # the reader's next sample (4) is long gone
    block = reader.read()
    assert reader.overruns == 1
    assert reader.lost_samples == 16
    assert block.start == 20
    np.testing.assert_array_equal(block.samples, ramp(20, 30))
    assert reader.read().samples.size == 0


def test_reader_respects_max_samples():
    ring = RingBuffer(capacity=100, sample_rate=100)
    reader = ring.reader(start=0)
    ring.write(ramp(0, 50))
    assert reader.read(max_samples=20).samples.size == 20
    np.testing.assert_array_equal(reader.read().samples, ramp(20, 50))
    assert reader.overruns == 0


def test_wall_time_maps_each_sample_to_its_capture_time():
    ring = RingBuffer(capacity=1000, sample_rate=100)
    ring.write(np.zeros(100, np.float32), capture_time=1000.0)  # samples 0..99, last at t=1000
    ring.write(np.zeros(50, np.float32), capture_time=1003.0)  # samples 100..149, last at t=1003
    assert ring.wall_time(99) == pytest.approx(1000.0)
    assert ring.wall_time(0) == pytest.approx(1000.0 - 0.99)
    assert ring.wall_time(149) == pytest.approx(1003.0)
    assert ring.wall_time(100) == pytest.approx(1003.0 - 0.49)


def test_wall_time_extrapolates_past_the_tracked_writes():
    ring = RingBuffer(capacity=1000, sample_rate=100, max_writes_tracked=2)
    for k in range(5):  # writes of 10 samples captured at t = 10, 11, 12, 13, 14
        ring.write(np.zeros(10, np.float32), capture_time=10.0 + k)
    assert ring.wall_time(49) == pytest.approx(14.0)
    assert ring.wall_time(35) == pytest.approx(13.0 - 0.04)
    assert ring.wall_time(5) == pytest.approx(13.0 - 0.34)  # older than the tracked writes


@pytest.mark.parametrize("writes", [3, 7, 8, 13, 40])  # before, at and past the anchor ring's wrap (7 tracked)
def test_wall_time_agrees_with_a_search_over_every_tracked_write(writes):
    rng = np.random.default_rng(writes)
    ring = RingBuffer(capacity=10_000, sample_rate=100, max_writes_tracked=7)
    ends, times, end, now = [], [], 0, 50.0
    for _ in range(writes):
        n, now = int(rng.integers(1, 30)), now + float(rng.uniform(0.01, 1.0))
        ring.write(np.zeros(n, np.float32), capture_time=now)
        end += n
        ends.append(end)
        times.append(now)
    ends, times = ends[-7:], times[-7:]  # the writes the ring still tracks, oldest first
    for index in range(end + 20):
        k = min(int(np.searchsorted(ends, index, side="right")), len(ends) - 1)
        assert ring.wall_time(index) == pytest.approx(times[k] - (ends[k] - 1 - index) / 100)


def test_wait_for_wakes_on_write_and_on_close():
    ring = RingBuffer(capacity=100, sample_rate=100)
    assert not ring.wait_for(10, timeout=0.01)
    writer = threading.Timer(0.05, lambda: ring.write(np.zeros(10, np.float32)))
    writer.start()
    assert ring.wait_for(10, timeout=5.0)
    threading.Timer(0.05, ring.close).start()
    started = time.monotonic()
    assert not ring.wait_for(1000, timeout=5.0)
    assert time.monotonic() - started < 4.0
    assert ring.closed


def test_reset_starts_again_at_sample_zero():
    ring = RingBuffer(capacity=10, sample_rate=100)
    ring.write(ramp(0, 25))
    ring.close()
    ring.reset()
    assert (ring.end, ring.oldest, ring.closed) == (0, 0, False)
    ring.write(ramp(0, 3))
    np.testing.assert_array_equal(ring.read(0, 3), ramp(0, 3))


def test_concurrent_reader_never_sees_torn_samples():
    # The writer writes a ramp of absolute indices as fast as it can into a tiny ring; every block
    # the reader gets must hold exactly the indices it claims, whatever overruns happen meanwhile.
    ring = RingBuffer(capacity=64, sample_rate=1000)
    total = 200_000
    reader = ring.reader(start=0)
    bad = []

    def write_all():
        for start in range(0, total, 7):
            ring.write(ramp(start, min(start + 7, total)))
        ring.close()

    writer = threading.Thread(target=write_all)
    writer.start()
    seen = 0
    while not (ring.closed and reader.position >= ring.end):
        block = reader.read()
        expected = ramp(block.start, block.start + block.samples.size)
        if not np.array_equal(block.samples, expected):
            bad.append(block.start)
        seen += block.samples.size
    writer.join()
    assert bad == []
    assert seen + reader.lost_samples == total
