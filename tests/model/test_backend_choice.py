"""Backend "auto", the default: the rule that picks the engine, what the commands say about it, the conversion
cached once, and torch where OpenVINO cannot be imported."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from htsat_live.cli import main
from htsat_live.model import DEMO_RECORDING, load_model
from htsat_live.model.backend_choice import OPENVINO_MIN_PARAMETERS, BackendChoice, choose_backend

FULL_SIZE_LINE = "openvino on cpu [auto: 30 M parameters, OpenVINO is faster from 10 M]"


def short_clip(folder: Path) -> Path:
    """The demo's first 11 s: two windows at hop 10."""
    wave, rate = soundfile.read(DEMO_RECORDING, dtype="float32", frames=11 * 32000)
    soundfile.write(folder / "short.wav", wave, rate)
    return folder / "short.wav"


@pytest.mark.parametrize(
    "requested, onnx_file, device, precision, parameters, expected",
    [
        ("torch", False, "cpu", "fp32", 30_000_000, BackendChoice("torch")),  # a name is obeyed, silently
        ("openvino", False, "cpu", "fp32", 1_000_000, BackendChoice("openvino")),
        ("auto", True, "cpu", "fp32", 0, BackendChoice("onnx", "an .onnx file runs on ONNX Runtime")),
        (None, False, "cuda", "fp32", 30_000_000, BackendChoice("torch", "torch runs on cuda")),
        ("auto", False, "cpu", "int8", 1_000_000, BackendChoice("openvino", "int8 runs on OpenVINO")),
        (
            "auto",
            False,
            "cpu",
            "fp32",
            OPENVINO_MIN_PARAMETERS,
            BackendChoice("openvino", "10 M parameters, OpenVINO is faster from 10 M"),
        ),
        (
            "auto",
            False,
            "cpu",
            "bf16",
            OPENVINO_MIN_PARAMETERS - 1,
            BackendChoice("torch", "10 M parameters, torch below 10 M"),
        ),
    ],
)
def test_the_rule_of_auto(requested, onnx_file, device, precision, parameters, expected):
    assert choose_backend(requested, onnx_file, device, precision, parameters) == expected


def test_an_unknown_backend_is_one_clear_error():
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnx, openvino, got 'tensorrt'"):
        choose_backend("tensorrt", False, "cpu", "fp32", 1)


def test_the_first_conversion_is_said_and_cached_once(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    # the conversion "auto" starts for a large model, shown on the tiny one (named: it runs torch under "auto")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a cache of its own: it starts empty
    capsys.readouterr()
    first = load_model(tiny_checkpoint, backend="openvino")
    said = capsys.readouterr().err.splitlines()
    folder = tmp_path / "cache" / "htsat-live" / "openvino"
    assert said == [f"converting {tiny_checkpoint.name} for OpenVINO (once; cached in {folder})"]
    assert first.backend.name == "openvino"
    (xml,) = folder.glob("*.xml")
    assert xml.with_suffix(".bin").is_file() and [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    written = xml.stat().st_mtime_ns
    assert load_model(tiny_checkpoint, backend="openvino").backend.name == "openvino"
    assert capsys.readouterr().err == "" and xml.stat().st_mtime_ns == written  # read back, not converted again


def test_a_cache_that_cannot_be_written_converts_for_the_run_and_says_so(
    tiny_checkpoint, tiny_outputs, read_only_mount, monkeypatch, capsys
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(read_only_mount))
    capsys.readouterr()
    model = load_model(tiny_checkpoint, backend="openvino")
    said = capsys.readouterr().err
    assert f"cannot keep the OpenVINO conversion of {tiny_checkpoint.name} in the cache" in said
    assert "Read-only file system" in said and "converting it for this run only" in said
    assert model.backend.name == "openvino" and not (read_only_mount / "htsat-live").exists()
    result = model.predict(tiny_outputs["wave10"].numpy())["framewise"]
    assert abs(result - tiny_outputs["out10"]["framewise"].numpy()).max() < 1e-4  # the official outputs still


@pytest.mark.timeout(300)
def test_tag_says_first_which_backend_runs(official_checkpoints, tiny_checkpoint, tmp_path, capsys):
    clip = str(short_clip(tmp_path))
    assert main(["tag", clip, "--model", str(official_checkpoints[0]), "--top-k", "1", "--events", "0"]) == 0
    said = capsys.readouterr().err.splitlines()
    assert said[-1] == f"htsat-live tag: {FULL_SIZE_LINE}"  # after the conversion's line, on a first use
    assert main(["tag", clip, "--model", str(tiny_checkpoint), "--top-k", "1", "--events", "0"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        "htsat-live tag: torch on cpu [auto: 1.3 M parameters, torch below 10 M]"
    )
    assert main(["tag", clip, "--model", str(tiny_checkpoint), "--backend", "torch", "--events", "0"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == "htsat-live tag: torch on cpu"  # named: nothing to explain


@pytest.mark.timeout(300)
def test_detect_falls_back_to_torch_where_openvino_cannot_be_imported(official_checkpoints, tmp_path):
    (tmp_path / "openvino").mkdir()
    (tmp_path / "openvino" / "__init__.py").write_text("raise ImportError('openvino is made unimportable')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    clip = short_clip(tmp_path)
    command = [sys.executable, "-m", "htsat_live.cli", "detect", str(clip), "--model", str(official_checkpoints[0])]
    command += ["--fast", "--hop", "10", "--set", "publish.enabled=false", "--set", "store.path=''"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("listening to") and (
        "torch on cpu [auto: OpenVINO is not installed (the OpenVINO backend needs the openvino package: pip "
        "install openvino); torch instead]" in first
    ), result.stderr
    named = subprocess.run([*command, "--backend", "openvino"], capture_output=True, text=True, timeout=240, env=env)
    assert named.returncode == 2 and named.stderr.strip().endswith("needs the openvino package: pip install openvino")
