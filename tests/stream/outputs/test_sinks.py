"""Event sinks: JSON Lines, DESED TSV, Audacity labels, WAV clips under a disk cap, fed the way the
pipeline feeds them (published event messages, clips cut from a real ring buffer)."""

import json
import os

import numpy as np
import pytest
import soundfile

from htsat_live.stream.config import SinksConfig
from htsat_live.stream.events import Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.outputs.sinks import (
    AudacitySink,
    ClipSink,
    JsonlSink,
    SinkError,
    Sinks,
    TsvSink,
)
from htsat_live.stream.ring import RingBuffer

RATE = 32000


def message(e: Event) -> EventMessage:
    return EventMessage("mic", e)


def test_jsonl_logs_starts_and_ends_and_appends(tmp_path, make_event):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    for state in ("start", "update", "end"):
        sink.write("mic", make_event(state=state))
    assert len(path.read_text().splitlines()) == 2  # flushed line by line, before close
    sink.close()
    again = JsonlSink(path)
    again.write("mic", make_event(id=2, state="end", cancelled=True))
    again.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["id"], r["state"], r["cancelled"], r["stream"]) for r in records] == [
        (1, "start", False, "mic"),
        (1, "end", False, "mic"),
        (2, "end", True, "mic"),
    ]


def test_tsv_and_audacity_list_only_events_that_really_ended(tmp_path, make_event):
    tsv, labels = TsvSink(tmp_path / "a.tsv"), AudacitySink(tmp_path / "a.txt")
    for sink in (tsv, labels):
        sink.write("clip.wav", make_event(state="start"))
        sink.write("clip.wav", make_event(id=1))
        sink.write("clip.wav", make_event(id=2, label="Cat", cancelled=True))
        sink.close()
    assert (tmp_path / "a.tsv").read_text().splitlines() == [
        "filename\tonset\toffset\tevent_label",
        "clip.wav\t10.0\t15.0\tDog",
    ]
    assert (tmp_path / "a.txt").read_text().splitlines() == ["10.000000\t15.000000\tDog"]


def test_clip_holds_pre_and_post_roll_around_the_event(tmp_path, make_event):
    sink = ClipSink(tmp_path, pre_roll=1.0, post_roll=0.5, max_mb=10)
    sink.write("mic", make_event())  # 10 s .. 15 s
    assert sink.due("mic", 15 * RATE) == []  # the post-roll is not captured yet
    assert sink.due("other", 10**9) == []
    [request] = sink.due("mic", int(15.5 * RATE))
    assert (request.start, request.stop) == (9 * RATE, int(15.5 * RATE))
    audio = np.sin(np.arange(request.stop - request.start) / 10).astype(np.float32) * 0.5
    path = sink.save(request, audio, request.start)
    sink.close()
    data, rate = soundfile.read(path, dtype="float32")
    assert rate == RATE and data.shape == audio.shape
    np.testing.assert_allclose(data, audio, atol=1 / 32768 + 1e-6)
    assert sink.due("mic", 10**9) == [] and sink.written == 1


def test_disk_cap_deletes_the_oldest_clips_first(tmp_path, make_event):
    foreign = tmp_path / "mine.wav"
    foreign.write_bytes(b"not a clip of ours")
    sink = ClipSink(tmp_path, pre_roll=0.0, post_roll=0.0, max_mb=0.25)  # ~3.9 s of 16-bit audio
    paths = []
    for k in range(4):
        sink.write("mic", make_event(id=k + 1, onset_frame=1024 * k, offset_frame=1024 * k + 153))  # 1.5 s each
        [request] = sink.due("mic", 10**9)
        paths.append(sink.save(request, np.zeros(request.stop - request.start, np.float32), request.start))
    assert [p.exists() for p in paths] == [False, False, True, True]
    assert sink.deleted == 2 and sink.bytes_used <= 250_000 and foreign.exists()
    reopened = ClipSink(tmp_path, pre_roll=0.0, post_roll=0.0, max_mb=0.25)  # knows the clips on disk
    assert reopened.bytes_used == sink.bytes_used


def test_clips_too_large_for_the_cap_or_without_audio_are_skipped(tmp_path, make_event):
    sink = ClipSink(tmp_path, pre_roll=0.0, post_roll=0.0, max_mb=0.01)
    sink.write("mic", make_event())
    [request] = sink.due("mic", 10**9)
    assert sink.save(request, np.zeros(request.stop - request.start, np.float32), request.start) is None
    assert sink.save(request, np.zeros(0, np.float32), request.start) is None
    assert sink.skipped == 2 and list(tmp_path.iterdir()) == []


