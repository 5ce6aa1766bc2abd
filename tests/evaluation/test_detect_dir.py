"""`htsat-live detect-dir` in offline mode, end to end with the tiny golden model, then `evaluate`."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from htsat_live.cli import main
from htsat_live.evaluation.consistency import stream_replay
from htsat_live.model import detect_clip, load_model, read_clip
from htsat_live.stream.config import load_config
from htsat_live.stream.events import targets_from_config

TINY = Path(__file__).resolve().parents[1] / "data" / "htsat_tiny.ckpt"
CONFIG = """
[events]
threshold = 0.5
[events.groups]
pair = ["class_6", 9]
"""


def noise_clip(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """Noise whose loudness swells and fades: [frames, channels] float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.05 + 0.2 * (1 + np.sin(2 * np.pi * 0.25 * t + seed))
    return (envelope[:, None] * rng.standard_normal((len(t), channels))).astype(np.float32)


def detect_dir(folder: Path, config: Path, out: Path, *options: str) -> int:
    """`htsat-live detect-dir FOLDER --model <tiny> --config CONFIG --out OUT *options`: its exit code."""
    return main(["detect-dir", str(folder), "--model", str(TINY), "--config", str(config), "--out", str(out), *options])


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    soundfile.write(folder / "a.wav", noise_clip(10.0, 32000, 1, 1), 32000, subtype="FLOAT")
    soundfile.write(folder / "b.wav", noise_clip(4.0, 16000, 2, 2), 16000, subtype="FLOAT")  # resampled, mixed down
    soundfile.write(folder / "c.flac", noise_clip(12.0, 32000, 1, 3), 32000)  # cut to its first 10 s
    (folder / "notes.txt").write_text("not audio")
    config = tmp_path / "targets.toml"
    config.write_text(CONFIG)
    return folder, config


def test_detect_dir_offline_writes_the_official_events_of_every_clip(clips, tmp_path):
    folder, config = clips
    out, scores = tmp_path / "detections.tsv", tmp_path / "scores"
    code = detect_dir(folder, config, out, "--scores", str(scores))
    assert code == 0
    detections = pd.read_csv(out, sep="\t")
    model = load_model(TINY)
    targets = targets_from_config(load_config(config).events, model.labels, model.thresholds)
    names = [target.name for target in targets]
    assert "pair" in names and len(names) == 11
    for name in ("a.wav", "b.wav", "c.flac"):
        expected, _ = detect_clip(model, read_clip(folder / name), targets)
        got = detections[detections.filename == name]
        assert sorted(zip(got.onset, got.offset, got.event_label)) == sorted(expected)
    assert set(detections.filename) == {"a.wav", "b.wav", "c.flac"}
    assert detections[detections.filename == "b.wav"].offset.max() <= 4.00390625
    assert len(pd.read_csv(scores / "b.tsv", sep="\t")) == 410  # frames of 4 s of audio
    assert list(pd.read_csv(scores / "a.tsv", sep="\t").columns) == ["onset", "offset", *names]


def test_detections_scored_against_themselves_give_f1_one_and_a_psds(clips, tmp_path, capsys):
    folder, config = clips
    out, scores, meta = tmp_path / "detections.tsv", tmp_path / "scores", tmp_path / "meta.tsv"
    detect_dir(folder, config, out, "--scores", str(scores))
    meta.write_text("filename\tduration\na.wav\t10.0\nb.wav\t4.0\nc.flac\t10.0\n")
    capsys.readouterr()
    main(["evaluate", str(out), "--ground-truth", str(out), "--metadata", str(meta), "--scores", str(scores), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["macro_f1"] == pytest.approx(1.0)
    assert result["segment_f1"] == pytest.approx(1.0)
    assert 0.0 < result["psds1"] <= 1.0 and 0.0 < result["psds2"] <= 1.0


def test_detect_dir_skips_an_unreadable_clip_and_keeps_the_rest(clips, tmp_path):
    folder, config = clips
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    out = tmp_path / "detections.tsv"
    code = detect_dir(folder, config, out)
    assert code == 1
    assert set(pd.read_csv(out, sep="\t").filename) == {"a.wav", "b.wav", "c.flac"}


def test_detect_dir_refuses_a_config_that_does_not_fit_the_model(clips, tmp_path, capsys):
    folder, config = clips
    config.write_text('[events.groups]\npets = ["Cat"]\n')
    code = detect_dir(folder, config, tmp_path / "x.tsv")
    assert code == 2
    assert "unknown label 'Cat'" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()


def test_detect_dir_stream_mode_gives_the_live_pipeline_events(clips, tmp_path):
    folder, config = clips
    offline_out, stream_out = tmp_path / "offline.tsv", tmp_path / "stream.tsv"
    assert detect_dir(folder, config, offline_out) == 0
    assert detect_dir(folder, config, stream_out, "--mode", "stream") == 0
    offline, stream = pd.read_csv(offline_out, sep="\t"), pd.read_csv(stream_out, sep="\t")

    def events(table, name):
        rows = table[table.filename == name]
        return sorted(zip(rows.event_label, rows.onset.round(6), rows.offset.round(6)))

    # Up to 10 s the stream's last start-up window is the whole clip: the official pass, same events.
    for name in ("a.wav", "b.wav"):
        assert events(stream, name) == events(offline, name)
    # The 12-s clip: the stream also covers the 2 s that the official pass cuts off; the pipeline's
    # events are those of the synchronous replay of the same stream.
    model = load_model(TINY)
    stream_config = load_config(config)
    _, replayed = stream_replay(model, read_clip(folder / "c.flac"), stream_config.events, stream_config.windows.hop)
    assert events(stream, "c.flac") == sorted((label, round(on, 6), round(off, 6)) for on, off, label in replayed)
    assert stream[stream.filename == "c.flac"].offset.max() > 10.0
