"""No test reads or writes the user's home: a part of the suite that caches features, converts models, keeps a
history and remembers GUI settings, run with HOME and every XDG folder on an empty folder, leaves it empty."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What writes under HOME or an XDG folder when nothing redirects it: a module-scoped training fixture (feature
# cache), OpenVINO's converted model cache, the event history, the GUI's QSettings and PulseAudio's cookie.
PART = [
    "tests/training/test_clip_training.py::test_a_class_with_too_few_clips_is_one_line_and_exit_2",
    "tests/training/test_clip_training.py::test_log_mels_are_cached_by_content_and_unreadable_files_are_skipped",
    "tests/training/test_clip_training.py::test_a_clip_trained_model_detects_its_class_in_a_recording",
    "tests/model/test_openvino.py::test_cached_trunk_is_reused",
    "tests/stream/outputs/test_event_store.py",
    "tests/gui/test_app.py",
    "tests/stream/test_devices.py",
]


@pytest.mark.timeout(900)
def test_a_part_of_the_suite_leaves_an_empty_home_empty(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CONFIG_HOME=str(home / ".config"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PART],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(str(path.relative_to(home)) for path in home.rglob("*")) == []
