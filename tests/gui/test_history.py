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
