"""bench --stream --events-per-hour: its quiet streams, and the burst events check on the embedded model."""

import numpy as np
import pytest
import soundfile

from htsat_live.evaluation.stream_bench import (
    BURST_SECONDS,
    NOISE_DBFS,
    bursts_for,
    check_burst_events,
    quiet_streams,
)
from htsat_live.model import SAMPLE_RATE, load_model, read_clip
from htsat_live.model.embedded import DEMO_RECORDING


def test_quiet_streams_hold_the_bursts_asked_for_in_noise_at_its_level(tmp_path):
    demo = read_clip(DEMO_RECORDING)
    paths, bursts = quiet_streams(3, 40.0, 5, tmp_path, seed=4, demo=demo)
    assert len(paths) == 3 and sum(len(stream) for stream in bursts) == 5
    for path, stream_bursts in zip(paths, bursts, strict=True):
        wave, rate = soundfile.read(path, dtype="float32")
        assert rate == SAMPLE_RATE and wave.shape == (40 * SAMPLE_RATE,)
        quiet = np.ones(wave.shape, bool)
        for burst in stream_bursts:
            assert BURST_SECONDS[0] <= burst.stop - burst.start <= BURST_SECONDS[1]
            quiet[round(burst.start * SAMPLE_RATE) : round(burst.stop * SAMPLE_RATE)] = False
        level = 10 * np.log10(np.mean(wave[quiet].astype(np.float64) ** 2))
        assert abs(level - NOISE_DBFS) < 0.1
    assert bursts_for(60, 30.0, 24) == 12  # 60 events per hour over 30 s of 24 streams


@pytest.mark.timeout(180)
def test_the_events_of_the_bursts_are_the_same_with_the_gate(tmp_path, capsys):
    demo = read_clip(DEMO_RECORDING)
    assert check_burst_events(load_model(None), 1.25, -60.0, seed=0, folder=tmp_path, demo=demo)
    line = capsys.readouterr().out
    assert "-> match" in line and "windows gated" in line
    without = int(line.split("without the gate ")[1].split(",")[0])
    assert without >= 3  # the embedded model finds events on the bursts
