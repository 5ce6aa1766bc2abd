"""The window scheduler: one window per hop, the first-10-s policy, skips, reset."""

import pytest

from htsat_live.model import WINDOW_SAMPLES
from htsat_live.stream.windows import WindowScheduler


def test_first_window_is_due_one_hop_after_start_and_starts_at_zero():
    scheduler = WindowScheduler(1.25)
    assert scheduler.due(39999) == []
    [window] = scheduler.due(40000)
    assert (window.index, window.start, window.stop, window.samples) == (0, 0, 40000, 40000)
    assert window.next_start == 0


def test_windows_start_at_zero_until_ten_seconds_exist_then_slide_by_the_hop():
    scheduler = WindowScheduler(1.25)
    windows = scheduler.due(480000)  # 15 s
    assert [w.stop for w in windows] == [40000 * (k + 1) for k in range(12)]
    assert [w.start for w in windows[:8]] == [0] * 8
    assert [w.samples for w in windows[7:]] == [WINDOW_SAMPLES] * 5
    assert [w.start for w in windows[7:]] == [0, 40000, 80000, 120000, 160000]
    assert all(a.next_start == b.start for a, b in zip(windows, windows[1:]))


def test_an_offset_moves_every_window_later_by_it():
    scheduler = WindowScheduler(1.0, offset=8000)
    assert scheduler.due(39999) == []
    [first] = scheduler.due(40000)
    assert (first.start, first.stop) == (0, 40000)
    windows = WindowScheduler(1.0, offset=8000).due(360000)
    assert [w.stop for w in windows] == [32000 * (k + 1) + 8000 for k in range(11)]
    assert [w.start for w in windows[-2:]] == [8000, 40000]
    assert all(a.next_start == b.start for a, b in zip(windows, windows[1:]))


@pytest.mark.parametrize("offset", [-1, 32000])
def test_an_offset_outside_the_hop_is_rejected(offset):
    with pytest.raises(ValueError, match="window offset"):
        WindowScheduler(1.0, offset=offset)


def test_each_window_is_handed_out_once():
    scheduler = WindowScheduler(1.0)
    first = scheduler.due(100000)
    assert [w.stop for w in first] == [32000, 64000, 96000]
    assert scheduler.due(100000) == []
    assert [w.stop for w in scheduler.due(128000)] == [128000]
    assert scheduler.next_stop == 160000


def test_hop_of_ten_seconds_gives_disjoint_full_windows():
    windows = WindowScheduler(10.0).due(3 * WINDOW_SAMPLES + 5)
    assert [(w.start, w.stop) for w in windows] == [(0, 320000), (320000, 640000), (640000, 960000)]


def test_windows_older_than_the_ring_are_skipped_and_counted():
    scheduler = WindowScheduler(1.25)
    windows = scheduler.due(800000, oldest=400000)
    assert scheduler.skipped == 17  # windows 0..16 start before sample 400000
    assert windows[0].start == 400000 and windows[-1].stop == 800000


def test_reset_starts_a_new_schedule():
    scheduler = WindowScheduler(2.5)
    scheduler.due(800000, oldest=400000)
    scheduler.reset()
    assert scheduler.skipped == 0 and [w.index for w in scheduler.due(80000)] == [0]


@pytest.mark.parametrize("hop", [0.0, -1.0, 10.5])
def test_hop_out_of_range_is_rejected(hop):
    with pytest.raises(ValueError, match="hop must be"):
        WindowScheduler(hop)
