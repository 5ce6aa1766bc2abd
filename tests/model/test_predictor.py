import numpy as np
import pytest

from htsat_live.model import load_model


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint)


@pytest.mark.parametrize(
    "wave, message",
    [
        (np.full(32000, np.nan, dtype=np.float32), "NaN/inf"),
        (np.r_[np.zeros(100), np.inf].astype(np.float32), "NaN/inf"),
        (np.zeros((1, 1, 32000), dtype=np.float32), r"must be \[N\] or \[B, N\]"),
        (np.zeros(320001, dtype=np.float32), "more than the model's 10-s window"),
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(32000, dtype=np.int16), "floating point"),
    ],
)
def test_bad_input_gets_a_clear_error(model, wave, message):
    with pytest.raises(ValueError, match=message):
        model.predict(wave)


def test_unknown_short_policy_and_backend_are_refused(model, tiny_checkpoint):
    with pytest.raises(ValueError, match="short must be one of"):
        model.predict(np.zeros(32000, dtype=np.float32), short="stretch")
    with pytest.raises(ValueError, match="backend must be"):
        load_model(tiny_checkpoint, backend="tensorrt")


def test_cuda_request_without_cuda_is_refused(tiny_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(tiny_checkpoint, device="cuda")


def test_pad_equals_explicit_zero_padding(model, tiny_outputs):
    clip = tiny_outputs["wave4"].numpy()[0]
    padded = np.zeros(320000, dtype=np.float32)
    padded[: clip.size] = clip
    np.testing.assert_array_equal(model.predict(clip, short="pad")["framewise"], model.predict(padded)["framewise"])


def test_frames_for_follows_the_official_desed_rule(model):
    assert model.frames_for(128000) == 410  # a 4-s clip
    assert model.frames_for(320000) == 1024
    assert model.frames_for(400000) == 1024
    assert model.frames_for(319) == 0


def test_batch_rows_are_independent(model, tiny_outputs):
    wave = tiny_outputs["wave10"].numpy()
    batch = model.predict(wave)["framewise"]
    single = model.predict(wave[1])["framewise"]
    assert np.abs(batch[1] - single[0]).max() < 1e-5


def test_logmel_shape(model):
    mel = model.logmel(np.zeros(64000, dtype=np.float32))
    assert mel.shape == (1, 201, 64)
