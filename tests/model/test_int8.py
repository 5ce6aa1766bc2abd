"""ONNX Runtime's int8 (dynamic quantisation) keeps the embedded model's events on the demo recording."""

from htsat_live.model import (
    DEFAULT_MODEL,
    DEMO_RECORDING,
    build_targets,
    load_model,
    official_events,
    offline_timeline,
)
from htsat_live.model.audio import read_clip
from htsat_live.model.checkpoint import build_model, read_checkpoint
from htsat_live.model.onnx import export_onnx


def test_int8_embedded_model_finds_the_fp32_events_on_the_demo(tmp_path):
    checkpoint = read_checkpoint(DEFAULT_MODEL)
    int8 = load_model(
        export_onnx(build_model(checkpoint, DEFAULT_MODEL), checkpoint, tmp_path / "starter.int8.onnx", int8=True)
    )
    fp32 = load_model()
    wave = read_clip(DEMO_RECORDING)
    targets = build_targets(fp32.labels, fp32.thresholds)
    expected, _ = official_events(offline_timeline(fp32, wave), targets, fp32.median_frames)
    found, _ = official_events(offline_timeline(int8, wave), targets, fp32.median_frames)
    assert len(expected) >= 10
    assert found == expected
