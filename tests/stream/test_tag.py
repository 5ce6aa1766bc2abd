import json

import numpy as np
import pytest
import soundfile

from htsat_live.cli import main
from htsat_live.model import load_model
from htsat_live.stream.replay import file_timeline, tail_window
from htsat_live.stream.windows import WindowScheduler


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint)


def test_windows_cover_the_whole_file_with_a_padded_tail():
    scheduler = WindowScheduler(10)
    windows = scheduler.due(23 * 32000)
    windows.append(tail_window(scheduler, windows[-1].stop, 23 * 32000))
    assert [(w.start, w.stop) for w in windows] == [(0, 320000), (320000, 640000), (640000, 736000)]


def test_timeline_at_hop_10_is_the_windows_framewise_output_laid_end_to_end(model):
    rng = np.random.default_rng(1)
    wave = (0.1 * rng.standard_normal(25 * 32000)).astype(np.float32)
    timeline = file_timeline(model, wave, hop_seconds=10)
    first = model.predict(wave[:320000], short="pad")["framewise"][0]
    second = model.predict(wave[320000:640000], short="pad")["framewise"][0]
    tail = model.predict(wave[640000:], short="pad")["framewise"][0][: model.frames_for(5 * 32000)]
    expected = np.concatenate([first, second, tail])
    assert timeline.shape == expected.shape
    assert np.abs(timeline - expected).max() <= 1e-6


def test_tag_command_prints_top_labels_and_events_as_json(tiny_checkpoint, tmp_path, capsys):
    t = np.arange(12 * 32000) / 32000
    path = tmp_path / "tone.wav"
    soundfile.write(path, np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1), 32000)  # stereo
    assert main(["tag", str(path), "--model", str(tiny_checkpoint), "--json", "--top-k", "3", "--hop", "2.5"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["seconds"] == 12.0
    assert len(result["top"]) == 3 and result["top"][0]["peak"] >= result["top"][1]["peak"]
    for event in result["events"]:
        assert 0 <= event["onset"] < event["offset"] <= 12.01


def test_tag_reports_an_unreadable_file_and_goes_on(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    good = tmp_path / "good.wav"
    soundfile.write(good, np.zeros(32000, dtype=np.float32), 32000)
    assert main(["tag", str(bad), str(good), "--model", str(tiny_checkpoint)]) == 1
    captured = capsys.readouterr()
    assert "bad.wav" in captured.err and "good.wav" in captured.out


def test_tag_summarises_the_stitched_timeline_as_it_streams(model, tmp_path):
    from htsat_live.model import runs_to_events
    from htsat_live.stream.tag import tag_file

    rng = np.random.default_rng(3)
    wave = (0.2 * rng.standard_normal(37 * 32000)).astype(np.float32)
    soundfile.write(tmp_path / "noise.wav", wave, 32000, subtype="FLOAT")
    result = tag_file(model, str(tmp_path / "noise.wav"), hop_seconds=2.5, top_k=10, max_events=1000, threshold=0.3)
    timeline = file_timeline(model, wave, hop_seconds=2.5)  # [T, C], held whole: the reference
    assert result["seconds"] == 37.0
    for entry in result["top"]:
        column = model.labels.index(entry["label"])
        assert entry["peak"] == round(float(timeline[:, column].max()), 4)
        assert entry["mean"] == pytest.approx(float(timeline[:, column].mean()), abs=1e-4)
    expected = sorted(
        (model.labels.index(label), start, end) for start, end, label in runs_to_events(timeline > 0.3, model.labels)
    )
    got = sorted(
        (
            model.labels.index(e["label"]),
            round(e["onset"] / model.frame_seconds),
            round(e["offset"] / model.frame_seconds),
        )
        for e in result["events"]
    )
    assert expected and got == expected


def test_tag_keeps_only_the_strongest_events(model, tmp_path):
    from htsat_live.stream.tag import tag_file

    rng = np.random.default_rng(4)
    soundfile.write(tmp_path / "noise.wav", (0.2 * rng.standard_normal(20 * 32000)).astype(np.float32), 32000)
    every = tag_file(model, str(tmp_path / "noise.wav"), 2.5, 3, 1000, 0.3)["events"]
    strongest = tag_file(model, str(tmp_path / "noise.wav"), 2.5, 3, 2, 0.3)["events"]
    assert len(every) > 2 and strongest == every[:2]
    assert [e["peak"] for e in every] == sorted((e["peak"] for e in every), reverse=True)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 100, None])
def test_tag_with_a_bad_model_is_one_line_and_exit_2(tmp_path, content, capsys):
    good = tmp_path / "good.wav"
    soundfile.write(good, np.zeros(32000, dtype=np.float32), 32000)
    bad = tmp_path / "bad.ckpt"
    if content is not None:
        bad.write_bytes(content)
    assert main(["tag", str(good), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.ckpt" in err and len(err.strip().splitlines()) == 1
    assert "weights_only" not in err and "unpickle" not in err
