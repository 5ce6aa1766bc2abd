"""Event tables: one writer whose times read back exactly, overlap merging, the Table 3 event F1."""

import pandas as pd

from htsat_live.model import (
    EVENT_COLUMNS,
    FRAME_SECONDS,
    event_f1,
    read_events,
    write_events,
)
from htsat_live.model.event_table import merge_overlaps


def test_frame_times_survive_a_round_trip(tmp_path):
    rows = [("a.wav", 410 * FRAME_SECONDS, 1024 * FRAME_SECONDS, "Dog"), ("b.wav", 0.0, 3 * FRAME_SECONDS, "Cat")]
    write_events(tmp_path / "e.tsv", rows)
    table = read_events(tmp_path / "e.tsv")
    assert list(table.itertuples(index=False, name=None)) == rows


def test_overlapping_events_of_one_class_merge_and_touching_ones_do_not():
    events = pd.DataFrame(
        [
            ("a.wav", 1.0, 3.0, "Dog"),
            ("a.wav", 2.0, 4.0, "Dog"),
            ("a.wav", 2.5, 2.6, "Dog"),
            ("a.wav", 4.0, 5.0, "Dog"),
            ("a.wav", 2.0, 3.0, "Cat"),
            ("b.wav", 1.0, 2.0, "Dog"),
            ("c.wav", None, None, None),
        ],
        columns=EVENT_COLUMNS,
    )
    merged, count = merge_overlaps(events)
    assert count == 2
    assert sorted(merged.dropna().itertuples(index=False, name=None)) == [
        ("a.wav", 1.0, 4.0, "Dog"),
        ("a.wav", 2.0, 3.0, "Cat"),
        ("a.wav", 4.0, 5.0, "Dog"),
        ("b.wav", 1.0, 2.0, "Dog"),
    ]
    assert merged["event_label"].isna().sum() == 1  # the clip without events keeps its row


def test_event_f1_scores_every_truth_class_and_ignores_rows_without_events():
    truth = pd.DataFrame(
        [("a.wav", 1.0, 3.0, "Dog"), ("b.wav", 0.0, 2.0, "Cat"), ("c.wav", None, None, None)], columns=EVENT_COLUMNS
    )
    metadata = pd.DataFrame({"filename": ["a.wav", "b.wav", "c.wav"], "duration": [10.0, 4.0, 10.0]})
    assert event_f1(truth, metadata, truth.iloc[:1]) == (0.5, {"Cat": 0.0, "Dog": 1.0})
