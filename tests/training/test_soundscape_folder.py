"""Soundscape folders read as they come: DESED-style (audio/ plus an event table and a durations table) and our own
sets; classes chosen and ordered; overlapping events merged; bad folders refused in one line."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from htsat_live.cli import main
from htsat_live.training.data import load_set
from htsat_live.training.mel_cache import cache_home
from htsat_live.training.soundscape_folder import choose_classes, read_folder

DEMO_LABELS = ["Alarm", "Animal", "Bird", "Music", "Speech", "Water"]  # sorted by name


def test_a_desed_style_folder_is_read_with_its_events_merged_and_its_classes_sorted(desed_dir):
    folder = read_folder(desed_dir)
    assert folder.audio_dir == desed_dir / "audio"
    assert folder.names == [f"demo_{k}.wav" for k in range(6)]
    assert folder.labels == DEMO_LABELS
    assert folder.merged == 1  # the Bird event at 3-4 s inside the one at 2.47-4.91 s
    birds = folder.events[(folder.events.filename == "demo_0.wav") & (folder.events.event_label == "Bird")]
    assert list(zip(birds.onset, birds.offset)) == [(2.47, 4.91)]
    assert list(folder.durations.duration) == [10.0] * 5 + [7.0]
    assert folder.data_hash == read_folder(desed_dir).data_hash and len(folder.data_hash) == 64


def test_the_tables_may_sit_in_metadata_under_desed_names_and_any_rate_is_read(desed_dir, tmp_path):
    copy = tmp_path / "validation"
    shutil.copytree(desed_dir / "audio", copy / "audio")
    (copy / "metadata").mkdir()
    shutil.copy(desed_dir / "soundscapes.tsv", copy / "metadata" / "validation.tsv")
    shutil.copy(desed_dir / "durations.tsv", copy / "metadata" / "validation_durations.tsv")
    folder = read_folder(copy)
    assert folder.labels == DEMO_LABELS and len(folder.events) == len(read_folder(desed_dir).events)
    data = load_set(folder, ["Water", "Bird"], 32, tmp_path / "cache", progress=False)
    assert tuple(data.mels.shape) == (6, 1001, 64)  # 44.1-kHz stereo clips -> 32 kHz mono, the 7-s one padded to 10 s
    assert data.mels[5, 800:].float().max() < data.mels[5, :600].float().max() - 30  # the padding is silence
    # demo_0 holds Bird (2.47-4.91 s) and Water (6.512-9.652 s); no class but these two is a target
    assert data.clip_targets[0].tolist() == [1.0, 1.0] and data.token_targets.shape == (6, 32, 2)
    assert data.token_targets[0, 8:15, 1].min() == 1.0 and data.token_targets[0, :7, 1].max() == 0.0


def test_classes_are_chosen_and_ordered_or_refused(desed_dir):
    folder = read_folder(desed_dir)
    assert choose_classes(folder, None) == DEMO_LABELS
    assert choose_classes(folder, ["Water", "Bird"]) == ["Water", "Bird"]
    with pytest.raises(ValueError, match="no events of Dog"):
        choose_classes(folder, ["Bird", "Dog"])
    with pytest.raises(ValueError, match="more than once"):
        choose_classes(folder, ["Bird", "Bird"])


def unusable(desed_dir: Path, root: Path, case: str) -> tuple[Path, str]:
    """A copy of the DESED-style folder broken in one way, and the message it must give."""
    folder = root / case
    shutil.copytree(desed_dir, folder)
    if case == "no durations":
        (folder / "durations.tsv").unlink()
        return folder, "no durations table (a .tsv with filename, duration) in the folder or its metadata/"
    if case == "two event tables":
        shutil.copy(folder / "soundscapes.tsv", folder / "copy.tsv")
        return folder, "2 event tables (copy.tsv, soundscapes.tsv): keep one"
    if case == "missing clip":
        (folder / "audio" / "demo_3.wav").unlink()
        return folder, "1 clips of durations.tsv are missing (first: demo_3.wav)"
    if case == "reversed event":
        text = (folder / "soundscapes.tsv").read_text().replace("2.47\t4.91", "4.91\t2.47")
        (folder / "soundscapes.tsv").write_text(text)
        return folder, "onset 4.91 s is after offset 2.47 s"
    return root / "nowhere", "not a folder"


@pytest.mark.parametrize("case", ["no durations", "two event tables", "missing clip", "reversed event", "not a folder"])
def test_an_unusable_folder_is_one_line_and_exit_2(desed_dir, tmp_path, capsys, case):
    folder, message = unusable(desed_dir, tmp_path, case)
    assert main(["train", "--train-dir", str(folder), "--val-dir", str(desed_dir), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_unknown_classes_are_one_line_and_exit_2(desed_dir, train_on_desed, tmp_path, capsys):
    assert train_on_desed(tmp_path / "run", "--classes", "Bird,Dog") == 2
    assert capsys.readouterr().err.strip() == (
        f"train: {desed_dir}: no events of Dog (its labels: {', '.join(DEMO_LABELS)})"
    )


def test_log_mels_are_cached_outside_the_data_folder(desed_dir, tmp_path, monkeypatch):
    before = sorted(p.relative_to(desed_dir) for p in desed_dir.rglob("*"))
    first = load_set(read_folder(desed_dir), ["Bird"], 32, cache_home(), progress=False)
    entries = list((cache_home() / "soundscape-logmels").glob("*.npy"))
    assert len(entries) == 1 and cache_home() == Path(os.environ["XDG_CACHE_HOME"]) / "htsat-live"  # the test's own
    assert sorted(p.relative_to(desed_dir) for p in desed_dir.rglob("*")) == before  # nothing written into the data
    np.testing.assert_array_equal(np.load(entries[0]), first.mels.numpy())
    again = load_set(read_folder(desed_dir), ["Bird"], 32, cache_home(), progress=False)  # read back, not recomputed
    monkeypatch.setattr("htsat_live.training.data.folder_logmels", lambda *args: pytest.fail("recomputed"))
    third = load_set(read_folder(desed_dir), ["Bird"], 32, cache_home(), progress=False)
    assert np.array_equal(third.mels.numpy(), again.mels.numpy())
    assert cache_home(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_home() == tmp_path / "home" / ".cache" / "htsat-live"
