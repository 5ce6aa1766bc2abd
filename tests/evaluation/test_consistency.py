"""Streaming vs offline with the tiny golden model on generated recordings."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.cli import main
from htsat_live.evaluation.consistency import compare, stream_replay
from htsat_live.model import load_model, offline_timeline, read_clip
from htsat_live.stream.config import load_config

TINY = Path(__file__).resolve().parents[1] / "data" / "htsat_tiny.ckpt"
LENGTHS = {"long.wav": 12.0, "full.wav": 10.0, "short.wav": 4.0}


def recording(seconds: float, seed: int) -> np.ndarray:
    """Noise that swells and fades with a tone switching on and off: float32 [N] at 32 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 32000)) / 32000
    envelope = 0.05 + 0.2 * (1 + np.sin(2 * np.pi * 0.2 * t + seed))
    tone = 0.2 * np.sin(2 * np.pi * (300 + 200 * seed) * t) * (np.sin(2 * np.pi * 0.1 * t) > 0)
    return (envelope * rng.standard_normal(len(t)) + tone).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return load_model(TINY)


@pytest.fixture(scope="module")
def recordings():
    return {name: recording(seconds, seed) for seed, (name, seconds) in enumerate(LENGTHS.items(), start=1)}


def test_hop_10_s_stream_equals_the_offline_pass(model, recordings):
    rows = compare(model, recordings, load_config(None).events, 10.0)
    assert [row.name for row in rows] == [*LENGTHS, "all"]
    for row in rows:
        assert row.max_abs <= 1e-6, row
        assert row.offline_events == row.stream_events and row.event_f1 == 1.0, row
    # 12 s = one full window + a 2-s tail keeping ceil(200 * 1.024) = 205 frames.
    assert [row.frames for row in rows] == [1229, 1024, 410, 2663]
    assert rows[-1].offline_events > 0


def test_hop_1_s_difference_is_bounded_and_reported(model, recordings):
    rows = {row.name: row for row in compare(model, recordings, load_config(None).events, 1.0)}
    # Up to 10 s the newest start-up window is the whole recording: the offline pass itself.
    for name in ("full.wav", "short.wav"):
        assert rows[name].max_abs <= 1e-6 and rows[name].event_f1 == 1.0
    long = rows["long.wav"]
    assert long.frames == 1229
    assert 0.0 < long.mean_abs <= long.max_abs <= 1.0  # windows with other context: it differs, within [0, 1]
    assert 0.0 <= long.event_f1 <= 1.0
    pooled = rows["all"]
    assert pooled.max_abs == long.max_abs
    assert pooled.mean_abs == pytest.approx(
        (long.mean_abs * 1229 + rows["full.wav"].mean_abs * 1024 + rows["short.wav"].mean_abs * 410) / 2663, rel=1e-5
    )


def test_hop_1_s_frames_of_the_window_at_zero_equal_offline(model, recordings):
    # Nearest-centre stitching: the window [0, 10 s) (centre frame 512) owns frames up to 562, where the
    # window starting at 1 s (grid frame 102, centre 614) becomes nearer; those frames are the offline pass.
    wave = recordings["long.wav"]
    stream, _ = stream_replay(model, wave, load_config(None).events, 1.0)
    offline = offline_timeline(model, wave)
    np.testing.assert_allclose(stream[:563], offline[:563], atol=1e-6)


def test_consistency_command_prints_a_row_per_file_and_hop(model, recordings, tmp_path, capsys):
    for name, wave in recordings.items():
        soundfile.write(tmp_path / name, wave, 32000, subtype="FLOAT")
    assert np.array_equal(read_clip(tmp_path / "short.wav"), recordings["short.wav"])
    code = main(["consistency", str(tmp_path), "--model", str(TINY), "--hop", "10", "2.5"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["file", "hop", "frames"]
    assert [line.split()[:2] for line in lines[1:]] == [
        [name, hop] for hop in ("10.00", "2.50") for name in ("full.wav", "long.wav", "short.wav", "all")
    ]


def test_consistency_command_refuses_a_hop_the_stream_cannot_run(tmp_path, capsys):
    soundfile.write(tmp_path / "a.wav", recording(1.0, 1), 32000)
    assert main(["consistency", str(tmp_path), "--model", str(TINY), "--hop", "12"]) == 2
    assert "windows.hop" in capsys.readouterr().err
