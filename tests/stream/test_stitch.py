"""The stitcher: placement on the grid, the nearest-centre overlap rule, final vs provisional."""

from pathlib import Path

import numpy as np
import pytest

from htsat_live.model import MODEL_FRAMES
from htsat_live.stream.stitch import Stitcher, grid_frame
from htsat_live.stream.windows import WindowScheduler

TINY = Path(__file__).resolve().parents[1] / "data" / "htsat_tiny.ckpt"


def window_map(value: float, classes: int = 3) -> np.ndarray:
    return np.full((MODEL_FRAMES, classes), value, dtype=np.float32)


def run_schedule(stitcher: Stitcher, hop: float, seconds: float, make_map):
    """Feed every window of a schedule; returns the windows and the updates."""
    windows = WindowScheduler(hop).due(int(seconds * 32000))
    updates = [
        stitcher.add(make_map(w), w.start, min(MODEL_FRAMES, int(np.ceil(w.samples // 320 * 1.024))), w.next_start)
        for w in windows
    ]
    return windows, updates


def test_hop_of_ten_seconds_equals_the_model_framewise_output():
    from htsat_live.model import load_model

    model = load_model(TINY)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(3 * 320000)).astype(np.float32)
    framewise = model.predict(audio.reshape(3, 320000), short="pad")["framewise"]  # [3, 1024, 10]
    stitcher = Stitcher(model.num_classes, history_frames=3 * MODEL_FRAMES)
    for w in WindowScheduler(10.0).due(audio.shape[0]):
        window_out = model.predict(audio[w.start : w.stop], short="pad")["framewise"][0]  # [1024, 10]
        update = stitcher.add(window_out, w.start, model.frames_for(w.samples), w.next_start)
        assert update.final_upto == update.end  # nothing later can change a 10-s hop's frames
    np.testing.assert_allclose(stitcher.frames(0, 3 * MODEL_FRAMES), framewise.reshape(-1, 10), atol=1e-6)


def test_window_frames_land_at_the_nearest_grid_frame():
    assert grid_frame(40000) == 128  # token-aligned hop: exact
    assert grid_frame(32000) == 102  # 102.4 -> 102
    assert grid_frame(96000) == 307  # 307.2 -> 307
    assert grid_frame(64000) == 205  # 204.8 -> 205


def test_each_frame_comes_from_the_window_where_it_is_most_central():
    stitcher = Stitcher(3)
    windows, _ = run_schedule(stitcher, 1.25, 15.0, lambda w: window_map(float(w.index)))
    full = [w for w in windows if w.samples == 320000]
    timeline = stitcher.frames(stitcher.base, stitcher.end)[:, 0]
    for k in range(stitcher.base, stitcher.end):
        covering = [w for w in full if grid_frame(w.start) <= k < grid_frame(w.start) + MODEL_FRAMES]
        nearest = min(covering, key=lambda w: (abs(k + 0.5 - grid_frame(w.start) - 512), -w.index))
        assert timeline[k - stitcher.base] == nearest.index


def test_first_windows_are_placed_from_sample_zero_and_hold_only_real_audio():
    stitcher = Stitcher(3)
    update = stitcher.add(window_map(0.7), 0, 128, 0)  # 1.25 s of audio, zero-padded window
    assert (update.start, update.stop, update.end, update.final_upto) == (0, 128, 128, 0)
    update = stitcher.add(window_map(0.2), 0, 256, 0)  # a later window with more audio replaces it
    assert (update.start, update.stop, update.final_upto) == (0, 256, 0)
    assert np.all(stitcher.frames(0, 256) == 0.2)


@pytest.mark.parametrize("hop", [1.25, 1.0, 0.3125, 3.0])
def test_frames_become_final_only_when_no_later_window_can_change_them(hop):
    stitcher = Stitcher(3)
    seen = {}  # grid frame -> value when it became final
    windows, updates = run_schedule(stitcher, hop, 30.0, lambda w: window_map(float(w.index)))
    previous = 0
    replay = Stitcher(3)
    for w, update in zip(windows, updates):
        assert update.final_upto >= previous
        replay.add(window_map(float(w.index)), w.start, update.end - grid_frame(w.start), w.next_start)
        for k in range(previous, update.final_upto):
            seen[k] = replay.frames(k, k + 1)[0, 0]
        previous = update.final_upto
    stitcher.finish()
    for k, value in seen.items():
        if k >= stitcher.base:
            assert stitcher.frames(k, k + 1)[0, 0] == value
    assert len(seen) > 1024  # frames did become final along the way
    # the newest and the next window centres: final up to their midpoint
    last = windows[-1]
    hop_frames = grid_frame(last.next_start) - grid_frame(last.start)
    assert abs(updates[-1].final_upto - (grid_frame(last.start) + 512 + hop_frames / 2)) <= 1


def test_changed_range_covers_exactly_the_frames_that_changed():
    stitcher = Stitcher(3, history_frames=4096)
    windows, _ = run_schedule(stitcher, 1.0, 12.0, lambda w: window_map(float(w.index)))
    before = stitcher.frames(stitcher.base, stitcher.end)
    w = WindowScheduler(1.0).due(13 * 32000)[-1]
    update = stitcher.add(window_map(99.0), w.start, MODEL_FRAMES, w.next_start)
    after = stitcher.frames(stitcher.base, stitcher.end)
    differs = np.flatnonzero(np.any(after[: before.shape[0]] != before, axis=1)) + stitcher.base
    assert update.start == differs[0] and update.stop == update.end
    assert np.all(update.values == 99.0)


def test_memory_stays_bounded_over_a_long_stream():
    stitcher = Stitcher(5, history_frames=512)
    scheduler = WindowScheduler(1.25)
    for w in scheduler.due(3600 * 32000):  # one hour
        stitcher.add(window_map(0.5, 5), w.start, MODEL_FRAMES, w.next_start)
    assert stitcher.end - stitcher.base <= 512 + 2 * MODEL_FRAMES
    assert stitcher.end == grid_frame(3600 * 32000)


@pytest.mark.parametrize("hop", [1.25, 0.3125, 10.0])
def test_a_short_history_gives_the_updates_of_one_that_keeps_everything(hop):
    """Dropping old frames (and moving the kept ones in the buffer) changes nothing a window's update says,
    also across gaps where windows were skipped."""
    rng = np.random.default_rng(3)
    short, whole = Stitcher(4, history_frames=256), Stitcher(4, history_frames=200 * MODEL_FRAMES)
    windows = WindowScheduler(hop).due(600 * 32000)
    skipped = set(rng.choice(len(windows), size=len(windows) // 20, replace=False).tolist())
    for w in windows:
        if w.index in skipped:
            continue
        window = rng.random((MODEL_FRAMES, 4), dtype=np.float32)
        valid = min(MODEL_FRAMES, int(np.ceil(w.samples // 320 * 1.024)))
        got, expected = short.add(window, w.start, valid, w.next_start), whole.add(window, w.start, valid, w.next_start)
        assert (got.start, got.end, got.final_upto) == (expected.start, expected.end, expected.final_upto)
        np.testing.assert_array_equal(got.values, expected.values)
        np.testing.assert_array_equal(short.frames(short.base, short.end), whole.frames(short.base, short.end))
    assert short.end - short.base <= 256 + 2 * MODEL_FRAMES and short.gap_frames == whole.gap_frames


def test_skipped_windows_leave_a_counted_gap_of_zeros():
    stitcher = Stitcher(2, history_frames=4096)
    stitcher.add(window_map(0.5, 2), 0, MODEL_FRAMES, 320000)
    update = stitcher.add(window_map(0.9, 2), 640000, MODEL_FRAMES, 680000)
    assert stitcher.gap_frames == MODEL_FRAMES
    assert update.start == MODEL_FRAMES
    assert np.all(stitcher.frames(MODEL_FRAMES, 2 * MODEL_FRAMES) == 0.0)


def test_bad_windows_are_rejected_without_changing_the_timeline():
    stitcher = Stitcher(3)
    stitcher.add(window_map(0.5), 0, MODEL_FRAMES, 40000)
    with pytest.raises(ValueError, match="framewise must be"):
        stitcher.add(np.zeros((1024, 4), np.float32), 40000, MODEL_FRAMES, 80000)
    with pytest.raises(ValueError, match="breaks the schedule"):
        stitcher.add(window_map(0.1), 0, MODEL_FRAMES, 40000)
    with pytest.raises(ValueError, match="valid_frames"):
        stitcher.add(window_map(0.1), 40000, 0, 80000)
    assert stitcher.end == MODEL_FRAMES and np.all(stitcher.frames(0, MODEL_FRAMES) == 0.5)


def test_reset_forgets_the_stream():
    stitcher = Stitcher(3)
    stitcher.add(window_map(0.5), 0, MODEL_FRAMES, 320000)
    stitcher.reset()
    assert (stitcher.end, stitcher.final_upto, stitcher.base) == (0, 0, 0)
    update = stitcher.add(window_map(0.1), 0, 100, 0)
    assert update.end == 100 and np.all(update.values == 0.1)
