"""The loudness trigger: tone bursts at known levels, the A-weighting curve, and `Loud` events through a
real pipeline into the sinks."""

import json

import numpy as np
import pytest
import soundfile

from htsat_live.model import SAMPLE_RATE, load_model
from htsat_live.stream.commands import latency_line
from htsat_live.stream.config import LoudnessConfig, load_config, with_overrides
from htsat_live.stream.loudness import LABEL, LoudnessDetector
from htsat_live.stream.output import Listener
from htsat_live.stream.outputs.sinks import Sinks
from htsat_live.stream.pipeline import Pipeline


def tone(seconds: float, rms_dbfs: float, frequency: float = 1000.0) -> np.ndarray:
    """A sine whose RMS is `rms_dbfs` (20 log10 RMS, as on status)."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sqrt(2) * 10 ** (rms_dbfs / 20) * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


def detect(audio: np.ndarray, **settings) -> list:
    """Feed `audio` in blocks of uneven sizes, as a capture does; the reports."""
    ids = iter(range(1, 1000))
    detector = LoudnessDetector(LoudnessConfig(enabled=True, **settings), lambda: next(ids))
    reports, start = [], 0
    for size in np.random.default_rng(0).integers(100, 9000, size=10_000):
        reports += detector.update(audio[start : start + size], now=100.0)
        start += size
        if start >= audio.shape[0]:
            break
    return reports + detector.flush(now=100.0)


def test_tone_bursts_above_the_threshold_are_loud_events_with_their_level():
    audio = np.concatenate([silence(2), tone(1, -20), silence(2), tone(1, -40), silence(2), tone(1.5, -12), silence(1)])
    reports = detect(audio, threshold_dbfs=-30)
    assert [(r.state, r.label) for r in reports] == [("start", LABEL), ("end", LABEL)] * 2  # -40 dBFS stays quiet
    first, second = [r for r in reports if r.state == "end"]
    assert first.onset == pytest.approx(2.0, abs=0.13) and first.offset == pytest.approx(3.0, abs=0.13)
    assert second.onset == pytest.approx(8.0, abs=0.13) and second.offset == pytest.approx(9.5, abs=0.13)
    assert first.peak == pytest.approx(-20, abs=0.5) and first.mean == pytest.approx(-20, abs=0.5)
    assert second.peak == pytest.approx(-12, abs=0.5) and second.mean == pytest.approx(-12, abs=0.5)
    assert all(r.final and r.confirmed and not r.cancelled and r.classes == () and r.threshold == -30 for r in reports)
    assert reports[0].id == reports[1].id != reports[2].id


def test_a_burst_shorter_than_min_duration_is_no_event_and_hysteresis_bridges_a_dip():
    short = np.concatenate([silence(1), tone(0.1, -10), silence(1)])
    assert detect(short, threshold_dbfs=-30, min_duration=0.25) == []
    dip = np.concatenate([silence(1), tone(1, -20), tone(0.5, -33), tone(1, -20), silence(1)])
    assert len([r for r in detect(dip, threshold_dbfs=-30, hysteresis_db=6) if r.state == "end"]) == 1
    assert len([r for r in detect(dip, threshold_dbfs=-30, hysteresis_db=0) if r.state == "end"]) == 2


@pytest.mark.parametrize(
    "frequency, a_weight_db", [(100, -19.1), (1000, 0.0), (4000, 1.0), (10000, -2.5), (12500, -4.3)]
)
def test_a_weighting_follows_the_iec_curve(frequency, a_weight_db):
    audio = np.concatenate([tone(2, -20, frequency), silence(0.5)])
    [start, end] = detect(audio, threshold_dbfs=-60, weighting="A")
    assert end.mean == pytest.approx(-20 + a_weight_db, abs=0.15)  # the IEC table, rounded to 0.1 dB
    [start, end] = detect(audio, threshold_dbfs=-60, weighting="none")
    assert end.mean == pytest.approx(-20, abs=0.1)


def test_loud_events_reach_every_sink_and_the_status(tmp_path, tiny_checkpoint):
    audio = np.concatenate([silence(3), tone(2, -15), silence(3)])
    soundfile.write(tmp_path / "bursts.wav", audio, SAMPLE_RATE, subtype="FLOAT")
    config = with_overrides(
        load_config(None),
        {
            "publish.enabled": False,
            "source.fast": True,
            "events.threshold": 1.0,
            "loudness.enabled": True,
            "sinks.jsonl": str(tmp_path / "e.jsonl"),
            "sinks.tsv": str(tmp_path / "e.tsv"),
            "sinks.clips_dir": str(tmp_path / "clips"),
        },
    )
    statuses = []
    sinks = Sinks.from_config(config.sinks)
    keep_statuses = Listener(lambda topic, stream, body: statuses.append(body) if topic == "status" else None)
    pipeline = Pipeline(
        config, load_model(tiny_checkpoint), [str(tmp_path / "bursts.wav")], outputs=[sinks, keep_statuses]
    )
    pipeline.start()
    assert pipeline.wait(120)
    report = pipeline.stop()["bursts.wav"]
    lines = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [(r["state"], r["label"]) for r in lines] == [("start", "Loud"), ("end", "Loud")]
    assert lines[1]["peak"] == pytest.approx(-15, abs=0.5) and lines[1]["onset"] == pytest.approx(3.0, abs=0.13)
    assert (tmp_path / "e.tsv").read_text().splitlines()[1].endswith("\tLoud")
    assert len(list((tmp_path / "clips").glob("*-Loud-*.wav"))) == 1
    assert report.events == 1 and report.confirmed_events == 1
    assert latency_line(report.latency()).startswith("hop latency p50=")  # the line detect prints at its end
    assert statuses[-1]["loudness"]["threshold_dbfs"] == -30.0 and statuses[-1]["loudness"]["weighting"] == "A"


def test_a_run_in_which_no_event_starts_says_so_instead_of_a_latency_of_none(tmp_path, tiny_checkpoint):
    soundfile.write(tmp_path / "quiet.wav", silence(4), SAMPLE_RATE, subtype="FLOAT")
    config = with_overrides(
        load_config(None),
        {"publish.enabled": False, "source.fast": True, "events.threshold": 1.0, "loudness.enabled": True},
    )
    pipeline = Pipeline(config, load_model(tiny_checkpoint), [str(tmp_path / "quiet.wav")], outputs=[])
    pipeline.start()
    assert pipeline.wait(120)
    report = pipeline.stop()["quiet.wav"]
    line = latency_line(report.latency())
    assert report.events == 0 and "None" not in line
    assert ", event latency none measured (no event started), confirmed none measured (no event confirmed)" in line
