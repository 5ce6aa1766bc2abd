"""The window scheduler: one window per hop, the first-10-s policy, skips, reset; the level gate."""

import numpy as np
import pytest

from htsat_live.model import SAMPLE_RATE, WINDOW_SAMPLES
from htsat_live.stream.status import dbfs as dbfs_of_rms
from htsat_live.stream.windows import LevelGate, WindowScheduler


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


def sine(seconds: float, dbfs: float, hz: float = 1000.0) -> np.ndarray:
    """A sine whose RMS is `dbfs` (a full-scale sine is -3 dBFS)."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sqrt(2) * 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("dbfs, quiet", [(-60.5, True), (-59.5, False), (-120.0, True)])
def test_the_gate_compares_the_level_that_status_shows_for_a_second(dbfs, quiet):
    wave = sine(10.0, dbfs)
    assert abs(dbfs_of_rms(float(np.sqrt(np.mean(wave[-SAMPLE_RATE:] ** 2)))) - max(dbfs, -120.0)) <= 0.05
    assert LevelGate(-60.0).quiet(wave) is quiet


def test_a_short_sound_counts_with_the_second_it_falls_in():
    wave = sine(10.0, -80.0)
    wave[160_000:163_200] = sine(0.1, -45.0)  # 0.1 s at -45 dBFS: a second holding it reads about -55 dBFS
    assert not LevelGate(-60.0).quiet(wave)
    assert LevelGate(-50.0).quiet(wave)


def test_a_sound_at_either_end_of_the_window_or_in_a_window_under_a_second_counts():
    for where in (slice(0, 1600), slice(-1600, None)):  # 50 ms at -30 dBFS: a second holding it reads -43
        wave = np.zeros(WINDOW_SAMPLES, np.float32)
        wave[where] = sine(0.05, -30.0)
        assert not LevelGate(-50.0).quiet(wave)
        assert LevelGate(-40.0).quiet(wave)
    short = sine(0.3, -55.0)  # the first window of a stream at hop 0.3125 s holds 0.3 s: its level is its own
    assert not LevelGate(-60.0).quiet(short) and LevelGate(-50.0).quiet(short)
    assert LevelGate(-60.0).quiet(np.zeros(0, np.float32))


def test_the_gate_level_must_be_a_level():
    with pytest.raises(ValueError, match="gate level"):
        LevelGate(3.0)
