"""The model's clock: sample rate, window, frame and token lengths, in seconds and in samples.

HTS-AT looks at 10-s windows of 32 kHz audio. Its framewise output has 1024 frames per window (one
frame = 10/1024 s = 312.5 samples) and its token-semantic head 32 time tokens (one token = 0.3125 s =
32 frames). Every other module takes these numbers from here. Torch-free.
"""

import math

import numpy as np

SAMPLE_RATE = 32000  # Hz, the model's input rate and the stream's rate
WINDOW_SECONDS = 10.0
WINDOW_SAMPLES = 320000  # SAMPLE_RATE * WINDOW_SECONDS
MODEL_FRAMES = 1024  # framewise output frames per window
FRAME_SECONDS = WINDOW_SECONDS / MODEL_FRAMES  # 0.009765625 s
SAMPLES_PER_FRAME = WINDOW_SAMPLES / MODEL_FRAMES  # 312.5
# One time token of the full-size model's head (32 per window): the finest hop that keeps windows on the
# token grid.
TOKEN_SECONDS = 0.3125
TOKEN_SAMPLES = 10000
HOP_LENGTH = 320  # samples: the front end's STFT hop (10 ms), one log-mel frame


def frames_for(n_samples: int) -> int:
    """Frames of the 1024 that hold real audio when a clip of n_samples is zero-padded to 10 s.

    The official DESED rule, float arithmetic included: ceil(floor(n / 320) * 1.024), at most 1024.
    """
    return min(MODEL_FRAMES, math.ceil((n_samples // HOP_LENGTH) * 1.024))


def zero_padded_batch(waves: list[np.ndarray]) -> np.ndarray:
    """Clips of at most 10 s as one model input: [N_i] each -> float32 [B, 320000], zero-padded at the end."""
    batch = np.zeros((len(waves), WINDOW_SAMPLES), dtype=np.float32)  # [B, 320000]
    for row, wave in enumerate(waves):
        if wave.ndim != 1 or wave.shape[0] > WINDOW_SAMPLES:
            raise ValueError(f"a window holds at most {WINDOW_SAMPLES} mono samples, got shape {list(wave.shape)}")
        batch[row, : wave.shape[0]] = wave
    return batch
