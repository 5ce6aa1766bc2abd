"""Models trained here give the same events on every backend: one fine-tuned by `train --clips`, one trained by
`train` on soundscapes, each run by torch, exported to ONNX (`export-onnx`) and run on OpenVINO fp32."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from htsat_live.cli import main
from htsat_live.model import DEFAULT_MODEL, DEMO_RECORDING, build_targets, load_model, official_events, offline_timeline
from htsat_live.model.audio import read_clip

CLIP_CLASSES = ["Music", "Instrument"]  # two classes of the ESC-50-shaped set, their target order


@pytest.fixture(scope="module")
def clip_trained(esc50_clips, tmp_path_factory) -> Path:
    """The starter model fine-tuned for one epoch on two classes of clips (their loops and tunes)."""
    root = tmp_path_factory.mktemp("clip-trained")
    data = root / "clips"
    (data / "meta").mkdir(parents=True)
    shutil.copytree(esc50_clips / "audio", data / "audio")
    lines = (esc50_clips / "meta" / "esc50.csv").read_text().splitlines()
    kept = [line for line in lines[1:] if line.split(",")[3] in CLIP_CLASSES]
    (data / "meta" / "esc50.csv").write_text("\n".join([lines[0], *kept]) + "\n")
    argv = ["train", "--clips", str(data), "--init", str(DEFAULT_MODEL), "--epochs", "1", "--out", str(root / "run")]
    assert main(argv) == 0
    return root / "run" / "best.safetensors"


@pytest.fixture(scope="module")
def soundscape_trained(desed_dir, tmp_path_factory) -> Path:
    """The starter model trained for one epoch on the DESED-style folder cut from the demo recording."""
    out = tmp_path_factory.mktemp("soundscape-trained") / "run"
    argv = ["train", "--train-dir", str(desed_dir), "--val-dir", str(desed_dir), "--out", str(out)]
    argv += ["--init", str(DEFAULT_MODEL), "--epochs", "1", "--batch-size", "4", "--mixup-probability", "0"]
    assert main(argv) == 0
    return out / "best.safetensors"


def events_on_every_backend(checkpoint: Path, recording: np.ndarray, folder: Path) -> dict:
    """backend -> (events under the official rule with the model's thresholds and median filter, framewise
    scores [frames, C]) of `recording`."""
    graph = folder / "model.onnx"
    assert main(["export-onnx", str(checkpoint), str(graph)]) == 0
    models = {
        "torch": load_model(checkpoint, backend="torch"),
        "onnx": load_model(graph),
        "openvino": load_model(checkpoint, backend="openvino"),
    }
    found = {}
    for backend, model in models.items():
        assert model.backend.name == backend
        scores = offline_timeline(model, recording)
        events, _ = official_events(scores, build_targets(model.labels, model.thresholds), model.median_frames)
        found[backend] = events, scores
    return found


@pytest.mark.timeout(600)  # trains the two models
@pytest.mark.parametrize("trained, recording", [("clip_trained", "music"), ("soundscape_trained", "demo")])
def test_a_trained_model_finds_the_same_events_on_every_backend(request, trained, recording, esc50_clips, tmp_path):
    checkpoint = request.getfixturevalue(trained)
    if recording == "demo":
        wave = read_clip(DEMO_RECORDING)
    else:  # three of the clips the classes were trained on, end to end: 15 s
        music = sorted((esc50_clips / "audio").glob("*-2.wav"))[:3]
        wave = np.concatenate([read_clip(path) for path in music])
    found = events_on_every_backend(checkpoint, wave, tmp_path)
    events, scores = found["torch"]
    assert events, "the model finds no event: the comparison would prove nothing"
    for backend in ("onnx", "openvino"):
        assert found[backend][0] == events, backend
        assert np.abs(found[backend][1] - scores).max() < 1e-4, backend  # the fp32 parity budget
