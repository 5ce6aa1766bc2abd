"""FrameHistory: the last L frames, oldest first, as one view into preallocated memory."""

import numpy as np
import pytest

from htsat_live.gui.history import FrameHistory


def column(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)[:, None]


def test_view_holds_the_newest_frames_oldest_first_across_the_wrap():
    history = FrameHistory(5, 1, 0.01, fill=-1.0)
    history.write(0, column([0, 1, 2]))
    assert history.view().ravel().tolist() == [-1, -1, 0, 1, 2]
    history.write(3, column([3, 4, 5, 6]))
    assert history.view().ravel().tolist() == [2, 3, 4, 5, 6]
    assert history.end == 7 and history.start_seconds() == pytest.approx(0.02)


def test_view_is_a_view_of_the_same_memory_every_time():
    history = FrameHistory(4, 2, 0.01)
    base = history.view().base
    for first in range(0, 40, 3):
        history.write(first, np.full((3, 2), first))
        assert history.view().base is base and history.view().flags.c_contiguous


def test_rewriting_held_frames_replaces_them_and_old_frames_are_ignored():
    history = FrameHistory(5, 1, 0.01)
    history.write(0, column([0, 1, 2, 3, 4, 5]))
    history.write(3, column([30, 40]))  # a revision of provisional frames
    history.write(0, column([99]))  # older than the history: ignored
    assert history.view().ravel().tolist() == [1, 2, 30, 40, 5]


def test_a_jump_forward_clears_the_frames_skipped():
    history = FrameHistory(5, 1, 0.01, fill=-1.0)
    history.write(0, column([0, 1, 2, 3, 4]))
    history.write(7, column([7]))
    assert history.view().ravel().tolist() == [3, 4, -1, -1, 7]


def test_writing_some_columns_keeps_the_others_and_new_frames_start_at_fill():
    history = FrameHistory(4, 3, 0.01)
    history.write(0, np.ones((2, 3)))
    history.write(1, np.full((2, 1), 5.0), columns=np.array([2]))
    assert history.view()[2:].tolist() == [[1, 1, 5], [0, 0, 5]]


def test_frames_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match="shape"):
        FrameHistory(4, 3, 0.01).write(0, np.ones((2, 2)))


def test_frames_returns_the_held_part_of_a_range_and_where_it_starts():
    history = FrameHistory(5, 1, 0.01, fill=-1.0)
    history.write(0, column([0, 1, 2, 3, 4, 5, 6]))  # frames 2..6 held
    first, frames = history.frames(0, 4)
    assert first == 2 and frames.ravel().tolist() == [2, 3]
    first, frames = history.frames(5, 99)
    assert first == 5 and frames.ravel().tolist() == [5, 6]
    assert len(FrameHistory(5, 1, 0.01).frames(-3, 2)[1]) == 0  # nothing written: nothing held


def test_pooled_takes_the_maximum_of_whole_groups_for_a_coarser_history():
    history = FrameHistory(10, 1, 0.01)
    history.write(0, column([0, 5, 1, 2, 9, 3, 4]))
    first, pooled = history.pooled(4, 5, 3)  # frame 4 lies in group 1 (frames 3..5)
    assert first == 1 and pooled.ravel().tolist() == [9]
    first, pooled = history.pooled(0, 7, 3)  # group 2 holds only frame 6 so far
    assert first == 0 and pooled.ravel().tolist() == [5, 9, 4]
    history.write(7, column([7, 8, 9, 10, 11, 12, 13]))  # frames 4..13 held: group 1 is no longer whole
    first, pooled = history.pooled(0, 14, 3)
    assert first == 2 and pooled.ravel().tolist() == [8, 11, 13]
