"""Log-mel front end, numerically the official HTS-AT one (torchlibrosa defaults as HTS-AT sets them).

STFT: n_fft 1024, hop 320, periodic Hann window, centred frames with reflect padding, power |X|^2.
Mel: 64 Slaney-style bands (librosa's htk=False, norm="slaney") from 50 Hz to 14 kHz at 32 kHz.
Log: 10 * log10(max(mel_power, 1e-10)), reference 1, no top_db clipping.

The official code computes the DFT as a float32 convolution; torch.stft computes it exactly (FFT), so the
two differ only by float32 rounding. torch.stft exports to ONNX's STFT op through the dynamo exporter.
"""

import math

import numpy as np
import torch
from torch import nn

from htsat_live.model.timebase import HOP_LENGTH, SAMPLE_RATE

N_FFT = 1024
N_MELS = 64
F_MIN = 50.0
F_MAX = 14000.0
AMIN = 1e-10


# Slaney's auditory scale: linear below 1 kHz (3 bands per 200 Hz), logarithmic above
SLANEY_LINEAR_HZ_PER_MEL = 200.0 / 3.0
SLANEY_BREAK_HZ = 1000.0
SLANEY_BREAK_MEL = SLANEY_BREAK_HZ / SLANEY_LINEAR_HZ_PER_MEL
SLANEY_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / SLANEY_LINEAR_HZ_PER_MEL
    above = hz >= SLANEY_BREAK_HZ
    mel[above] = SLANEY_BREAK_MEL + np.log(hz[above] / SLANEY_BREAK_HZ) / SLANEY_LOG_STEP
    return mel


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * SLANEY_LINEAR_HZ_PER_MEL
    above = mel >= SLANEY_BREAK_MEL
    hz[above] = SLANEY_BREAK_HZ * np.exp(SLANEY_LOG_STEP * (mel[above] - SLANEY_BREAK_MEL))
    return hz


def mel_band_edges_hz(f_min: float = F_MIN, f_max: float = F_MAX, n_mels: int = N_MELS) -> np.ndarray:
    """Band i spans edges i..i+2 and peaks at edge i+1: [n_mels + 2], evenly spaced on the Slaney mel scale."""
    edge_mels = np.linspace(
        _hz_to_slaney_mel(np.array([f_min]))[0], _hz_to_slaney_mel(np.array([f_max]))[0], n_mels + 2
    )
    return _slaney_mel_to_hz(edge_mels)


def mel_band_centres_hz(n_mels: int = N_MELS) -> np.ndarray:
    """Centre frequency of each mel band: [n_mels]."""
    return mel_band_edges_hz(n_mels=n_mels)[1:-1]


def slaney_mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX
) -> np.ndarray:
    """Triangular mel filters with Slaney area normalisation, float32 [n_fft // 2 + 1, n_mels]."""
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edge_hz = mel_band_edges_hz(f_min, f_max, n_mels)  # [n_mels + 2]
    widths = np.diff(edge_hz)  # [n_mels + 1]
    offsets = edge_hz[:, None] - fft_hz[None, :]  # [n_mels + 2, n_bins]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n_mels, n_bins]
    weights *= (2.0 / (edge_hz[2:] - edge_hz[:-2]))[:, None]
    return weights.T.astype(np.float32)


def num_frames(n_samples: int) -> int:
    """STFT frames for a clip of n_samples with centred framing."""
    return n_samples // HOP_LENGTH + 1


class LogMel(nn.Module):
    """Waveform [B, N] at 32 kHz -> log-mel dB [B, T, 64], T = N // 320 + 1 (N > 512 for reflect padding)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(slaney_mel_filterbank()), persistent=False)

    def power_spectrum(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, N] -> |STFT|^2 [B, T, 513]."""
        spec = torch.stft(
            wave, N_FFT, HOP_LENGTH, window=self.window, center=True, pad_mode="reflect", return_complex=True
        )  # [B, 513, T] complex
        return torch.view_as_real(spec).pow(2).sum(-1).transpose(1, 2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel_power = self.power_spectrum(wave) @ self.mel_fb  # [B, T, 64]
        return 10.0 * torch.log10(torch.clamp(mel_power, min=AMIN))
