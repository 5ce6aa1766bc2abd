"""The OpenVINO backend: the official outputs in float32, bounded drift in bfloat16 and int8, the same API."""

import os
import subprocess
import sys

import numpy as np
import pytest

from htsat_live.model import (
    build_targets,
    load_model,
    official_events,
    offline_timeline,
)
from htsat_live.model.audio import read_clip
from htsat_live.model.embedded import DEMO_RECORDING

CASES = [("wave10", "out10"), ("wave4", "out4")]


@pytest.fixture(scope="module")
def fp32_model(tiny_checkpoint):
    return load_model(tiny_checkpoint, backend="openvino")


@pytest.fixture(scope="module")
def bf16_model(tiny_checkpoint):
    return load_model(tiny_checkpoint, backend="openvino", precision="bf16")


@pytest.mark.parametrize("wave_key, out_key", CASES)
@pytest.mark.parametrize("output", ["clipwise", "framewise"])
def test_fp32_matches_official_outputs(fp32_model, tiny_outputs, wave_key, out_key, output):
    result = fp32_model.predict(tiny_outputs[wave_key].numpy())
    difference = np.abs(result[output] - tiny_outputs[out_key][output].numpy())
    assert difference.max() < 1e-4
    assert difference.mean() < 5e-6


@pytest.mark.parametrize("wave_key, out_key", CASES)
def test_bf16_framewise_drift_is_bounded(bf16_model, tiny_outputs, wave_key, out_key):
    # measured 2.0e-2 / 2.7e-3 (wave10) and 1.4e-2 / 2.5e-3 (wave4): over the mean budget of 2e-3 on
    # these random tiny weights, which torch's bf16 autocast shares (2.3e-3 / 2.6e-3): the rounding of bf16
    # matrix products itself, not OpenVINO's
    result = bf16_model.predict(tiny_outputs[wave_key].numpy())
    drift = np.abs(result["framewise"] - tiny_outputs[out_key]["framewise"].numpy())
    assert drift.max() <= 5e-2
    assert drift.mean() <= 4e-3


def test_bf16_really_runs_in_bfloat16(fp32_model, bf16_model, tiny_outputs):
    wave = tiny_outputs["wave10"].numpy()
    assert np.abs(bf16_model.predict(wave)["framewise"] - fp32_model.predict(wave)["framewise"]).max() > 1e-5


def test_cached_trunk_is_reused(tiny_checkpoint, fp32_model):
    from htsat_live.model.openvino import cached_trunk

    path = cached_trunk(fp32_model.backend.model, tiny_checkpoint)
    written = path.stat().st_mtime_ns
    assert cached_trunk(fp32_model.backend.model, tiny_checkpoint).stat().st_mtime_ns == written


def test_batch_rows_and_padding_follow_the_predictor(fp32_model, tiny_outputs):
    wave = tiny_outputs["wave10"].numpy()
    assert np.abs(fp32_model.predict(wave)["framewise"][1] - fp32_model.predict(wave[1])["framewise"][0]).max() < 1e-5
    clip = tiny_outputs["wave4"].numpy()[0]
    padded = np.zeros(320000, dtype=np.float32)
    padded[: clip.size] = clip
    np.testing.assert_array_equal(
        fp32_model.predict(clip, short="pad")["framewise"], fp32_model.predict(padded)["framewise"]
    )


@pytest.fixture(scope="module")
def starter_models():
    return {precision: load_model(None, backend="openvino", precision=precision) for precision in ("fp32", "int8")}


def test_int8_gives_the_official_events_of_fp32_on_the_demo(starter_models):
    # the check: the embedded model, quantised as the backend does, finds the same events as in fp32
    # under the official rule (consecutive 10-s windows, the model's thresholds and median filter)
    demo = read_clip(DEMO_RECORDING)
    events = {}
    for precision, model in starter_models.items():
        targets = build_targets(model.labels, model.thresholds)
        events[precision], _ = official_events(offline_timeline(model, demo), targets, model.median_frames)
    assert len(events["fp32"]) >= 10
    assert events["int8"] == events["fp32"]


def test_int8_really_runs_quantised_with_bounded_drift(starter_models):
    from htsat_live.model.commands import probe_waves

    waves = probe_waves(2)
    fp32, int8 = (starter_models[precision].predict(waves)["framewise"] for precision in ("fp32", "int8"))
    drift = np.abs(int8 - fp32)
    assert drift.max() > 1e-4  # int8 rounding shows
    assert drift.mean() <= 5e-3  # the int8 budget (measured 3.6e-3 on four probes)
    compiled = starter_models["int8"].backend.compiled
    assert any(
        op.get_rt_info()["runtimePrecision"].astype(str) == "i8" for op in compiled.get_runtime_model().get_ops()
    )


def test_int8_trunk_is_cached_apart_from_the_float_one(starter_models):
    from htsat_live.model.embedded import DEFAULT_MODEL
    from htsat_live.model.openvino import cached_trunk

    model = starter_models["int8"].backend.model
    int8_path, float_path = cached_trunk(model, DEFAULT_MODEL, "int8"), cached_trunk(model, DEFAULT_MODEL, "bf16")
    assert (
        int8_path != float_path
        and "FakeQuantize" in int8_path.read_text()
        and "FakeQuantize" not in float_path.read_text()
    )
    written = int8_path.stat().st_mtime_ns
    assert cached_trunk(model, DEFAULT_MODEL, "int8").stat().st_mtime_ns == written


def test_no_usage_statistics_leave_the_process(tiny_checkpoint, tmp_path):
    # OpenVINO's converter and NNCF would send them to Google Analytics unless a consent file says no
    script = (
        "import sys; from htsat_live.model import load_model; "
        f"load_model({str(tiny_checkpoint)!r}, backend='openvino', precision='int8'); "
        "print(sys.modules['openvino_telemetry'], type(sys.modules['nncf'].telemetry.wrapper.telemetry).__name__)"
    )
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**environment, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "None"
    assert not (tmp_path / "intel").exists()  # no consent file or client id written either


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_int8_elsewhere_is_one_clear_error(tiny_checkpoint, backend):
    with pytest.raises(ValueError, match="int8 runs on the OpenVINO backend"):
        load_model(tiny_checkpoint, backend=backend, precision="int8")


@pytest.mark.parametrize(
    "device, precision, message", [("cuda", "fp32", "runs on the CPU"), ("cpu", "int4", "precision must be one of")]
)
def test_bad_device_or_precision_is_one_clear_error(tiny_checkpoint, device, precision, message):
    with pytest.raises(ValueError, match=message):
        load_model(tiny_checkpoint, backend="openvino", device=device, precision=precision)
