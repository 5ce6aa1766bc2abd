"""The stream bench's random model: its scores made as sparse as a trained model's."""

import numpy as np
import torch

from htsat_live.evaluation.stream_bench import demo_windows, make_scores_sparse
from htsat_live.model.htsat import HTSAT, HTSATConfig, tile_frames


def demo_scores(model: HTSAT) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(model.token_logits(tile_frames(model.logmel(torch.from_numpy(demo_windows()))))).numpy()


def test_scores_over_one_half_are_the_share_asked_for():
    torch.manual_seed(0)
    model = HTSAT(HTSATConfig(num_classes=40, embed_dim=24, depths=(1, 1, 1, 1))).eval()
    assert (demo_scores(model) > 0.5).mean() > 0.2  # random weights: scores everywhere near 0.5
    make_scores_sparse(model, share=0.01)
    assert 0.009 <= (demo_scores(model) > 0.5).mean() <= 0.011
