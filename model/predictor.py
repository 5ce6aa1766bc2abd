"""The Predictor that `load_model(path)` (model/loading.py) returns: what the stream, the GUI and the commands call.

A Predictor validates input, brings every clip to the model's 10-s input (zero padding or the official
tiling of short clips), and runs one backend: PyTorch (CPU or CUDA, `TorchBackend` here), ONNX Runtime
(model/onnx.py) or OpenVINO (model/openvino.py).
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from htsat_live.model.checkpoint import Checkpoint
from htsat_live.model.frontend import LogMel
from htsat_live.model.htsat import HTSAT, HTSATConfig
from htsat_live.model.timebase import (
    FRAME_SECONDS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    WINDOW_SECONDS,
    frames_for,
)

SHORT_POLICIES = ("repeat", "pad")
MIN_REPEAT_SAMPLES = 513  # the centred STFT's reflect padding needs more than n_fft / 2 samples


class Backend(Protocol):
    name: str
    device: str

    def run(self, wave: np.ndarray, tile_short: bool) -> tuple[np.ndarray, np.ndarray]:
        """wave float32 [B, N] -> clipwise [B, C], framewise [B, 1024, C]."""


PRECISIONS = ("fp32", "bf16")


class TorchBackend:
    name = "torch"

    def __init__(self, model: HTSAT, device: str, precision: str = "fp32"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = device
        self.precision = precision
        self.model = model.to(device).eval()

    def run(self, wave: np.ndarray, tile_short: bool) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            clipwise, framewise = self.model(
                torch.from_numpy(wave).to(self.device), tile_short=tile_short, bf16=self.precision == "bf16"
            )
        return clipwise.float().cpu().numpy(), framewise.float().cpu().numpy()


@dataclass
class Predictor:
    backend: Backend
    config: HTSATConfig
    labels: list[str]
    thresholds: np.ndarray | None  # [C] default per-class thresholds from our format's metadata
    source: str
    median_frames: int = 1  # default median filter of the event rule (grid frames, odd) from the metadata
    backend_note: str = ""  # how backend "auto" chose the engine (model/backend_choice.py); "" when named

    sample_rate = SAMPLE_RATE
    window_seconds = WINDOW_SECONDS
    frame_seconds = FRAME_SECONDS

    def __post_init__(self):
        self._logmel = LogMel()

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def frames_for(self, n_samples: int) -> int:
        return frames_for(n_samples)

    def predict(self, wave: np.ndarray, short: str = "repeat") -> dict[str, np.ndarray]:
        """wave float32 [B, N] or [N] at 32 kHz, N <= 10 s -> {"clipwise": [B, C], "framewise": [B, 1024, C]}.

        short="repeat": clips under 10 s are tiled as the official infer mode does (framewise frames then
        cover the tiled input); short="pad": zero-padded to 10 s, and the first frames_for(N) frames hold
        the clip.
        """
        if short not in SHORT_POLICIES:
            raise ValueError(f"short must be one of {SHORT_POLICIES}, got {short!r}")
        wave = _check_wave(wave)
        if short == "pad" and wave.shape[1] < WINDOW_SAMPLES:
            wave = np.pad(wave, ((0, 0), (0, WINDOW_SAMPLES - wave.shape[1])))
        if short == "repeat" and wave.shape[1] < MIN_REPEAT_SAMPLES:
            raise ValueError(
                f"clip of {wave.shape[1]} samples is too short for short='repeat' "
                f"(needs at least {MIN_REPEAT_SAMPLES}); use short='pad'"
            )
        clipwise, framewise = self.backend.run(wave, tile_short=True)
        return {"clipwise": clipwise, "framewise": framewise}

    def logmel(self, wave: np.ndarray) -> np.ndarray:
        """wave [B, N] or [N] -> log-mel dB [B, T, 64], T = N // 320 + 1 (the front end alone)."""
        wave = _check_wave(wave)
        if wave.shape[1] < MIN_REPEAT_SAMPLES:
            wave = np.pad(wave, ((0, 0), (0, MIN_REPEAT_SAMPLES - wave.shape[1])))
        with torch.inference_mode():
            return self._logmel(torch.from_numpy(wave)).numpy()


def _check_wave(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.ndim == 1:
        wave = wave[None]
    if wave.ndim != 2:
        raise ValueError(f"wave must be [N] or [B, N], got shape {list(wave.shape)}")
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise ValueError(f"wave is empty: shape {list(wave.shape)}")
    if wave.shape[1] > WINDOW_SAMPLES:
        raise ValueError(
            f"wave has {wave.shape[1]} samples, more than the model's 10-s window ({WINDOW_SAMPLES} at 32 kHz); "
            "cut longer audio into 10-s windows"
        )
    if not np.issubdtype(wave.dtype, np.floating):
        raise ValueError(f"wave must be floating point samples in [-1, 1], got dtype {wave.dtype}")
    finite = np.isfinite(wave)
    if not finite.all():
        raise ValueError(f"wave holds {int((~finite).sum())} NaN/inf samples")
    return np.ascontiguousarray(wave, dtype=np.float32)


def predictor_from_checkpoint(checkpoint: Checkpoint, backend: Backend, source: str) -> Predictor:
    thresholds = None if checkpoint.thresholds is None else np.asarray(checkpoint.thresholds, dtype=np.float32)
    return Predictor(backend, checkpoint.config, checkpoint.labels, thresholds, source, checkpoint.median_frames)
