"""The command line as a whole: an unforeseen error is one line (the traceback with --debug), and an
.onnx model runs on ONNX Runtime in every command that takes a model."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from htsat_live.cli import main


def failing_run(args) -> int:
    raise RuntimeError("a bug nobody foresaw")


def test_an_unforeseen_error_is_one_line_and_exit_1(monkeypatch, capsys):
    monkeypatch.setattr("htsat_live.stream.commands.run_labels", failing_run)
    assert main(["labels"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: a bug nobody foresaw" in err and "--debug" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("how", [["--debug"], []])
def test_debug_shows_the_traceback(monkeypatch, capsys, how):
    monkeypatch.setattr("htsat_live.stream.commands.run_labels", failing_run)
    if not how:
        monkeypatch.setenv("HTSAT_LIVE_DEBUG", "1")
    assert main(["labels", *how]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "a bug nobody foresaw" in err


def test_log_lines_go_to_the_stderr_of_the_moment(monkeypatch, capsys):
    """A command's log handler writes to sys.stderr as it is at each record, not to a stream since closed."""
    import io
    import logging

    monkeypatch.setattr(
        "htsat_live.stream.commands.run_labels", lambda args: logging.getLogger("htsat_live.x").warning("one") or 0
    )
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    assert main(["labels"]) == 0
    first.close()  # as a test's capture is closed once the test ends
    monkeypatch.undo()
    logging.getLogger("htsat_live.x").warning("two")
    assert capsys.readouterr().err.strip() == "htsat-live: two"


def run_cli(*arguments: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", *arguments], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.timeout(300)  # runs every command on an exported model
def test_an_onnx_model_runs_on_onnx_runtime_in_every_command(tiny_onnx, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    soundfile.write(
        folder / "a.wav", (0.1 * np.random.default_rng(0).standard_normal(3 * 32000)).astype(np.float32), 32000
    )
    model = str(tiny_onnx)
    labels = run_cli("labels", "--model", model, cwd=tmp_path)
    assert labels.returncode == 0 and labels.stdout.startswith("0\tclass_0"), labels.stderr
    tag = run_cli("tag", str(folder / "a.wav"), "--model", model, "--json", cwd=tmp_path)
    assert tag.returncode == 0, tag.stderr
    detect_dir = run_cli("detect-dir", str(folder), "--model", model, "--out", str(tmp_path / "d.tsv"), cwd=tmp_path)
    assert detect_dir.returncode == 0, detect_dir.stderr
    detect = run_cli(
        "detect", str(folder / "a.wav"), "--model", model, "--fast", "--set", "publish.enabled=false", cwd=tmp_path
    )
    assert detect.returncode == 0 and "onnx on cpu" in detect.stderr, detect.stderr
    refused = run_cli("detect", str(folder / "a.wav"), "--model", model, "--backend", "torch", "--fast", cwd=tmp_path)
    assert refused.returncode == 2 and "runs on ONNX Runtime, not on torch" in refused.stderr
    bench = run_cli("bench", "--model", model, cwd=tmp_path)
    assert bench.returncode == 2 and "the checkpoint the .onnx graph was exported from" in bench.stderr
