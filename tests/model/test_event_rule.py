"""The official offline frame-to-event rule, on score maps built by hand with hand-worked events.

One frame is 10/1024 s = 9.765625 ms, so frame boundaries used below are: 100 -> 0.9765625 s,
300 -> 2.9296875, 310 -> 3.02734375, 380 -> 3.7109375, 410 -> 4.00390625, 500 -> 4.8828125,
600 -> 5.859375, 610 -> 5.95703125, 620 -> 6.0546875, 1000 -> 9.765625, 1024 -> 10.0.
"""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.model import (
    Target,
    detect_clip,
    events_from_scores,
    load_model,
    read_clip,
    zero_padded_batch,
)
from htsat_live.stream.config import load_config
from htsat_live.stream.events import targets_from_config

TINY = Path(__file__).resolve().parents[1] / "data" / "htsat_tiny.ckpt"

# Six model classes; A = max(class 0, class 2), B = class 5, C = max(classes 1, 3, 4).
GROUPS = [Target("A", (0, 2), 0.5, 0.5), Target("B", (5,), 0.3, 0.3), Target("C", (1, 3, 4), 0.4, 0.4)]


def score_map(active: dict[int, list[tuple[int, int, float]]]) -> np.ndarray:
    """[1024, 6] scores of 0.1, with `value` over frames [start, end) of each listed class."""
    framewise = np.full((1024, 6), 0.1, dtype=np.float32)
    for column, runs in active.items():
        for start, end, value in runs:
            framewise[start:end, column] = value
    return framewise


def test_full_clip_events_touch_both_ends_and_merge_mapped_classes():
    framewise = score_map(
        {
            0: [(0, 100, 0.9)],  # A from the first frame
            2: [(1000, 1024, 0.6)],  # A up to the last frame
            5: [(200, 300, 0.3), (300, 310, 0.31)],  # at the threshold is not over it
            1: [(500, 550, 0.7)],  # C: classes 1 and 3 overlap -> one event 500..600
            3: [(540, 600, 0.45)],
            4: [(610, 620, 0.41)],  # C again after a 10-frame gap
        }
    )
    events, scores = events_from_scores(framewise, 320000, GROUPS)
    assert scores.shape == (1024, 3)
    assert events == [
        (0.0, 0.9765625, "A"),
        (9.765625, 10.0, "A"),
        (2.9296875, 3.02734375, "B"),
        (4.8828125, 5.859375, "C"),
        (5.95703125, 6.0546875, "C"),
    ]


def test_short_clip_keeps_only_the_frames_of_real_audio():
    # 4 s = 128000 samples: floor(128000 / 320) = 400 -> ceil(400 * 1.024) = 410 frames kept.
    framewise = score_map({0: [(380, 1024, 0.8)], 5: [(500, 600, 0.9)], 3: [(0, 5, 0.5)]})
    events, scores = events_from_scores(framewise, 128000, GROUPS)
    assert scores.shape == (410, 3)
    assert events == [(3.7109375, 4.00390625, "A"), (0.0, 5 * 0.009765625, "C")]


def test_half_second_clip_keeps_52_frames():
    # 16000 samples: floor(50) = 50 -> ceil(51.2) = 52 frames; an event over all of them ends at 52 frames.
    framewise = score_map({5: [(0, 1024, 0.9)]})
    events, scores = events_from_scores(framewise, 16000, GROUPS)
    assert scores.shape == (52, 3)
    assert events == [(0.0, 0.5078125, "B")]


def test_long_clip_is_cut_to_its_first_ten_seconds():
    wave = np.concatenate([np.ones(320000, np.float32), np.full(80000, 2.0, np.float32)])
    events, scores = events_from_scores(score_map({4: [(1020, 1024, 0.5)]}), len(wave), GROUPS)
    assert scores.shape == (1024, 3)
    assert events == [(9.9609375, 10.0, "C")]


def test_short_clips_are_zero_padded_after_their_samples():
    batch = zero_padded_batch([np.full(1000, 0.5, np.float32), np.full(320000, 0.25, np.float32)])
    assert batch.shape == (2, 320000) and batch.dtype == np.float32
    assert np.all(batch[0, :1000] == 0.5) and np.all(batch[0, 1000:] == 0.0) and np.all(batch[1] == 0.25)


def test_a_window_longer_than_ten_seconds_is_refused():
    with pytest.raises(ValueError, match="at most 320000"):
        zero_padded_batch([np.zeros(320001, np.float32)])


def test_detect_clip_runs_the_model_once_on_the_padded_clip(tmp_path):
    model = load_model(TINY)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(128000)).astype(np.float32)  # 4 s
    path = tmp_path / "clip.wav"
    soundfile.write(path, wave, 32000, subtype="FLOAT")
    clip = read_clip(path)
    assert np.array_equal(clip, wave)
    targets = [Target("low", (0, 1), 0.5, 0.5), Target("high", (9,), 0.5, 0.5)]
    events, scores = detect_clip(model, clip, targets)
    padded = np.concatenate([wave, np.zeros(192000, np.float32)])
    framewise = model.predict(padded, short="pad")["framewise"][0]
    assert scores.shape == (410, 2)
    np.testing.assert_allclose(scores[:, 0], framewise[:410, :2].max(axis=1), atol=1e-6)
    assert all(0.0 <= onset < offset <= 4.00390625 for onset, offset, _ in events)


REPO = Path(__file__).resolve().parents[2]


def audioset_labels() -> list[str]:
    import csv

    with open(REPO / "model" / "data" / "class_label_indice.csv", newline="") as file:
        return [row["display_name"] for row in csv.DictReader(file)]


def test_desed_config_holds_the_official_mapping_and_thresholds():
    targets = targets_from_config(load_config(REPO / "configs" / "desed.toml").events, audioset_labels(), None)
    official = {  # golden README: DESED class -> AudioSet indices, frame threshold
        "Speech": (list(range(0, 8)), 0.275),
        "Frying": ([366, 367, 368], 0.2),
        "Dishes": ([364], 0.20),
        "Running_water": (list(range(288, 298)), 0.23),
        "Blender": ([369], 0.48),
        "Electric_shaver_toothbrush": ([382], 0.20),
        "Alarm_bell_ringing": ([310, *range(388, 403)], 0.18),
        "Cat": (list(range(81, 86)), 0.51),
        "Dog": (list(range(74, 80)), 0.39),
        "Vacuum_cleaner": ([377], 0.14),
    }
    assert [target.name for target in targets] == list(official)
    for target in targets:
        assert (list(target.classes), target.on, target.off) == (*official[target.name], official[target.name][1])
