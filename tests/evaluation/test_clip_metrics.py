"""`htsat-live evaluate --clips`: accuracy, mAP, the confusion matrix (text and PNG) and strict JSON, run on the
embedded starter model with real recordings of two of its classes (espeak-ng words for Speech, scratch's music
loops for Music)."""

import json
import shutil

import numpy as np
import pytest

from htsat_live.cli import main
from htsat_live.model.embedded import DEFAULT_MODEL


def evaluate_clips(capsys, clips, *options: str) -> tuple[int, str, str]:
    """`htsat-live evaluate --clips CLIPS --model <the embedded model> *options` run in this process (exit code,
    stdout, stderr)."""
    code = main(["evaluate", "--clips", str(clips), "--model", str(DEFAULT_MODEL), *options])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def speech_and_music(esc50_clips, speech_commands_clips, tmp_path_factory):
    """A folder per class: Speech (six espeak-ng words) and Music (six music-loop clips), plus one broken file."""
    root = tmp_path_factory.mktemp("speech-music")
    (root / "Speech").mkdir()
    (root / "Music").mkdir()
    for i, path in enumerate(sorted(speech_commands_clips.glob("*/*_nohash_0.wav"))[:6]):
        shutil.copy(path, root / "Speech" / f"{i}.wav")
    for i, path in enumerate(sorted((esc50_clips / "audio").glob("*-2.wav"))[:6]):  # target 2: Music
        shutil.copy(path, root / "Music" / f"{i}.wav")
    (root / "Music" / "broken.wav").write_bytes(b"RIFF....WAVE but nothing else")
    return root


def test_single_label_json_has_accuracy_map_and_a_confusion_matrix_that_agree(speech_and_music, tmp_path, capsys):
    png = tmp_path / "cm.png"
    code, out, err = evaluate_clips(capsys, speech_and_music, "--json", "--confusion", str(png))
    assert code == 0, err
    figures = json.loads(out)
    assert "NaN" not in out and "Infinity" not in out  # strict JSON (json.loads would take them)
    assert figures["clips"] == 12 and figures["skipped"] == 1
    assert "broken.wav" in err
    matrix = np.array(figures["confusion"]["matrix"])
    assert figures["confusion"]["labels"] == ["Music", "Speech"] and matrix.sum() == 12
    assert figures["accuracy"] == pytest.approx(np.trace(matrix) / 12)
    assert 0 <= figures["map"] <= 1 and set(figures["per_class"]) == {"Music", "Speech"}
    assert figures["per_class"]["Speech"]["accuracy"] == pytest.approx(matrix[1, 1] / matrix[1].sum())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_text_report_prints_the_confusion_matrix(speech_and_music, tmp_path, capsys):
    code, out, err = evaluate_clips(capsys, speech_and_music, "--confusion", str(tmp_path / "cm.png"))
    assert code == 0, err
    assert "accuracy (top-1)" in out and "true / predicted" in out
    assert f"confusion matrix -> {tmp_path / 'cm.png'}" in out


def test_multi_label_csv_gives_map_and_no_accuracy(speech_and_music, tmp_path, capsys):
    table = tmp_path / "labels.csv"
    rows = [
        f"{speech_and_music / 'Speech' / '0.wav'},Speech",
        f"{speech_and_music / 'Music' / '0.wav'},Music",
        f'{speech_and_music / "Music" / "1.wav"},"Music,Speech"',
    ]
    table.write_text("filename,labels\n" + "\n".join(rows) + "\n")
    code, out, err = evaluate_clips(capsys, table, "--json")
    assert code == 0, err
    figures = json.loads(out)
    assert figures["accuracy"] is None and 0 < figures["map"] <= 1 and "confusion" not in figures


def test_a_class_the_model_lacks_is_one_line_and_exit_2(speech_and_music, tmp_path, capsys):
    (tmp_path / "Dog").mkdir()
    shutil.copy(speech_and_music / "Music" / "0.wav", tmp_path / "Dog" / "0.wav")
    code, out, err = evaluate_clips(capsys, tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        f"evaluate: {DEFAULT_MODEL}: the model has no class 'Dog' of {tmp_path} (1 of 1 missing)"
    ]
