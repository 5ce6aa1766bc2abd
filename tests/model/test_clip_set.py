"""Clip sets read as they come (folder per class, ESC-50, Speech Commands, a label CSV), tiling and windows, and
the clip-level scores, on sets built from real recordings (Debian's scratch sounds, espeak-ng words)."""

import shutil

import numpy as np
import pytest

from htsat_live.model.audio import AudioFileError, read_clip
from htsat_live.model.clip_set import (
    ClipSetError,
    clip_scores,
    clip_windows,
    read_clip_set,
    read_windows,
)
from htsat_live.model.timebase import SAMPLE_RATE, WINDOW_SAMPLES


def test_esc50_layout_gives_categories_in_target_order_and_the_folds(esc50_clips):
    clips = read_clip_set(esc50_clips)
    assert clips.layout == "esc50" and not clips.multi_label
    assert clips.labels == ["Human", "Vocals", "Music", "Electronic", "Instrument", "Percussion"]  # target 0..5
    assert {clip.fold for clip in clips.clips} == {1, 2, 3, 4, 5}
    assert all(clip.path.parent == esc50_clips / "audio" and clip.path.is_file() for clip in clips.clips)
    # the clips cut from one recording share a fold, as in ESC-50
    folds_of_recording = {}
    for clip in clips.clips:
        folds_of_recording.setdefault(clip.path.name.split("-")[1], set()).add(clip.fold)
    assert all(len(folds) == 1 for folds in folds_of_recording.values())


def test_speech_commands_layout_takes_its_lists_and_leaves_background_noise_out(speech_commands_clips):
    clips = read_clip_set(speech_commands_clips)
    assert clips.layout == "speech_commands"
    assert clips.labels == ["no", "up", "yes"]
    splits = [clip.split for clip in clips.clips]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (6, 3, 3)
    assert all(clip.path.name.startswith("en_") for clip in clips.clips if clip.split == "val")
    assert "_background_noise_" not in clips.labels
    assert any("_background_noise_" in note and "left out" in note for note in clips.notes)


def test_a_one_second_word_is_tiled_ten_times_to_the_models_ten_seconds(speech_commands_clips):
    path = speech_commands_clips / "yes" / "en_nohash_0.wav"
    wave = read_clip(path)
    assert len(wave) == SAMPLE_RATE  # 1 s at 16 kHz, resampled to 32 kHz
    windows = read_windows(path)
    assert windows.shape == (1, WINDOW_SAMPLES)
    np.testing.assert_array_equal(windows[0].reshape(10, SAMPLE_RATE), np.tile(wave, (10, 1)))


def test_five_seconds_tile_twice_and_a_long_clip_is_cut_into_windows_from_start_to_end():
    five = np.arange(5 * SAMPLE_RATE, dtype=np.float32)
    np.testing.assert_array_equal(clip_windows(five)[0], np.concatenate([five, five]))
    long = np.arange(25 * SAMPLE_RATE, dtype=np.float32)
    windows = clip_windows(long)
    assert windows.shape == (3, WINDOW_SAMPLES)
    assert windows[0, 0] == 0 and windows[-1, -1] == long[-1]
    np.testing.assert_array_equal(windows[1], long[int(7.5 * SAMPLE_RATE) : int(17.5 * SAMPLE_RATE)])


def test_folder_per_class_and_an_unreadable_file_that_read_windows_names(esc50_clips, tmp_path):
    for name in ("Music", "Human"):
        (tmp_path / name).mkdir()
    for i, path in enumerate(sorted((esc50_clips / "audio").glob("*-2.wav"))[:3]):  # target 2: Music
        shutil.copy(path, tmp_path / "Music" / f"loop{i}.wav")
    for i, path in enumerate(sorted((esc50_clips / "audio").glob("*-0.wav"))[:2]):  # target 0: Human
        shutil.copy(path, tmp_path / "Human" / f"sound{i}.wav")
    (tmp_path / "Human" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    clips = read_clip_set(tmp_path)
    assert clips.layout == "folders" and clips.labels == ["Human", "Music"]
    assert clips.targets().sum(axis=0).tolist() == [3, 3]
    with pytest.raises(AudioFileError, match="broken.wav"):
        read_windows(tmp_path / "Human" / "broken.wav")


def test_a_label_csv_is_multi_label(esc50_clips, tmp_path):
    names = sorted(p.name for p in (esc50_clips / "audio").iterdir())[:3]
    (tmp_path / "labels.csv").write_text(
        f'filename,labels\naudio/{names[0]},"Music,Speech"\naudio/{names[1]},Music\naudio/{names[2]}, "Bird"\n'
    )
    clips = read_clip_set(tmp_path / "labels.csv")
    assert clips.multi_label and clips.layout == "csv"
    assert clips.labels == ["Bird", "Music", "Speech"]
    assert [clip.labels for clip in clips.clips] == [("Music", "Speech"), ("Music",), ("Bird",)]
    assert clips.clips[0].path == tmp_path / "audio" / names[0]


def test_a_folder_without_any_layout_is_one_clear_error(tmp_path):
    with pytest.raises(ClipSetError, match="no audio in class folders"):
        read_clip_set(tmp_path)
    with pytest.raises(ClipSetError, match="no such folder"):
        read_clip_set(tmp_path / "missing")


def test_clip_scores_give_accuracy_top5_and_average_precision():
    targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    probabilities = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.1, 0.3]])
    scores = clip_scores(probabilities, targets, ["a", "b", "c"], multi_label=False)
    assert scores["accuracy"] == 0.75 and scores["top5_accuracy"] == 1.0
    assert scores["per_class"]["b"] == {"clips": 1, "ap": 1.0, "accuracy": 0.0}
    multi = clip_scores(probabilities, targets, ["a", "b", "c"], multi_label=True)
    assert multi["accuracy"] is None and 0 < multi["map"] <= 1
