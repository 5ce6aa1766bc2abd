"""The training loss: a clip-level BCE (on the mean of the token logits, the model's clipwise output) plus a
frame-level BCE on the token-semantic map against the share of each 312.5-ms token that a strong label
covers (weighted by frame_loss_weight)."""

from htsat_live.training.settings import TrainSettings


def loss_terms(logits, clip_target, token_target, settings: TrainSettings):
    """logits [B, C, tokens] -> (total, clip BCE, frame BCE)."""
    from torch.nn import functional as F

    clip = F.binary_cross_entropy_with_logits(logits.mean(-1), clip_target)
    frame = F.binary_cross_entropy_with_logits(logits.transpose(1, 2), token_target)
    return clip + settings.frame_loss_weight * frame, clip, frame
