"""The golden tiny checkpoint reproduces the official code's outputs through the public API."""

import numpy as np
import pytest

from htsat_live.model import load_model

CASES = [("wave10", "out10"), ("wave4", "out4")]


@pytest.fixture(scope="module")
def torch_model(tiny_checkpoint):
    return load_model(tiny_checkpoint, backend="torch")


@pytest.fixture(scope="module")
def onnx_model(tiny_checkpoint, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    return load_model(tiny_checkpoint, backend="onnx")


@pytest.fixture(scope="module")
def cuda_model(tiny_checkpoint):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: this runs on a GPU machine")
    return load_model(tiny_checkpoint, backend="torch", device="cuda")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("wave_key, out_key", CASES)
@pytest.mark.parametrize("output", ["clipwise", "framewise"])
@pytest.mark.parametrize("model_fixture", ["torch_model", "cuda_model"])
def test_torch_backend_matches_official_outputs(request, model_fixture, tiny_outputs, wave_key, out_key, output):
    result = request.getfixturevalue(model_fixture).predict(tiny_outputs[wave_key].numpy())
    difference = np.abs(result[output] - tiny_outputs[out_key][output].numpy())
    assert difference.max() < 1e-4
    assert difference.mean() < 5e-6


@pytest.mark.parametrize("wave_key, out_key", CASES)
@pytest.mark.parametrize("output", ["clipwise", "framewise"])
def test_onnx_backend_matches_official_and_torch_outputs(
    torch_model, onnx_model, tiny_outputs, wave_key, out_key, output
):
    wave = tiny_outputs[wave_key].numpy()
    result = onnx_model.predict(wave)
    difference = np.abs(result[output] - tiny_outputs[out_key][output].numpy())
    assert difference.max() < 1e-4
    assert difference.mean() < 5e-6
    assert np.abs(result[output] - torch_model.predict(wave)[output]).max() < 1e-4


def test_output_shapes_and_properties(torch_model, tiny_outputs):
    result = torch_model.predict(tiny_outputs["wave10"].numpy()[0])
    assert result["clipwise"].shape == (1, 10)
    assert result["framewise"].shape == (1, 1024, 10)
    assert torch_model.labels == [f"class_{i}" for i in range(10)]
    assert torch_model.thresholds is None
    assert torch_model.sample_rate == 32000
    assert torch_model.window_seconds == 10.0
    assert torch_model.frame_seconds == 10 / 1024


@pytest.mark.parametrize("wave_key, out_key", CASES)
def test_torch_bf16_drift_from_official_outputs_is_bounded(tiny_checkpoint, tiny_outputs, wave_key, out_key):
    # bf16 autocast on the trunk only (layer norms, softmax and residual sums in fp32): measured 2.1e-2 max /
    # 2.4e-3 mean on wave10. Casting the whole trunk to bf16 drifted 0.15 / 9.0e-3, three times the max budget.
    result = load_model(tiny_checkpoint, backend="torch", precision="bf16").predict(tiny_outputs[wave_key].numpy())
    drift = np.abs(result["framewise"] - tiny_outputs[out_key]["framewise"].numpy())
    assert 1e-5 < drift.max() <= 5e-2  # above zero: bf16 really ran
    assert drift.mean() <= 4e-3