def test_sinks_take_published_messages_and_cut_clips_from_the_ring(tmp_path, make_event):
    config = SinksConfig(
        jsonl=str(tmp_path / "e.jsonl"),
        tsv=str(tmp_path / "e.tsv"),
        clips_dir=str(tmp_path / "clips"),
        pre_roll=1.0,
        post_roll=1.0,
    )
    sinks = Sinks.from_config(config)
    assert len(sinks.text_sinks) == 2 and sinks.clips is not None
    ring = RingBuffer(20 * RATE, RATE)
    sinks.attach("mic", ring)
    tone = (0.25 * np.sin(2 * np.pi * 440 * np.arange(30 * RATE) / RATE)).astype(np.float32)
    ring.write(tone[: 15 * RATE])
    sinks.handle(message(make_event()))  # 10 s .. 15 s: the post-roll is not there yet
    assert sinks.clips.written == 0
    ring.write(tone[15 * RATE : 17 * RATE])
    sinks.handle(Message("status", "mic", {}))
    [clip] = (tmp_path / "clips").iterdir()
    audio, _ = soundfile.read(clip, dtype="float32")
    np.testing.assert_allclose(audio, tone[9 * RATE : 16 * RATE], atol=1e-4)
    sinks.handle(message(make_event(id=2, onset_frame=1536, offset_frame=2000)))  # ends at 19.5 s
    ring.write(tone[17 * RATE : 18 * RATE])
    sinks.close()  # the stream is over: the last clip is cut at the newest sample
    assert sinks.clips.written == 2 and len(list((tmp_path / "clips").iterdir())) == 2
    assert (tmp_path / "e.tsv").read_text().splitlines()[1:] == ["mic\t10.0\t15.0\tDog", "mic\t15.0\t19.53125\tDog"]
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 2


def test_clip_whose_beginning_left_the_ring_starts_at_the_oldest_sample(tmp_path, make_event):
    sinks = Sinks.from_config(SinksConfig(clips_dir=str(tmp_path), pre_roll=0.0, post_roll=0.0))
    ring = RingBuffer(3 * RATE, RATE)
    sinks.attach("mic", ring)
    ring.write(np.full(16 * RATE, 0.5, np.float32))  # the ring holds only 13 s .. 16 s
    sinks.handle(message(make_event()))  # 10 s .. 15 s
    [clip] = tmp_path.iterdir()
    assert soundfile.info(clip).frames == 2 * RATE


def test_no_sinks_when_the_config_names_none(make_event):
    sinks = Sinks.from_config(SinksConfig())
    assert sinks.text_sinks == [] and sinks.clips is None
    sinks.handle(message(make_event()))
    sinks.close()


def test_an_unwritable_clips_dir_or_log_is_refused_at_start(read_only_dir):
    with pytest.raises(SinkError, match=r"sinks.clips_dir: cannot (write to|make)"):
        Sinks.from_config(SinksConfig(clips_dir=str(read_only_dir / "clips")))
    with pytest.raises(SinkError, match="sinks.clips_dir: cannot write to"):
        Sinks.from_config(SinksConfig(clips_dir=str(read_only_dir)))
    with pytest.raises(SinkError, match="sinks.jsonl: cannot write"):
        Sinks.from_config(SinksConfig(jsonl=str(read_only_dir / "e.jsonl")))


def test_a_full_disk_costs_its_clips_and_lines_not_the_stream_or_the_other_sinks(full_disk, tmp_path, make_event):
    sinks = Sinks.from_config(
        SinksConfig(
            clips_dir=str(full_disk),
            tsv=str(tmp_path / "e.tsv"),
            jsonl=str(tmp_path / "e.jsonl"),
            pre_roll=0.0,
            post_roll=0.0,
        )
    )
    ring = RingBuffer(40 * RATE, RATE)
    sinks.attach("mic", ring)
    ring.write((0.25 * np.sin(np.arange(30 * RATE) / 10)).astype(np.float32))
    ends = [make_event(id=i, onset_frame=100 * i, offset_frame=100 * i + 512) for i in range(1, 4)]  # 5 s clips: 320 kB
    for ended in ends:
        sinks.handle(message(ended))  # never raises
    counters = sinks.counters()
    assert counters["clips_dir_failures"] == 3 and counters["clips_written"] == 0
    assert counters["tsv_failures"] == 0 and counters["jsonl_failures"] == 0
    assert not list(full_disk.glob("*.wav"))  # no partial clip left behind
    sinks.close()
    assert (
        len((tmp_path / "e.tsv").read_text().splitlines()) == 4
        and len((tmp_path / "e.jsonl").read_text().splitlines()) == 3
    )


def test_a_log_on_a_full_disk_counts_its_lost_lines(full_disk, tmp_path, make_event):
    if not os.path.ismount(full_disk):
        pytest.skip("needs a mounted tmpfs (root): the fallback fake only fails clip writes")
    sinks = Sinks.from_config(SinksConfig(jsonl=str(full_disk / "e.jsonl"), tsv=str(tmp_path / "e.tsv")))
    for i in range(1, 2001):  # about 600 bytes a line: far more than 64 KiB
        sinks.handle(message(make_event(id=i)))
    counters = sinks.counters()
    assert counters["jsonl_failures"] > 0 and counters["tsv_failures"] == 0
    sinks.close()
    assert len((tmp_path / "e.tsv").read_text().splitlines()) == 2001
