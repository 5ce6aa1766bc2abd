"""Event sinks: JSON Lines, DESED TSV, Audacity labels, WAV clips under a disk cap."""

import json

import numpy as np
import soundfile

from stream.config import SinksConfig
from stream.events import FRAME_SECONDS, Event
from stream.sinks import AudacitySink, ClipSink, JsonlSink, TsvSink, open_sinks


def event(id=1, state="end", label="Dog", onset_frame=1024, offset_frame=1536, cancelled=False) -> Event:
    return Event(id=id, state=state, label=label, classes=(74,), onset_frame=onset_frame, offset_frame=offset_frame,
                 onset=onset_frame * FRAME_SECONDS, offset=offset_frame * FRAME_SECONDS,
                 onset_wall=1.7e9 + onset_frame * FRAME_SECONDS, offset_wall=1.7e9 + offset_frame * FRAME_SECONDS,
                 peak=0.9, mean=0.7, threshold=0.5, final=state == "end", cancelled=cancelled, latency=1.0)


def test_jsonl_logs_starts_and_ends_and_appends(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path, "mic")
    for state in ("start", "update", "end"):
        sink.write(event(state=state))
    assert len(path.read_text().splitlines()) == 2  # flushed line by line, before close
    sink.close()
    again = JsonlSink(path, "mic")
    again.write(event(id=2, state="end", cancelled=True))
    again.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["id"], r["state"], r["cancelled"], r["stream"]) for r in records] == [
        (1, "start", False, "mic"), (1, "end", False, "mic"), (2, "end", True, "mic")]


def test_tsv_and_audacity_list_only_events_that_really_ended(tmp_path):
    tsv, labels = TsvSink(tmp_path / "a.tsv", "clip.wav"), AudacitySink(tmp_path / "a.txt")
    for sink in (tsv, labels):
        sink.write(event(state="start"))
        sink.write(event(id=1))
        sink.write(event(id=2, label="Cat", cancelled=True))
        sink.close()
    assert (tmp_path / "a.tsv").read_text().splitlines() == ["filename\tonset\toffset\tevent_label",
                                                              "clip.wav\t10.000\t15.000\tDog"]
    assert (tmp_path / "a.txt").read_text().splitlines() == ["10.000000\t15.000000\tDog"]


def test_clip_holds_pre_and_post_roll_around_the_event(tmp_path):
    sink = ClipSink(tmp_path, "mic", pre_roll=1.0, post_roll=0.5, max_mb=10)
    sink.write(event())  # 10 s .. 15 s
    assert sink.due(15 * 32000) == []  # the post-roll is not captured yet
    [request] = sink.due(int(15.5 * 32000))
    assert (request.start, request.stop) == (9 * 32000, int(15.5 * 32000))
    audio = np.sin(np.arange(request.stop - request.start) / 10).astype(np.float32) * 0.5
    path = sink.save(request, audio, request.start)
    sink.close()
    data, rate = soundfile.read(path, dtype="float32")
    assert rate == 32000 and data.shape == audio.shape
    np.testing.assert_allclose(data, audio, atol=1 / 32768 + 1e-6)
    assert sink.due(10**9) == [] and sink.written == 1


def test_disk_cap_deletes_the_oldest_clips_first(tmp_path):
    foreign = tmp_path / "mine.wav"
    foreign.write_bytes(b"not a clip of ours")
    sink = ClipSink(tmp_path, "mic", pre_roll=0.0, post_roll=0.0, max_mb=0.25)  # ~3.9 s of 16-bit audio
    paths = []
    for k in range(4):
        sink.write(event(id=k + 1, onset_frame=1024 * k, offset_frame=1024 * k + 153))  # 1.5 s each
        [request] = sink.due(10**9)
        paths.append(sink.save(request, np.zeros(request.stop - request.start, np.float32), request.start))
    assert [p.exists() for p in paths] == [False, False, True, True]
    assert sink.deleted == 2 and sink.bytes_used <= 250_000 and foreign.exists()
    reopened = ClipSink(tmp_path, "mic", pre_roll=0.0, post_roll=0.0, max_mb=0.25)  # knows the clips on disk
    assert reopened.bytes_used == sink.bytes_used


def test_clips_too_large_for_the_cap_or_without_audio_are_skipped(tmp_path):
    sink = ClipSink(tmp_path, "mic", pre_roll=0.0, post_roll=0.0, max_mb=0.01)
    sink.write(event())
    [request] = sink.due(10**9)
    assert sink.save(request, np.zeros(request.stop - request.start, np.float32), request.start) is None
    assert sink.save(request, np.zeros(0, np.float32), request.start) is None
    assert sink.skipped == 2 and list(tmp_path.iterdir()) == []


def test_at_stream_end_queued_clips_are_cut_at_the_last_sample_and_close_counts_the_rest(tmp_path):
    sink = ClipSink(tmp_path, "mic", pre_roll=1.0, post_roll=5.0, max_mb=10)
    sink.write(event())
    [request] = sink.due(16 * 32000, stream_ended=True)
    assert request.stop == 16 * 32000
    sink.write(event(id=2))
    sink.close()
    assert sink.unwritten == 1


def test_open_sinks_builds_what_the_config_asks_for(tmp_path):
    sinks = open_sinks(SinksConfig(jsonl=str(tmp_path / "e.jsonl"), audacity=str(tmp_path / "l.txt")), "mic", "mic")
    assert len(sinks.text_sinks) == 2 and sinks.clips is None
    sinks.write(event())
    sinks.close()
    assert (tmp_path / "l.txt").read_text().startswith("10.000000\t15.000000\tDog")
    assert open_sinks(SinksConfig(clips_dir=str(tmp_path / "clips")), "mic", "mic").clips is not None
