"""The privacy filter: clips that overlap a privacy target (Speech) above its threshold are dropped or
muted; others are written byte for byte as without the filter. Real detector, ring, sinks and WAV files;
and the demo, whose speech the embedded model finds."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.model import SAMPLE_RATE, Target
from htsat_live.stream.config import SinksConfig
from htsat_live.stream.events import EventDetector
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.outputs.sinks import Sinks
from htsat_live.stream.ring import RingBuffer
from htsat_live.stream.stitch import TimelineUpdate

FRAMES_PER_SECOND = 102.4  # grid frames (10/1024 s)
SECONDS = 20


def frame(seconds: float) -> int:
    return round(seconds * FRAMES_PER_SECOND)


def run(directory: Path, mode: str, speech_score: float, final: bool = True) -> tuple[dict[str, Path], dict]:
    """A Dog event at 10-15 s and Speech scored `speech_score` at 12-13 s (threshold 0.5), through the
    detector into the sinks, clips cut from a ring holding a tone. Returns the clips by label, the counters."""
    values = np.zeros((frame(SECONDS), 2), np.float32)  # [frames, (Speech, Dog)]
    values[frame(10) : frame(15), 1] = 0.9
    values[frame(12) : frame(13), 0] = speech_score
    detector = EventDetector([Target("Speech", (0,), 0.5, 0.5), Target("Dog", (1,), 0.5, 0.5)])
    sinks = Sinks.from_config(SinksConfig(clips_dir=str(directory), pre_roll=0.5, post_roll=0.5, privacy=mode))
    ring = RingBuffer(30 * SAMPLE_RATE, SAMPLE_RATE)
    sinks.attach("mic", ring, ["Speech", "Dog"])
    t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
    ring.write((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    end = values.shape[0]
    for report in detector.update(TimelineUpdate(0, values, end, end)) + detector.flush():
        sinks.handle(EventMessage("mic", report))
    if final:
        sinks.handle(Message("scores", "mic", {"final_upto": end}))
        sinks.close()
    clips = {path.name.split("-")[-2]: path for path in directory.glob("*.wav")}  # htsat-...-<id>-<label>-<t>s.wav
    return clips, sinks.counters()


def test_without_speech_above_its_threshold_clips_are_kept_byte_identical(tmp_path):
    plain, _ = run(tmp_path / "off", "off", speech_score=0.3)
    assert list(plain) == ["Dog"]
    for mode in ("drop", "mute"):
        clips, counters = run(tmp_path / mode, mode, speech_score=0.3)
        assert clips["Dog"].read_bytes() == plain["Dog"].read_bytes()
        assert (counters["clips_privacy_dropped"], counters["clips_privacy_muted"]) == (0, 0)


def test_drop_writes_no_clip_that_overlaps_speech(tmp_path):
    clips, counters = run(tmp_path / "drop", "drop", speech_score=0.9)
    assert clips == {} and list((tmp_path / "drop").iterdir()) == []
    assert counters["clips_privacy_dropped"] == 2 and counters["clips_written"] == 0  # the Dog's and the Speech's


def test_mute_silences_the_speech_and_keeps_the_rest_of_the_clip(tmp_path):
    plain, _ = run(tmp_path / "off", "off", speech_score=0.9)
    clips, counters = run(tmp_path / "mute", "mute", speech_score=0.9)
    assert sorted(clips) == sorted(plain) == ["Dog", "Speech"] and counters["clips_privacy_muted"] == 2
    dog, _ = soundfile.read(clips["Dog"], dtype="float32")
    original, _ = soundfile.read(plain["Dog"], dtype="float32")
    speech = slice(
        round((frame(12) / FRAMES_PER_SECOND - 9.5) * SAMPLE_RATE),
        round((frame(13) / FRAMES_PER_SECOND - 9.5) * SAMPLE_RATE),
    )  # the clip starts at 9.5 s
    assert dog.shape == original.shape and not dog[speech].any()
    rest = np.ones(dog.shape[0], bool)
    rest[speech] = False
    np.testing.assert_array_equal(dog[rest], original[rest])
    assert np.abs(original[speech]).max() > 0.2


def test_a_clip_waits_until_the_scores_over_it_are_final(tmp_path):
    clips, counters = run(tmp_path / "drop", "drop", speech_score=0.3, final=False)
    assert clips == {} and counters["clips_written"] == 0


def test_a_privacy_target_that_is_not_detected_is_refused(tmp_path):
    sinks = Sinks.from_config(SinksConfig(clips_dir=str(tmp_path), privacy="drop", privacy_targets=("Speech", "Cough")))
    with pytest.raises(ValueError, match="sinks.privacy_targets: not a detection target of stream mic: Cough"):
        sinks.attach("mic", RingBuffer(SAMPLE_RATE * 20, SAMPLE_RATE), ["Speech", "Dog"])


def detect_demo(run_demo_detect, directory: Path, privacy: str) -> tuple[list[dict], str]:
    result = run_demo_detect(
        f"sinks.clips_dir='{directory}/clips'", f"sinks.jsonl='{directory}/e.jsonl'", f"sinks.privacy={privacy}"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (directory / "e.jsonl").read_text().splitlines()]
    return [r for r in lines if r["state"] == "end" and not r["cancelled"]], result.stdout


def test_the_demo_keeps_no_speech_in_its_clips(tmp_path, run_demo_detect):
    ends, out = detect_demo(run_demo_detect, tmp_path / "drop", "drop")
    speech = [e for e in ends if e["label"] == "Speech"]
    assert speech, "the embedded model finds the demo's speech"
    clips = list((tmp_path / "drop" / "clips").glob("*.wav"))
    assert not [clip for clip in clips if "-Speech-" in clip.name]
    assert len(clips) == len(ends) - len(speech) and f"clips_privacy_dropped={len(speech)}" in out
    ends, out = detect_demo(run_demo_detect, tmp_path / "mute", "mute")
    [event] = [e for e in ends if e["label"] == "Speech"]
    [clip] = (tmp_path / "mute" / "clips").glob(f"*-{event['id']}-Speech-*.wav")
    audio, _ = soundfile.read(clip, dtype="float32")
    inside = audio[
        SAMPLE_RATE : SAMPLE_RATE + round((event["offset"] - event["onset"]) * SAMPLE_RATE)
    ]  # after 1 s of pre-roll
    assert inside.size > SAMPLE_RATE // 2 and not inside.any()
    assert np.abs(audio).max() > 0.01  # the pre-roll is still there
