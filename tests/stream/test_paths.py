"""Output paths checked before any work starts: a folder where a file is wanted, a path under a plain file and
a read-only file system (a real read-only mount) are each one line naming the setting or flag, exit 2."""

import subprocess
import sys

import pytest

from htsat_live.stream.paths import OutputPathError, output_file, output_folder


def test_a_folder_a_path_under_a_file_and_a_read_only_mount_are_named(tmp_path, read_only_mount):
    plain = tmp_path / "plain"
    plain.write_text("x")
    cases = [
        (output_file, tmp_path, f"sinks.jsonl: cannot write {tmp_path}: it is a folder, not a file"),
        (output_file, plain / "a" / "e.jsonl", f"sinks.jsonl: cannot write {plain}/a/e.jsonl: {plain} is a file"),
        (output_folder, plain, f"sinks.jsonl: cannot write to {plain}: it is a file, not a folder"),
        (output_folder, plain / "clips", f"sinks.jsonl: cannot write to {plain}/clips: {plain} is a file"),
        (output_file, read_only_mount / "e.jsonl", "read-only file system"),
        (output_file, read_only_mount / "old.jsonl", "read-only file system"),
        (output_file, read_only_mount / "a" / "b.db", "read-only file system"),
        (output_folder, read_only_mount, "read-only file system"),
        (output_folder, read_only_mount / "clips", "read-only file system"),
    ]
    for check, path, message in cases:
        with pytest.raises(OutputPathError, match="^sinks.jsonl: ") as caught:
            check(path, "sinks.jsonl")
        assert message in str(caught.value), (path, str(caught.value))
    assert output_file(tmp_path / "new" / "e.jsonl", "sinks.jsonl") == tmp_path / "new" / "e.jsonl"
    assert not (tmp_path / "new").exists()  # a check makes nothing
    assert output_folder(tmp_path / "clips", "sinks.clips_dir") == tmp_path / "clips"


def test_detect_refuses_each_unwritable_output_before_the_model_loads(tmp_path, read_only_mount):
    plain = tmp_path / "plain"
    plain.write_text("x")
    cases = [
        ("sinks.jsonl", str(tmp_path), "it is a folder, not a file"),
        ("sinks.tsv", str(plain / "e.tsv"), f"{plain} is a file, not a folder"),
        ("sinks.audacity", str(read_only_mount / "labels.txt"), "read-only file system"),
        ("sinks.clips_dir", str(plain), "it is a file, not a folder"),
        ("sinks.clips_dir", str(read_only_mount / "clips"), "read-only file system"),
        ("store.path", str(plain / "h" / "events.db"), f"{plain} is a file, not a folder"),
        ("store.path", str(read_only_mount / "events.db"), "read-only file system"),
    ]
    for setting, path, reason in cases:
        result = subprocess.run(
            [sys.executable, "-m", "htsat_live.cli", "detect", "--set", "publish.enabled=false"]
            + ["--set", f'{setting}="{path}"', "--set", "model.path=absent.ckpt"],  # the paths come first
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (setting, result.stderr)
        assert result.stderr.startswith(f"htsat-live detect: {setting}: cannot write"), result.stderr
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
