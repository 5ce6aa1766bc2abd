"""Clip training (`htsat-live train --clips`): splits, the feature cache, bad files, and a fine-tune of the
embedded starter model on real recordings it never met, whose checkpoint then detects like any other."""

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import torch

from htsat_live.cli import main
from htsat_live.model import load_model
from htsat_live.model.audio import read_clip
from htsat_live.model.checkpoint import read_checkpoint
from htsat_live.model.clip_set import ClipSetError, read_clip_set
from htsat_live.model.embedded import DEFAULT_MODEL
from htsat_live.model.event_rule import build_targets, detect_clip
from htsat_live.training.clip_splits import fold_splits, holdout_split
from htsat_live.training.clip_training import (
    ClipRecipe,
    clip_features,
    learning_rate_schedule,
)

FINE_TUNE_CLASSES = ["Human", "Vocals", "Music", "Electronic", "Instrument"]  # their ESC-50 target order


def htsat_live(*args: str) -> tuple[int, str, str]:
    """The command run in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_holdout_keeps_at_least_one_clip_of_every_class_for_validation(esc50_clips):
    clips = read_clip_set(esc50_clips)
    train, val = holdout_split(clips, 0.15, seed=0)
    assert not set(train) & set(val) and len(train) + len(val) == len(clips.clips)
    targets = clips.targets()
    assert (targets[val].sum(axis=0) >= 1).all()
    assert abs(len(val) / len(clips.clips) - 0.15) < 0.05


def test_esc50_folds_are_its_own_and_other_sets_fold_stratified(esc50_clips, speech_commands_clips):
    clips = read_clip_set(esc50_clips)
    splits = fold_splits(clips, 5)
    assert [sorted({clips.clips[i].fold for i in val}) for _, val in splits] == [[1], [2], [3], [4], [5]]
    with pytest.raises(ClipSetError, match="has 5 folds"):
        fold_splits(clips, 4)
    words = read_clip_set(speech_commands_clips)  # 4 clips per word
    with pytest.raises(ClipSetError, match="at least 5 clips of every class; too few: no \\(4\\)"):
        fold_splits(words, 5)
    assert all(len(val) == 3 for _, val in fold_splits(words, 4))  # one voice's worth of each word per fold


def test_speech_commands_trains_on_its_lists(speech_commands_clips):
    clips = read_clip_set(speech_commands_clips)
    train, val = holdout_split(clips)
    assert {clips.clips[i].split for i in train} == {"train"} and {clips.clips[i].split for i in val} == {"val"}


def test_a_class_with_too_few_clips_is_one_line_and_exit_2(esc50_clips, tmp_path):
    for name, count in (("Music", 3), ("Human", 1)):
        (tmp_path / name).mkdir()
        for i, path in enumerate(sorted((esc50_clips / "audio").glob(f"*-{2 if name == 'Music' else 0}.wav"))[:count]):
            shutil.copy(path, tmp_path / name / f"{i}.wav")
    code, _, err = htsat_live("train", "--clips", str(tmp_path), "--out", str(tmp_path / "run"))
    assert code == 2
    assert err.strip().splitlines() == [
        f"train: {tmp_path}: a 15% hold-out needs at least 2 clips of every class; too few: Human (1)"
    ]


def test_the_split_is_drawn_once_over_the_readable_clips(esc50_clips, tmp_path):
    data = tmp_path / "data"
    for name, count in (("Music", 3), ("Human", 1)):
        (data / name).mkdir(parents=True)
        for i, path in enumerate(sorted((esc50_clips / "audio").glob(f"*-{2 if name == 'Music' else 0}.wav"))[:count]):
            shutil.copy(path, data / name / f"{i}.wav")
    (data / "Human" / "broken.wav").write_bytes(b"not audio at all")  # two Human clips, one of them readable
    code, _, err = htsat_live(
        "train", "--clips", str(data), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")
    )
    assert code == 2
    assert "skipped (unreadable): " in err and "broken.wav" in err
    assert err.strip().splitlines()[-1] == (
        f"train: {data}: a 15% hold-out needs at least 2 clips of every class; too few: Human (1)"
    )


def test_log_mels_are_cached_by_content_and_unreadable_files_are_skipped(esc50_clips, tmp_path):
    data = tmp_path / "data"
    (data / "Music").mkdir(parents=True)
    sources = sorted((esc50_clips / "audio").glob("*-2.wav"))[:2]
    shutil.copy(sources[0], data / "Music" / "a.wav")
    shutil.copy(sources[0], data / "Music" / "same_bytes.wav")
    shutil.copy(sources[1], data / "Music" / "b.wav")
    (data / "Music" / "broken.wav").write_bytes(b"not audio at all")
    cache = tmp_path / "cache"
    features = clip_features(read_clip_set(data), cache, progress=False)
    assert [clip.path.name for clip in features.clip_set.clips] == ["a.wav", "b.wav", "same_bytes.wav"]
    assert len(features.skipped) == 1 and "broken.wav" in features.skipped[0]
    assert features.mels.shape == (3, 1001, 64) and features.mels.dtype == torch.float16
    entries = sorted((cache / "clip-logmels").iterdir())
    assert len(entries) == 2  # keyed by content: two files with the same bytes share one entry
    stamps = [entry.stat().st_mtime_ns for entry in entries]
    again = clip_features(read_clip_set(data), cache, progress=False)
    assert [entry.stat().st_mtime_ns for entry in sorted((cache / "clip-logmels").iterdir())] == stamps
    assert torch.equal(again.mels, features.mels)


def test_the_schedule_warms_up_then_halves_every_decay_period():
    recipe = ClipRecipe(warmup_epochs=2, decay_every=3, decay_factor=0.5, lr=1.0)
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    schedule = learning_rate_schedule(optimizer, steps_per_epoch=2, recipe=recipe)
    rates = []
    for _ in range(16):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    np.testing.assert_allclose(rates, [0.25, 0.5, 0.75, 1.0] + [1.0] * 6 + [0.5] * 6)


@pytest.fixture(scope="module")
def fine_tuned(esc50_clips, tmp_path_factory):
    """The starter model fine-tuned on fold 2-5 of five classes of the ESC-50-shaped set, validated on fold 1."""
    root = tmp_path_factory.mktemp("fine-tune")
    data = root / "esc5"
    (data / "meta").mkdir(parents=True)
    shutil.copytree(esc50_clips / "audio", data / "audio")
    lines = (esc50_clips / "meta" / "esc50.csv").read_text().splitlines()
    (data / "meta" / "esc50.csv").write_text(
        "\n".join([lines[0]] + [line for line in lines[1:] if line.split(",")[3] in FINE_TUNE_CLASSES]) + "\n"
    )
    code, out, err = htsat_live(
        "train",
        "--clips",
        str(data),
        "--folds",
        "5",
        "--fold",
        "1",
        "--init",
        str(DEFAULT_MODEL),
        "--epochs",
        "6",
        "--out",
        str(root / "run"),
    )
    assert code == 0, err[-2000:]
    return data, root / "run" / "best.safetensors", out + err


@pytest.mark.timeout(600)  # the first one fine-tunes the starter model for the module
def test_fine_tuning_the_starter_model_on_unseen_recordings_beats_chance_widely(fine_tuned):
    """Five classes of recordings the starter never met (scratch's human sounds, vocals, music loops, electronic
    sounds, instruments); fold 1 (19 clips: Music 6, Human 4, the others 3) is held out. Chance is 0.2 and always
    answering the largest class scores 6/19 = 0.32; the test asks for 0.45 (9 of 19), which a model that learnt
    nothing of the classes does not reach. Runs of this recipe here reached 0.58 to 0.63 (seeds 8, 1, 2); the
    margin allows for bf16 arithmetic that differs from run to run."""
    data, best, stdout = fine_tuned
    checkpoint = read_checkpoint(best)
    assert checkpoint.labels == FINE_TUNE_CLASSES
    assert len(checkpoint.thresholds) == 5 and all(0 < t < 1 for t in checkpoint.thresholds)
    provenance = checkpoint.metadata["provenance"]
    assert provenance["data"]["layout"] == "esc50" and provenance["data"]["fold"] == 1
    assert len(provenance["data"]["hash"]) == 64
    assert provenance["recipe"]["mixup_alpha"] == 0.5 and provenance["recipe"]["time_mask_frames"] == 128
    assert "SequentialLR" in provenance["recipe"]["schedule"] and provenance["recipe"]["init"] == str(DEFAULT_MODEL)
    accuracy = provenance["metrics"]["validation"]["accuracy"]
    assert accuracy >= 0.45, stdout
    assert "training clips/s" in stdout and "best epoch" in stdout


@pytest.mark.timeout(600)  # the first one fine-tunes the starter model for the module
def test_a_clip_trained_model_detects_its_class_in_a_recording(fine_tuned):
    data, best, _ = fine_tuned
    model = load_model(best)
    loop = sorted((data / "audio").glob("*-2.wav"))[0]  # target 2: Music
    events, _ = detect_clip(model, read_clip(loop), build_targets(model.labels, model.thresholds), model.median_frames)
    assert "Music" in {label for _, _, label in events}


@pytest.mark.timeout(600)  # the first one fine-tunes the starter model for the module
def test_evaluate_on_the_fine_tuned_model_gives_strict_json(fine_tuned, tmp_path):
    data, best, _ = fine_tuned
    held_out = tmp_path / "fold-1"  # the validation fold alone: an ESC-50 folder whose csv lists fold 1
    (held_out / "meta").mkdir(parents=True)
    (held_out / "audio").symlink_to(data / "audio")
    lines = (data / "meta" / "esc50.csv").read_text().splitlines()
    (held_out / "meta" / "esc50.csv").write_text(
        "\n".join([lines[0]] + [line for line in lines[1:] if line.split(",")[1] == "1"]) + "\n"
    )
    code, out, err = htsat_live(
        "evaluate",
        "--clips",
        str(held_out),
        "--model",
        str(best),
        "--json",
        "--confusion",
        str(tmp_path / "confusion.png"),
    )
    assert code == 0, err[-2000:]
    figures = json.loads(out)
    validation = read_checkpoint(best).metadata["provenance"]["metrics"]["validation"]
    assert figures["accuracy"] == pytest.approx(
        validation["accuracy"], abs=0.15
    )  # the same clips, fp32 instead of bf16
    assert 0 < figures["map"] <= 1
    assert sum(map(sum, figures["confusion"]["matrix"])) == figures["clips"]
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
