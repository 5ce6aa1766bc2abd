"""LiveData: the viewer's state, built from schema-v1 messages only."""

import numpy as np
import pytest

from htsat_live.gui.live_data import LiveData

LABELS = ["Speech", "Dog", "Siren"]


def test_scores_are_indexed_by_class_and_unsent_classes_keep_their_values(messages):
    live = LiveData()
    live.apply("scores", messages.scores(0, np.full((10, 3), 0.5), LABELS, final_upto=0))
    # a later message carries only class 2, for frames 5..14 (5..9 revised, 10..14 new)
    live.apply("scores", messages.scores(5, np.full((10, 1), 0.9), LABELS, final_upto=5, classes=[2]))
    recent = live.scores.view()[-15:]
    assert recent[:5].tolist() == [[0.5, 0.5, 0.5]] * 5
    assert recent[5:10].tolist() == [[0.5, 0.5, pytest.approx(0.9)]] * 5
    assert recent[10:].tolist() == [[0.0, 0.0, pytest.approx(0.9)]] * 5
    assert live.clipwise.tolist() == [0.0, 0.0, pytest.approx(0.9)]
    assert live.final_upto == pytest.approx(5 * 10 / 1024)
    assert live.label(1) == "Dog" and live.now == pytest.approx(15 * 10 / 1024)


def test_the_per_class_state_grows_when_a_higher_class_index_arrives(messages):
    live = LiveData()
    live.apply("scores", messages.scores(0, np.full((4, 2), 0.25), LABELS, final_upto=0))
    live.apply("status", messages.status(num_classes=527))
    assert live.scores.width == 527 and len(live.clipwise) == 527
    assert live.scores.view()[-4:, :2].tolist() == [[0.25, 0.25]] * 4


def test_event_lifecycle_start_update_end_and_cancel(messages):
    live = LiveData()
    live.apply("event", messages.event(1, "start", "Dog", 1.0, 1.5, 0.6))
    live.apply("event", messages.event(1, "update", "Dog", 1.0, 2.5, 0.8))
    assert [(e.offset, e.open) for e in live.events()] == [(2.5, True)]
    live.apply("event", messages.event(1, "end", "Dog", 1.0, 3.0, 0.8))
    live.apply("event", messages.event(2, "start", "Siren", 4.0, 4.5, 0.7))
    live.apply("event", messages.event(2, "end", "Siren", 4.0, 4.5, 0.7, cancelled=True))
    assert [(e.label, e.offset, e.open) for e in live.events()] == [("Dog", 3.0, False)]
    assert [m["id"] for m in live.finished] == [1]


def test_malformed_messages_are_counted_and_skipped_without_losing_state(messages):
    live = LiveData()
    assert live.apply("mel", messages.mel(0, np.zeros((5, 64))))
    bad = messages.mel(5, np.zeros((5, 64)))
    bad["frames"] = [[0.0] * 63] * 5  # rows shorter than `bins`
    assert not live.apply("mel", bad)
    assert "mel: ValueError" in live.counts.last_error
    assert not live.apply("scores", {**messages.scores(0, np.zeros((2, 3)), LABELS, 0), "schema": 2})
    assert "schema 2" in live.counts.last_error
    assert not live.apply("nonsense", messages.status())
    assert live.counts.skipped == 3
    assert live.mel.end == 5 and live.counts.applied == 1


def test_gaps_in_seq_count_as_lost_and_a_restarted_publisher_starts_a_new_view(messages):
    live = LiveData()
    live.apply("mel", messages.mel(0, np.zeros((100, 64))))
    messages.seq["mel"] += 2  # two messages lost on the way
    live.apply("mel", messages.mel(100, np.zeros((100, 64))))
    live.apply("event", messages.event(1, "end", "Dog", 0.5, 1.0, 0.9))
    assert live.counts.missed == 2 and live.now == pytest.approx(2.0)
    messages.seq.clear()  # the publisher restarted
    live.apply("mel", messages.mel(0, np.zeros((30, 64))))
    assert live.counts.restarts == 1 and live.now == pytest.approx(0.3)
    assert live.events() == [] and len(live.finished) == 1


def test_only_the_first_stream_heard_is_shown(messages):
    live = LiveData()
    live.apply("mel", messages.mel(0, np.zeros((10, 64))))
    other = messages.mel(0, np.zeros((50, 64)))
    other["stream"] = "other"
    assert not live.apply("mel", other)
    assert live.counts.other_streams == 1 and live.mel.end == 10


def test_the_archive_keeps_the_maximum_of_each_group_of_frames_and_follows_revisions(messages):
    live = LiveData()
    live.apply("scores", messages.scores(0, np.full((16, 3), 0.2), LABELS, final_upto=0))
    live.apply("scores", messages.scores(8, np.full((8, 1), 0.9), LABELS, final_upto=8, classes=[1]))  # revised
    archived = live.archived_scores.view()[-2:]  # groups of 8 frames: 0..7 and 8..15
    assert archived[:, 1].tolist() == [pytest.approx(0.2), pytest.approx(0.9)]
    assert archived[:, 0].tolist() == [pytest.approx(0.2), pytest.approx(0.2)]
    assert live.archived_scores.frame_seconds == pytest.approx(8 * 10 / 1024)
