import numpy as np
import torch

from htsat_live.model.frontend import LogMel, slaney_mel_filterbank


def test_mel_filterbank_matches_the_official_one(golden_dir):
    golden = torch.load(golden_dir / "frontend.pt", weights_only=True)
    np.testing.assert_allclose(slaney_mel_filterbank(), golden["mel_fb"].numpy(), atol=1e-7, rtol=0)


def test_logmel_matches_the_official_front_end(golden_dir):
    golden = torch.load(golden_dir / "frontend.pt", weights_only=True)
    reference = golden["logmel"][:, 0]  # [2, 1001, 64]
    with torch.no_grad():
        ours = LogMel()(golden["wave"])
    assert ours.shape == reference.shape
    difference = (ours - reference).abs()
    assert difference[reference > -50].max() < 1e-3
    assert difference[reference > -90].max() < 0.05


def test_logmel_frame_count_follows_centred_framing():
    with torch.no_grad():
        mel = LogMel()(torch.zeros(3, 32000))
    assert mel.shape == (3, 101, 64)
    assert torch.all(mel == -100.0)  # silence hits the 1e-10 floor
