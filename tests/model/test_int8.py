"""int8: ONNX Runtime's (dynamic quantisation) keeps the embedded model's events on the demo recording;
OpenVINO's is calibrated on a folder of the site's own recordings once per calibration set, and an unusable
folder is one line naming the flag."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.model import (
    DEFAULT_MODEL,
    DEMO_RECORDING,
    build_targets,
    load_model,
    official_events,
    offline_timeline,
)
from htsat_live.model.audio import read_clip
from htsat_live.model.checkpoint import build_model, read_checkpoint
from htsat_live.model.onnx import export_onnx
from htsat_live.model.timebase import SAMPLE_RATE


def test_int8_embedded_model_finds_the_fp32_events_on_the_demo(tmp_path):
    checkpoint = read_checkpoint(DEFAULT_MODEL)
    int8 = load_model(
        export_onnx(build_model(checkpoint, DEFAULT_MODEL), checkpoint, tmp_path / "starter.int8.onnx", int8=True)
    )
    fp32 = load_model()
    wave = read_clip(DEMO_RECORDING)
    targets = build_targets(fp32.labels, fp32.thresholds)
    expected, _ = official_events(offline_timeline(fp32, wave), targets, fp32.median_frames)
    found, _ = official_events(offline_timeline(int8, wave), targets, fp32.median_frames)
    assert len(expected) >= 10
    assert found == expected


@pytest.fixture
def site_recordings(tmp_path) -> Path:
    """A calibration folder of the demo recording's pieces: 25 s (two windows; its 5-s tail is left out) and, one
    folder down, 6 s (a window of its own), beside a file that is not audio and a broken one."""
    wave = read_clip(DEMO_RECORDING)
    folder = tmp_path / "site"
    (folder / "monday").mkdir(parents=True)
    soundfile.write(folder / "yard.wav", wave[: 25 * SAMPLE_RATE], SAMPLE_RATE)
    soundfile.write(folder / "monday" / "gate.flac", wave[25 * SAMPLE_RATE : 31 * SAMPLE_RATE], SAMPLE_RATE)
    (folder / "notes.txt").write_text("not audio")
    (folder / "broken.wav").write_bytes(b"RIFF, but nothing more")
    return folder


@pytest.mark.timeout(400)
def test_openvino_int8_calibrates_on_a_folder_once_per_calibration_set(
    tiny_checkpoint, tiny_outputs, site_recordings, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    own = load_model(tiny_checkpoint, backend="openvino", precision="int8", calibration=site_recordings)
    err = capfd.readouterr().err
    assert f"calibrated on the recordings in {site_recordings}" in err
    assert "calibrating int8 on 3 windows of 10 s" in err  # 2 of yard.wav, 1 of gate.flac; the default set has 29
    assert "calibration: skipped" in err and "broken.wav" in err
    trunks = sorted((tmp_path / "cache" / "htsat-live" / "openvino").glob("*-int8-*.xml"))
    assert len(trunks) == 1 and "FakeQuantize" in trunks[0].read_text()
    written = trunks[0].stat().st_mtime_ns

    wave = tiny_outputs["wave10"].numpy()
    again = load_model(tiny_checkpoint, backend="openvino", precision="int8", calibration=site_recordings)
    assert "calibrat" not in capfd.readouterr().err  # the cached trunk, not a second calibration
    assert trunks[0].stat().st_mtime_ns == written
    np.testing.assert_array_equal(again.predict(wave)["framewise"], own.predict(wave)["framewise"])

    soundfile.write(site_recordings / "night.wav", read_clip(DEMO_RECORDING)[: 12 * SAMPLE_RATE], SAMPLE_RATE)
    load_model(tiny_checkpoint, backend="openvino", precision="int8", calibration=site_recordings)
    assert "calibrating int8 on 4 windows of 10 s" in capfd.readouterr().err  # another set: calibrated anew
    assert len(list((tmp_path / "cache" / "htsat-live" / "openvino").glob("*-int8-*.xml"))) == 2


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--backend", "openvino", "--precision", "int8", "--calibration", "{missing}"], "no such folder"),
        (["--backend", "openvino", "--precision", "int8", "--calibration", "{empty}"], "holds no audio files"),
        (["--backend", "openvino", "--calibration", "{empty}"], "needs --precision int8"),
    ],
)
@pytest.mark.parametrize("command", ["detect", "bench --stream"])
def test_unusable_calibration_folder_is_one_line_and_exit_2(tmp_path, capsys, command, arguments, message):
    from htsat_live.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    folders = {"missing": tmp_path / "missing", "empty": empty}
    assert main([*command.split(), *(argument.format(**folders) for argument in arguments)]) == 2
    captured = capsys.readouterr()
    lines = (captured.err + captured.out).strip().splitlines()
    assert len(lines) == 1 and "--calibration" in lines[0] and message in lines[0]
