"""Augmentation of a batch of log-mels: per-example gain, equalizer and pitch shift of the mel bands, band
limit, SpecAugment (time and frequency masks) and mixup."""

import math

import numpy as np

from htsat_live.training.settings import TrainSettings

# Band limits of common low-rate sources (8, 11.025, 16, 22.05 kHz: phone lines, IP cameras, old files),
# whose resampled audio is empty above them; the band-limit augmentation draws one of these.
BAND_LIMITS_HZ = (4000.0, 5512.5, 8000.0, 11025.0)
EQUALIZER_POINTS = 5  # random gains at this many evenly spaced mel bands, linear between them


def augment(mel, clip_target, token_target, settings: TrainSettings, generator):
    """Gain, equalizer, pitch shift, band limit, SpecAugment and mixup on a batch. mel [B, T, F]; targets
    [B, C], [B, tokens, C].

    The equalizer and the pitch shift stand in for recordings not in the training set: another microphone
    or room colours the spectrum (a smooth random gain curve over the mel bands), another individual of a
    species calls higher or lower (the mel bands moved by a few bins, the edge band repeated)."""
    import torch
    from torch.nn import functional as F

    from htsat_live.model.frontend import AMIN, mel_band_centres_hz

    b, t, f = mel.shape
    mel = mel + (torch.rand(b, 1, 1, generator=generator) * 2 - 1) * settings.gain_db
    if settings.equalizer_db > 0:
        points = (torch.rand(b, 1, EQUALIZER_POINTS, generator=generator) * 2 - 1) * settings.equalizer_db  # [B, 1, P]
        mel = mel + F.interpolate(points, size=f, mode="linear", align_corners=True)  # + [B, 1, F]
    if settings.pitch_shift_bins > 0:
        shift = torch.randint(
            -settings.pitch_shift_bins, settings.pitch_shift_bins + 1, (b,), generator=generator
        )  # [B]
        source_bin = (torch.arange(f)[None] - shift[:, None]).clamp(0, f - 1)  # [B, F]
        mel = torch.gather(mel, 2, source_bin[:, None, :].expand(b, t, f))
    limited = torch.rand(b, generator=generator) < settings.band_limit_probability  # [B]
    cut_hz = torch.tensor(BAND_LIMITS_HZ)[torch.randint(0, len(BAND_LIMITS_HZ), (b,), generator=generator)]  # [B]
    above = torch.from_numpy(mel_band_centres_hz(n_mels=f)).float()[None] > cut_hz[:, None]  # [B, F]
    mel = torch.where((limited[:, None] & above)[:, None, :], torch.tensor(10 * math.log10(AMIN)), mel)
    fill = mel.mean(dim=(1, 2), keepdim=True).expand(b, t, f)
    keep = torch.ones(b, t, f, dtype=torch.bool)
    for _ in range(settings.time_masks):
        width = torch.randint(0, settings.time_mask_frames + 1, (b,), generator=generator)
        start = (torch.rand(b, generator=generator) * (t - width)).long()
        frames = torch.arange(t)[None]
        keep &= ~((frames >= start[:, None]) & (frames < (start + width)[:, None]))[:, :, None]
    for _ in range(settings.freq_masks):
        width = torch.randint(0, settings.freq_mask_bins + 1, (b,), generator=generator)
        start = (torch.rand(b, generator=generator) * (f - width)).long()
        bins = torch.arange(f)[None]
        keep &= ~((bins >= start[:, None]) & (bins < (start + width)[:, None]))[:, None, :]
    mel = torch.where(keep, mel, fill)
    if torch.rand(1, generator=generator).item() < settings.mixup_probability:
        lam = float(
            np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator))).beta(
                settings.mixup_alpha, settings.mixup_alpha
            )
        )
        order = torch.randperm(b, generator=generator)
        mel = lam * mel + (1 - lam) * mel[order]
        clip_target = lam * clip_target + (1 - lam) * clip_target[order]
        token_target = lam * token_target + (1 - lam) * token_target[order]
    return mel, clip_target, token_target
